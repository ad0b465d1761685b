use cache_runtime::cached;

// Two users' dashboards must never share an entry: `page` is not in the key.
#[cached(key = "dashboard:{user_id}")]
async fn dashboard(user_id: i64, page: u32) -> Vec<String> {
    vec![format!("{user_id}/{page}")]
}

fn main() {}
