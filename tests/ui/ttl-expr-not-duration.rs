use cache_runtime::cached;

#[cached(key = "course:{id}", ttl = 300u64 * 2)]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
