use cache_runtime::cached;

#[cached(key = "course")]
struct Course {
    id: i64,
}

fn main() {}
