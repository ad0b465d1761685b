use cache_runtime::cached;
use std::time::Duration;

const MY_TTL: Duration = Duration::from_secs(5);

// A user's constant must be written as a path or a block: a bare identifier
// is checked against the `Ttl` names so that a typo cannot compile.
#[cached(key = "course:{id}", ttl = MY_TTL)]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
