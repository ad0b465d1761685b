use cache_runtime::cached;

#[cached(key = "course:{course_id}")]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
