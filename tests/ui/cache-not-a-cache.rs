use cache_runtime::cached;

struct Repo {
    cache: String,
}

impl Repo {
    #[cached(key = "course:{id}", cache = self.cache)]
    async fn course(&self, id: i64) -> i64 {
        id
    }
}

fn main() {}
