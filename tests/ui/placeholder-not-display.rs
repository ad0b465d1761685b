use cache_runtime::cached;

#[derive(Debug)]
struct Filter {
    year: u32,
}

#[cached(key = "courses:{filter}")]
async fn courses(filter: Filter) -> Vec<String> {
    vec![format!("{}", filter.year)]
}

fn main() {}
