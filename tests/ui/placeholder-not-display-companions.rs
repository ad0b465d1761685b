use cache_runtime::cached;

pub struct Filter {
    pub q: String,
}

// One error for the parameter, not one per companion.
#[cached(key = "courses:{filter}", tags = ["f:{filter}"])]
pub async fn courses(filter: Filter) -> Vec<String> {
    vec![filter.q]
}

fn main() {}
