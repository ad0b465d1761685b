use cache_runtime::cached;

#[cached(invalidates = ["course:{id}", tags("courses")])]
async fn update(id: i64) -> Result<(), std::io::Error> {
    let _ = id;
    Ok(())
}

fn main() {}
