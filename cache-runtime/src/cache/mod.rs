//! The `Cache` handle. Its concerns live in their own files: the builder,
//! the guard (timeout, breaker, error mapping), the explicit operations and
//! cache-aside.

mod aside;
mod builder;
mod conditional;
mod guard;
mod ops;
mod tagged;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

pub(crate) use aside::{always, optional, refusing};
pub use builder::{CacheBuilder, DEFAULT_NAMESPACE};
pub(crate) use guard::trace_op;

use crate::breaker::Breaker;
use crate::codec::Codec;
use crate::flight::Flights;
use crate::stats::{Scope, StatsInner};
use crate::store::{Layout, Store};
use crate::{CacheError, Invalidator, Stats};

/// Where a [`Cache`] keeps its entries ([`Cache::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// In this process ([`Cache::memory`]).
    InProcess,
    /// A standalone Redis server.
    Redis,
    /// The Redis primary that a set of sentinels names.
    RedisSentinel,
    /// A Redis Cluster.
    RedisCluster,
    /// Nowhere: [`Cache::disabled`].
    Disabled,
}

impl BackendKind {
    /// True when entries are shared through Redis (standalone, Sentinel or
    /// Cluster), false when they live in this process only.
    pub fn is_redis(self) -> bool {
        matches!(
            self,
            BackendKind::Redis | BackendKind::RedisSentinel | BackendKind::RedisCluster
        )
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::InProcess => "in-process",
            BackendKind::Redis => "redis",
            BackendKind::RedisSentinel => "redis-sentinel",
            BackendKind::RedisCluster => "redis-cluster",
            BackendKind::Disabled => "disabled",
        })
    }
}

/// A cache handle: cheap to clone (an `Arc` inside), `Send + Sync`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cache_runtime::{Cache, Ttl};
/// let cache = Cache::memory();
/// cache.set("greeting", &"hello", Ttl::SHORT).await?;
/// assert_eq!(cache.get::<String>("greeting").await?, Some("hello".to_owned()));
///
/// // Cache-aside: the loader runs on a miss only.
/// let n = cache.get_or_load("answer", Ttl::MEDIUM, || async { Ok::<_, std::io::Error>(42) }).await?;
/// assert_eq!(n, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) store: Store,
    pub(crate) codec: Codec,
    op_timeout: Duration,
    jitter: f64,
    max_value_bytes: usize,
    lease_ttl: Duration,
    pub(crate) scan_batch: usize,
    compress_above: Option<usize>,
    /// Replicas that must acknowledge an invalidation, and how long to wait.
    durable: Option<(u32, Duration)>,
    /// One per failure domain of the store (see `Store::shards`).
    breakers: Vec<Breaker>,
    pub(crate) flights: Flights,
    pub(crate) stats: StatsInner,
    warned_oversized: AtomicBool,
    warned_encode: AtomicBool,
    /// Print each operation in the original's shape (`CACHE_LOG`, see `log.rs`).
    pub(crate) log: bool,
    /// The near tier, with the task that keeps it coherent.
    pub(crate) near: Option<Near>,
}

/// A near tier and its channel task, which ends with it.
pub(crate) struct Near {
    pub(crate) tier: Arc<crate::near::Tier>,
    #[cfg(feature = "redis")]
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for Near {
    fn drop(&mut self) {
        #[cfg(feature = "redis")]
        self.task.abort();
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.layout.namespace())
            .field("backend", &self.inner.store)
            .field("codec", &self.inner.codec)
            .field("op_timeout", &self.inner.op_timeout)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// An in-process cache with the default settings.
    pub fn memory() -> Cache {
        CacheBuilder::default().build_memory()
    }

    /// A cache that caches nothing, for tests and for turning caching off:
    /// every [`get_or_load`](Self::get_or_load) (and every `#[cached]`
    /// call) runs its loader, concurrent callers included; nothing is
    /// stored. The explicit operations succeed without effect: `get`
    /// returns `None`, `set` and the invalidations are no-ops (`set` still
    /// serializes the value, so a type that cannot be cached fails the same
    /// way as with a real cache), `exists` is `false`, `incr_by(k, n)`
    /// returns `n`.
    ///
    /// [`Cache::from_env`] builds one when `CACHE_DISABLED=1`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::disabled();
    /// cache.set("k", &1, Ttl::LONG).await?;
    /// assert_eq!(cache.get::<i32>("k").await?, None);
    /// # Ok(()) }
    /// ```
    pub fn disabled() -> Cache {
        CacheBuilder::default().disabled().build_memory()
    }

    /// A Redis cache with the default settings. Errors only for a malformed
    /// URL: it connects lazily and succeeds while Redis is down.
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::InvalidUrl`] for a malformed URL, and
    /// [`CacheError::Config`] for a `rediss://` URL without the `tls` feature.
    /// Never a connection error.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn redis(url: &str) -> Result<Cache, CacheError> {
        Cache::builder().redis(url).build().await
    }

    /// `REDIS_URL` set and non-empty → Redis, otherwise in-process;
    /// `CACHE_NAMESPACE` → namespace; `CACHE_LOG=1` → every operation
    /// printed to stderr (see [`log`](crate::log)). See
    /// [`CacheBuilder::env_overrides`] for every variable.
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::Config`] or [`CacheError::InvalidUrl`] for a bad
    /// value in the environment (see [`CacheBuilder::build`]). Never a
    /// connection error.
    pub async fn from_env() -> Result<Cache, CacheError> {
        Cache::builder().env_overrides().build().await
    }

    /// A builder for every other setting.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The key prefix of this cache.
    pub fn namespace(&self) -> &str {
        self.inner.layout.namespace()
    }

    /// Where this cache keeps its entries, for logs and status pages.
    ///
    /// ```
    /// use cache_runtime::{BackendKind, Cache};
    /// assert_eq!(Cache::memory().backend(), BackendKind::InProcess);
    /// assert_eq!(Cache::memory().backend().to_string(), "in-process");
    /// ```
    pub fn backend(&self) -> BackendKind {
        self.inner.store.kind()
    }

    /// The key as stored, for tests that plant or inspect raw values; see
    /// `__private::full_key`.
    pub(crate) fn full_key(&self, key: &str) -> String {
        self.inner.layout.entry(key)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Invalidation by key, tag, pattern, or the whole namespace.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator::new(self.clone())
    }

    /// True while the near cache serves hits: it is configured
    /// ([`CacheBuilder::near_cache`]) and its invalidation channel answered
    /// within the staleness bound. False otherwise (every read then goes to
    /// Redis).
    pub fn near_cache_live(&self) -> bool {
        self.near_tier().is_some_and(crate::near::Tier::live)
    }

    pub(crate) fn near_tier(&self) -> Option<&crate::near::Tier> {
        self.inner.near.as_ref().map(|n| &*n.tier)
    }

    /// True while a circuit breaker is open (the backend, or on a cluster
    /// the shard of some keys, is being skipped).
    pub fn is_degraded(&self) -> bool {
        self.inner.breakers.iter().any(Breaker::is_open)
    }

    fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>, CacheError> {
        let bytes = self.encode_any_size(key, value)?;
        self.check_size(key, &bytes)?;
        Ok(bytes)
    }

    fn encode_any_size<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>, CacheError> {
        let codec = self.inner.codec;
        codec
            .encode_with(value, self.inner.compress_above)
            .map_err(|reason| CacheError::Encode {
                key: key.to_owned(),
                reason,
            })
    }

    fn check_size(&self, key: &str, bytes: &[u8]) -> Result<(), CacheError> {
        if bytes.len() > self.inner.max_value_bytes {
            return Err(CacheError::TooLarge {
                key: key.to_owned(),
                size: bytes.len(),
                limit: self.inner.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Counts and logs a value that is not cached: once per cache and kind
    /// at `warn`, then at `debug`, so a hot oversized key cannot flood the
    /// log.
    fn not_cached(&self, key: &str, e: &CacheError, scope: &Scope<'_>) {
        use std::sync::atomic::Ordering::Relaxed;
        let warned = match e {
            CacheError::TooLarge { .. } => {
                scope.add(|c| &c.oversized);
                &self.inner.warned_oversized
            }
            _ => {
                scope.add(|c| &c.encode_errors);
                &self.inner.warned_encode
            }
        };
        if warned.swap(true, Relaxed) {
            tracing::debug!(target: "cache_runtime", namespace = self.namespace(), function = scope.name, key,
                error = %e, "value not cached");
        } else {
            tracing::warn!(target: "cache_runtime", namespace = self.namespace(), function = scope.name, key, error = %e,
                "value not cached (further cases are logged at debug and counted in stats)");
        }
    }
}
