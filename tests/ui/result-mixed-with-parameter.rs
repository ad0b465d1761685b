use cache_runtime::cached;

#[derive(serde::Serialize, serde::Deserialize)]
struct Article {
    id: u64,
}

// A result template is built after the body ran, when the parameters are
// gone.
#[cached(key = "article:{lang}:{slug}", tags = ["article:{result.id}:{lang}"])]
async fn article(lang: String, slug: String) -> Article {
    let _ = (lang, slug);
    Article { id: 1 }
}

fn main() {}
