//! Builds a cache from code and the environment the way a mode says, for
//! `tests/env_precedence.rs` (the environment is process-wide, and setting
//! it in a test is `unsafe`: each case runs in a process of its own). Prints
//! `namespace=…` and `cache=<Debug of the cache>` on stdout; an in-process
//! cache then runs one `set` (a line on stderr when it logs).
//!
//! ```text
//! env_worker env | code-before | code-after | backend-in-code | memory-in-code | log-off-in-code | own-default
//! ```

use std::time::Duration;

use cache_runtime::Cache;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let b = Cache::builder();
    let b = match std::env::args().nth(1).as_deref() {
        Some("env") => b.env_overrides(),
        Some("code-before") => b.namespace("code").env_overrides(),
        Some("code-after") => b.env_overrides().namespace("code"),
        Some("backend-in-code") => b.redis("redis://127.0.0.1:1/").env_overrides(),
        Some("memory-in-code") => b.env_overrides().memory(),
        Some("log-off-in-code") => b.log(false).env_overrides(),
        Some("own-default") => {
            // The documented way to give a default the environment may replace.
            let ns = std::env::var("CACHE_NAMESPACE").unwrap_or_else(|_| "mine".to_owned());
            b.namespace(&ns).env_overrides()
        }
        _ => {
            eprintln!(
                "usage: env_worker env|code-before|code-after|backend-in-code|memory-in-code|log-off-in-code|own-default"
            );
            std::process::exit(2);
        }
    };
    let cache = b.build().await?;
    println!("namespace={}", cache.namespace());
    println!("cache={cache:?}");
    if !cache.backend().is_redis() {
        cache.set("k", &1u8, Duration::from_secs(60)).await?;
    }
    Ok(())
}
