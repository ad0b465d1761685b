//! Test support: the `redis-server` harness, a server shared per test
//! binary, and backend-parametrised cache constructors.

pub mod cluster;
pub mod fleet;
mod harness;
pub mod proxy;
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
    /// The shared Redis Cluster of this test binary (6 nodes).
    Cluster,
}

/// Every backend, for tests that loop over them.
pub const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Redis, Backend::Cluster];

/// `builder` pointed at `backend`'s storage (the shared servers).
pub fn on(backend: Backend, builder: cache_runtime::CacheBuilder) -> cache_runtime::CacheBuilder {
    match backend {
        Backend::Memory => builder.memory(),
        Backend::Redis => builder.redis(&shared_redis().url()),
        Backend::Cluster => builder.redis_cluster(shared_cluster().seed_urls()),
    }
}

/// A cache on `backend` with a fresh namespace.
pub async fn cache_for(backend: Backend) -> cache_runtime::Cache {
    let b = cache_runtime::Cache::builder().namespace(&unique_namespace("t"));
    on(backend, b).build().await.expect("cache")
}
