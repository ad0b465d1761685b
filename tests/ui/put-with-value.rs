use cache_runtime::cached;

#[cached(key = "course:{id}", put = true)]
async fn save(id: i64) -> i64 {
    id
}

fn main() {}
