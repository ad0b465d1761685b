use cache_runtime::cached;

#[cached(key = "course:{id}")]
fn course(id: i64) -> i64 {
    id
}

fn main() {}
