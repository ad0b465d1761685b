use cache_runtime::cached;

pub trait Source {
    async fn n(&self, n: u32) -> u32;
}

pub struct Repo;

// On an impl block, #[cached] takes only the companions' visibility.
#[cached(key = "n:{n}")]
impl Source for Repo {
    #[cached(key = "n:{n}")]
    async fn n(&self, n: u32) -> u32 {
        n
    }
}

fn main() {}
