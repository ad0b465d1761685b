use cache_runtime::cached;

// `invalidates` without `key` is a pure mutation: nothing is stored, so a ttl
// means nothing.
#[cached(invalidates = ["course:{id}"], ttl = LONG)]
async fn update(id: i64) -> Result<(), std::io::Error> {
    let _ = id;
    Ok(())
}

fn main() {}
