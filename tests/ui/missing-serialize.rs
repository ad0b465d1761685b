use cache_runtime::cached;
use serde::Deserialize;

// One missing derive, one error: on the type, once for the function and
// its companions.
#[derive(Deserialize)]
pub struct Course {
    pub id: i64,
}

#[cached(key = "course:{id}")]
pub async fn course(id: i64) -> Result<Course, std::io::Error> {
    Ok(Course { id })
}

fn main() {}
