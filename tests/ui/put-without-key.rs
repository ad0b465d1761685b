use cache_runtime::cached;

#[cached(put, ttl = LONG)]
async fn save(id: i64) -> i64 {
    id
}

fn main() {}
