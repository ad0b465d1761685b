use cache_runtime::cached;

#[cached(key = "name:{id}")]
async fn name(id: i64) -> &'static str {
    if id > 0 { "positive" } else { "other" }
}

fn main() {}
