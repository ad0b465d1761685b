use cache_runtime::cached;

struct Repo {
    s: String,
}

impl Repo {
    #[cached(key = "r:{self.self.s}")]
    async fn get(&self) -> String {
        self.s.clone()
    }
}

fn main() {}
