use cache_runtime::cached;

#[cached(key = "course:{id}", skip = [id])]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
