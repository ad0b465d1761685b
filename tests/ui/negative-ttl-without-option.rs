use cache_runtime::cached;

#[cached(key = "course:{id}", negative_ttl = "30s")]
async fn course(id: i64) -> Result<i64, std::io::Error> {
    Ok(id)
}

fn main() {}
