use cache_runtime::cached;

#[cached(key = "tenant:{self.tenant}:{id}")]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
