use cache_runtime::cached;

#[cached(key = crate::keys::student_dashboard(student_id))]
async fn dashboard(student_id: i64, include_archived: bool) -> Vec<String> {
    vec![format!("{student_id}/{include_archived}")]
}

fn main() {}

mod keys {
    pub fn student_dashboard(id: i64) -> String {
        format!("dashboard:student:{}", cache_runtime::keys::escape(&id))
    }
}
