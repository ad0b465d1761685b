use cache_runtime::cached;

#[cached(key = "courses:{teacher}", unless = "courses.is_empty()")]
async fn courses(teacher: u32) -> Vec<u32> {
    vec![teacher]
}

fn main() {}
