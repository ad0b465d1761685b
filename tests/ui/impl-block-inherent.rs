use cache_runtime::cached;

pub struct Repo;

// On an inherent impl, methods get companions from their own visibility.
#[cached(pub)]
impl Repo {
    #[cached(key = "n:{n}")]
    pub async fn n(&self, n: u32) -> u32 {
        n
    }
}

fn main() {}
