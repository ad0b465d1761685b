use cache_runtime::cached;

// One build reports every misuse of the attribute, each on its own token.
#[cached(key = "course:{idd}", ttl = "5x", tll = LONG, version = 1, version = 2)]
async fn course(id: i64) -> i64 {
    id
}

fn main() {}
