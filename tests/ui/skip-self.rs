use cache_runtime::cached;

struct Repo;

impl Repo {
    #[cached(key = "course:{id}", skip = [self])]
    async fn course(&self, id: i64) -> i64 {
        id
    }
}

fn main() {}
