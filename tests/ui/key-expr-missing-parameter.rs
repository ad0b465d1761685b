use cache_runtime::cached;

#[cached(key = cache_runtime::CacheKeys::student_dashboard(student_id))]
async fn dashboard(student_id: i64, include_archived: bool) -> Vec<String> {
    vec![format!("{student_id}/{include_archived}")]
}

fn main() {}
