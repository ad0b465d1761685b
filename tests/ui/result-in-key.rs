use cache_runtime::cached;

#[derive(serde::Serialize, serde::Deserialize)]
struct Article {
    id: u64,
}

// The key is needed before the load: it cannot name the loaded value.
#[cached(key = "article:{result.id}")]
async fn article(slug: String) -> Article {
    let _ = slug;
    Article { id: 1 }
}

fn main() {}
