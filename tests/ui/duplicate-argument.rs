use cache_runtime::cached;

#[cached(key = "course:{id}", ttl = LONG, ttl = SHORT)]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
