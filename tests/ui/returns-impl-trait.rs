use cache_runtime::cached;

#[cached(key = "name:{id}")]
async fn name(id: i64) -> impl std::fmt::Display {
    id
}

fn main() {}
