use cache_runtime::cached;

struct Pool;

#[cached(key = "course:{id}", skip = [pol])]
async fn course(pool: &Pool, id: i64) -> i64 {
    let _ = pool;
    id
}

fn main() {}
