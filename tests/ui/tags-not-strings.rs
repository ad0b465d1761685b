use cache_runtime::cached;

const COURSES: &str = "courses";

#[cached(key = "course:{id}", tags = [COURSES])]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
