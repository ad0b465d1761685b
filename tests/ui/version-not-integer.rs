use cache_runtime::cached;

#[cached(key = "course:{id}", version = "2")]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
