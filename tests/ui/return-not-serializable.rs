use cache_runtime::cached;

struct Course {
    id: i64,
}

#[cached(key = "course:{id}")]
async fn course(id: i64) -> Result<Course, std::io::Error> {
    Ok(Course { id })
}

fn main() {}
