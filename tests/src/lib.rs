//! Test support: the `redis-server` harness, a server shared per test
//! binary, and backend-parametrised cache constructors.

pub mod cluster;
pub mod fleet;
mod harness;
pub mod sentinel;

pub use cluster::{RedisCluster, key_slot, shared_cluster};
pub use harness::{RedisServer, free_port};
pub use sentinel::{SentinelSetup, shared_sentinel};

use std::sync::OnceLock;

/// The server shared by the tests of one test binary: started on first use,
/// stopped when the binary exits. Tests isolate themselves by namespace.
pub fn shared_redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A namespace no other test uses: `t{n}x{pid}`.
pub fn unique_namespace(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}x{}", N.fetch_add(1, Ordering::Relaxed), std::process::id())
}

/// Which backend a conformance test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `Cache::memory()`-style, in process.
    Memory,
    /// The shared real `redis-server`.
    Redis,
}

/// A cache on `backend` with a fresh namespace.
pub async fn cache_for(backend: Backend) -> cache_runtime::Cache {
    let b = cache_runtime::Cache::builder().namespace(&unique_namespace("t"));
    match backend {
        Backend::Memory => b.memory().build().await.expect("memory cache"),
        Backend::Redis => b.redis(&shared_redis().url()).build().await.expect("redis cache"),
    }
}
