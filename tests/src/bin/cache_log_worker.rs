//! A host application for `tests/cache_log.rs`: builds its cache from the
//! environment (as `Cache::from_env` does), runs a miss, a hit, a write and
//! an invalidation, and installs no `tracing` subscriber, so whatever it
//! prints on stderr comes from the cache itself (`CACHE_LOG=1`).
//!
//! ```text
//! cache_log_worker env        # Cache::from_env()
//! cache_log_worker code-off   # Cache::builder().log(false).env_overrides(): code wins
//! ```

use std::time::Duration;

use cache_runtime::{Cache, Policy};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = match std::env::args().nth(1).as_deref() {
        Some("env") => Cache::from_env().await?,
        Some("code-off") => Cache::builder().log(false).env_overrides().build().await?,
        _ => {
            eprintln!("usage: cache_log_worker env|code-off");
            std::process::exit(2);
        }
    };
    let policy = Policy::ttl(Duration::from_secs(300)).name("worker::course");
    for _ in 0..2 {
        cache
            .get_or_load("course:7", policy.clone(), || async { Ok::<_, std::io::Error>(7u32) })
            .await?;
    }
    cache.set("greeting", &"hello", Duration::from_secs(60)).await?;
    cache.invalidator().key("course:7").await?;
    println!("namespace={}", cache.namespace());
    Ok(())
}
