//! The `Cache` handle: construction, the explicit operations, and
//! cache-aside.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, BackendError, KeyTtl, MemoryBackend, RedisBackend};
use crate::breaker::{Breaker, Change};
use crate::codec::{self, Codec};
use crate::flight::{self, Flights, Outcome, Role};
use crate::stats::{Scope, StatsInner};
use crate::{CacheError, Invalidator, Policy, Stats};

/// Default namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "cache";

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
    pub(crate) namespace: String,
    pub(crate) backend: Backend,
    codec: Codec,
    op_timeout: Duration,
    jitter: f64,
    max_value_bytes: usize,
    lease_ttl: Duration,
    pub(crate) scan_batch: usize,
    breaker: Breaker,
    pub(crate) flights: Flights,
    pub(crate) stats: StatsInner,
    warned_oversized: std::sync::atomic::AtomicBool,
    warned_encode: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.namespace)
            .field("backend", &self.inner.backend)
            .field("codec", &self.inner.codec)
            .field("op_timeout", &self.inner.op_timeout)
            .finish_non_exhaustive()
    }
}

/// Which storage a [`CacheBuilder`] builds.
#[derive(Debug, Clone)]
enum BackendChoice {
    Memory,
    Redis(String),
}

/// Configures a [`Cache`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
/// use std::time::Duration;
/// let cache = cache_runtime::Cache::builder()
///     .namespace("lms")
///     .memory()
///     .operation_timeout(Duration::from_millis(200))
///     .build()
///     .await?;
/// assert_eq!(cache.namespace(), "lms");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheBuilder {
    namespace: String,
    backend: BackendChoice,
    codec: Codec,
    op_timeout: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    jitter: f64,
    max_value_bytes: usize,
    memory_capacity: u64,
    scan_batch: usize,
    lease_ttl: Duration,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            backend: BackendChoice::Memory,
            codec: Codec::default(),
            op_timeout: Duration::from_millis(250),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            jitter: 0.1,
            max_value_bytes: 4 * 1024 * 1024,
            memory_capacity: 128 * 1024 * 1024,
            scan_batch: 500,
            lease_ttl: Duration::from_secs(30),
        }
    }
}

impl CacheBuilder {
    /// Prefix of every key: `{namespace}:{key}`. Default `cache`. Letters,
    /// digits, `_`, `-`, `.`; no `:` so that namespaces never overlap.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// Store in Redis at this URL (`redis://`, `rediss://` with the `tls`
    /// feature, `redis+unix://`; user and password in the URL for ACLs).
    pub fn redis(mut self, url: &str) -> Self {
        self.backend = BackendChoice::Redis(url.to_owned());
        self
    }

    /// Store in this process (the default).
    pub fn memory(mut self) -> Self {
        self.backend = BackendChoice::Memory;
        self
    }

    /// Applies the environment over the settings so far: `REDIS_URL` set and
    /// non-empty → Redis at that URL, otherwise in-process;
    /// `CACHE_NAMESPACE` set and non-empty → namespace. So an application can
    /// give its own defaults and let deployment override them:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder().namespace("lms").from_env().build().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_env(mut self) -> Self {
        if let Ok(ns) = std::env::var("CACHE_NAMESPACE")
            && !ns.trim().is_empty()
        {
            self = self.namespace(ns.trim());
        }
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => self.redis(url.trim()),
            _ => self.memory(),
        }
    }

    /// Serialization format of new values (reads accept every codec).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Upper bound of every backend call, connecting included. Default 250 ms.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Consecutive backend failures that open the circuit (default 5), and how
    /// long it stays open before one probe call is let through (default 1 s).
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// Fraction of the TTL by which `get_or_load` randomly shortens each
    /// entry's lifetime, so entries written together do not expire together.
    /// Default 0.1; 0 turns it off. Explicit `set` calls are never jittered.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// Largest encoded value that is stored (default 4 MiB). Larger values
    /// are returned to the caller but not cached.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Capacity of the in-process backend in bytes of keys and values
    /// (default 128 MiB); least useful entries are evicted beyond it.
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_capacity = bytes;
        self
    }

    /// How long a load may take and still store its value (default 30 s).
    /// Before a loader runs, the cache takes a lease on the key; an
    /// invalidation or write of the key revokes it, and the loaded value is
    /// only stored while the lease is held. This closes the stale-set race:
    /// a value loaded before an invalidation is never stored after it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// `SCAN ... COUNT n` batch size of pattern deletion (default 500).
    pub fn scan_batch(mut self, n: usize) -> Self {
        self.scan_batch = n;
        self
    }

    /// Builds the cache. Never waits for Redis: it connects on first use, so
    /// this succeeds while Redis is down. Errors only for a bad configuration
    /// (malformed URL, invalid namespace, out-of-range setting).
    pub async fn build(self) -> Result<Cache, CacheError> {
        crate::keys::validate_namespace(&self.namespace).map_err(CacheError::Config)?;
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(CacheError::Config(format!(
                "ttl_jitter must be in [0, 1), got {}",
                self.jitter
            )));
        }
        if self.op_timeout.is_zero() {
            return Err(CacheError::Config("operation_timeout must be positive".into()));
        }
        let backend = match &self.backend {
            BackendChoice::Memory => Backend::Memory(MemoryBackend::new(self.memory_capacity)),
            BackendChoice::Redis(url) if url.starts_with("rediss:") && !cfg!(feature = "tls") => {
                return Err(CacheError::Config(
                    "`rediss://` URLs need the `tls` feature of cache-runtime".into(),
                ));
            }
            BackendChoice::Redis(url) => {
                Backend::Redis(
                    RedisBackend::new(url, self.op_timeout).map_err(|e| CacheError::InvalidUrl {
                        reason: format!("{}: {e}", crate::backend::redact(url)),
                    })?,
                )
            }
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                namespace: self.namespace,
                backend,
                codec: self.codec,
                op_timeout: self.op_timeout,
                jitter: self.jitter,
                max_value_bytes: self.max_value_bytes,
                lease_ttl: self.lease_ttl,
                scan_batch: self.scan_batch.max(1),
                breaker: Breaker::new(self.breaker_threshold, self.breaker_cooldown),
                flights: Flights::default(),
                stats: StatsInner::default(),
                warned_oversized: Default::default(),
                warned_encode: Default::default(),
            }),
        })
    }

    fn build_memory(self) -> Cache {
        // The memory backend has no fallible settings beyond the namespace,
        // which is the default here.
        poll_ready_now(self.build()).unwrap_or_else(|e| unreachable!("default memory cache: {e}"))
    }
}

/// Polls a future that never awaits anything pending (the memory build).
fn poll_ready_now<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("building a memory cache does not wait"),
    }
}

impl Cache {
    /// An in-process cache with the default settings.
    pub fn memory() -> Cache {
        CacheBuilder::default().build_memory()
    }

    /// A Redis cache with the default settings. Errors only for a malformed
    /// URL: it connects lazily and succeeds while Redis is down.
    pub async fn redis(url: &str) -> Result<Cache, CacheError> {
        Cache::builder().redis(url).build().await
    }

    /// `REDIS_URL` set and non-empty → Redis, otherwise in-process;
    /// `CACHE_NAMESPACE` → namespace.
    pub async fn from_env() -> Result<Cache, CacheError> {
        Cache::builder().from_env().build().await
    }

    /// A builder for every other setting.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The key prefix of this cache.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// `true` for a Redis-backed cache.
    pub fn is_redis(&self) -> bool {
        matches!(self.inner.backend, Backend::Redis(_))
    }

    /// The key as stored: `{namespace}:{key}`.
    pub fn full_key(&self, key: &str) -> String {
        let mut s = String::with_capacity(self.inner.namespace.len() + 1 + key.len());
        s.push_str(&self.inner.namespace);
        s.push(':');
        s.push_str(key);
        s
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Invalidation by key, tag, pattern, or the whole namespace.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator::new(self.clone())
    }

    /// True while the circuit breaker is open (the backend is being skipped).
    pub fn is_degraded(&self) -> bool {
        self.inner.breaker.is_open()
    }

    // ------------------------------------------------------------ plumbing

    /// Runs one backend call under the breaker and the timeout, mapping
    /// failures to `CacheError` with the key.
    pub(crate) async fn call<R>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<R, BackendError>>,
    ) -> Result<R, CacheError> {
        self.guarded(key, fut, true).await
    }

    /// Like [`call`](Self::call) without the timeout, for walks of the key
    /// space (`SCAN` loops) that take many round trips; each round trip is
    /// still bounded by the connection's response timeout (twice the
    /// operation timeout).
    pub(crate) async fn call_unbounded<R>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<R, BackendError>>,
    ) -> Result<R, CacheError> {
        self.guarded(key, fut, false).await
    }

    async fn guarded<R>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<R, BackendError>>,
        bounded: bool,
    ) -> Result<R, CacheError> {
        let inner = &*self.inner;
        if matches!(inner.backend, Backend::Memory(_)) {
            return fut.await.map_err(|e| map_err(key, e, inner.op_timeout));
        }
        if !inner.breaker.allow() {
            return Err(CacheError::Unavailable { key: key.to_owned() });
        }
        let result = if bounded {
            match tokio::time::timeout(inner.op_timeout, fut).await {
                Ok(result) => result,
                Err(_) => {
                    self.breaker_change(inner.breaker.on_failure());
                    return Err(CacheError::Timeout {
                        key: key.to_owned(),
                        timeout: inner.op_timeout,
                    });
                }
            }
        } else {
            fut.await
        };
        match result {
            Ok(v) => {
                self.breaker_change(inner.breaker.on_success());
                Ok(v)
            }
            Err(e) => {
                if e.is_outage() {
                    self.breaker_change(inner.breaker.on_failure());
                }
                Err(map_err(key, e, inner.op_timeout))
            }
        }
    }

    fn breaker_change(&self, change: Change) {
        use std::sync::atomic::Ordering::Relaxed;
        match change {
            Change::None => {}
            Change::Opened => {
                self.inner.stats.breaker_opened.fetch_add(1, Relaxed);
                tracing::warn!(target: "cache_runtime", namespace = %self.inner.namespace,
                    "cache backend failing: circuit opened, calls go straight to their loaders");
            }
            Change::Closed => {
                self.inner.stats.breaker_closed.fetch_add(1, Relaxed);
                tracing::info!(target: "cache_runtime", namespace = %self.inner.namespace,
                    "cache backend answering again: circuit closed");
            }
        }
    }

    fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>, CacheError> {
        let bytes = self.inner.codec.encode(value).map_err(|reason| CacheError::Encode {
            key: key.to_owned(),
            reason,
        })?;
        if bytes.len() > self.inner.max_value_bytes {
            return Err(CacheError::TooLarge {
                key: key.to_owned(),
                size: bytes.len(),
                limit: self.inner.max_value_bytes,
            });
        }
        Ok(bytes)
    }

    // ------------------------------------------------- explicit operations

    /// Reads a value. `Ok(None)` when absent or expired; `Err(Decode)` when
    /// the stored bytes are not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let start = Instant::now();
        let full = self.full_key(key);
        let raw = self.call(key, self.inner.backend.get(&full)).await;
        let result = match raw {
            Ok(Some(raw)) => match self.fresh_value(key, &raw, &[], &[]).await {
                Ok(Some(value)) => codec::decode::<T>(value).map(Some),
                Ok(None) => Ok(None),
                Err(reason) => Err(reason),
            }
            .map_err(|reason| CacheError::Decode {
                key: key.to_owned(),
                reason,
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(Some(_)) => "hit",
            Ok(None) => "miss",
            Err(_) => "error",
        };
        trace_op("GET", key, outcome, start);
        result
    }

    /// Stores a value for exactly `ttl`.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Duration) -> Result<(), CacheError> {
        let start = Instant::now();
        let bytes = self.encode(key, value)?;
        let full = self.full_key(key);
        let r = self.call(key, self.inner.backend.set(&full, bytes, ttl)).await;
        trace_op("SET", key, if r.is_ok() { "ok" } else { "error" }, start);
        r
    }

    /// Deletes a key; `true` if it existed.
    pub async fn del(&self, key: &str) -> Result<bool, CacheError> {
        let start = Instant::now();
        self.inner.flights.invalidated();
        let r = self
            .call(key, self.inner.backend.del(&[self.full_key(key)]))
            .await
            .map(|n| n > 0);
        trace_op("DEL", key, if r.is_ok() { "ok" } else { "error" }, start);
        r
    }

    /// Deletes every key of this namespace matching a Redis glob (`*`, `?`,
    /// `[a-z]`, `\x`), with `SCAN` + `UNLINK` in batches, never `KEYS`.
    /// Returns how many keys were removed. Escape interpolated parts of the
    /// pattern with [`keys::escape`](crate::keys::escape): escaped values
    /// contain no glob characters, so they match only themselves.
    pub async fn del_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        let start = Instant::now();
        self.inner.flights.invalidated();
        let full = self.full_key(pattern);
        let r = self
            .call_unbounded(pattern, self.inner.backend.del_pattern(&full, self.inner.scan_batch))
            .await;
        trace_op("DEL_PATTERN", pattern, if r.is_ok() { "ok" } else { "error" }, start);
        r
    }

    /// Whether the key exists.
    pub async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.call(key, self.inner.backend.exists(&self.full_key(key))).await
    }

    /// Remaining lifetime of the key.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl, CacheError> {
        self.call(key, self.inner.backend.ttl(&self.full_key(key))).await
    }

    /// Adds one to an integer counter (created at 0), keeping its TTL.
    pub async fn incr(&self, key: &str) -> Result<i64, CacheError> {
        self.incr_by(key, 1).await
    }

    /// Adds `by` to an integer counter (created at 0), keeping its TTL.
    pub async fn incr_by(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        self.call(key, self.inner.backend.incr_by(&self.full_key(key), by))
            .await
    }

    /// Sets a new TTL on an existing key; `false` if the key does not exist.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.call(key, self.inner.backend.expire(&self.full_key(key), ttl))
            .await
    }

    // ---------------------------------------------------------- cache-aside

    /// Cache-aside: returns the cached value of `key`, or runs `loader`,
    /// stores its `Ok` value under `policy`, and returns it. `Err` is
    /// returned as is and not stored.
    ///
    /// Concurrent misses of one key in this process run the loader once
    /// (single-flight); the others receive its value. If the leading call is
    /// cancelled, a waiting call takes over. **Cache failures never surface
    /// here:** a backend that is down, slow or holding undecodable bytes makes
    /// a miss, and the loader's result is returned.
    ///
    /// The loader may borrow from the caller; the returned future is `Send`
    /// whenever the loader's future, `T` and `E` are.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use cache_runtime::{Cache, Policy, Ttl};
    /// let cache = Cache::memory();
    /// let db = vec!["intro to rust".to_owned()];
    /// let title = cache
    ///     .get_or_load("course:0", Policy::ttl(Ttl::LONG).tags(["courses"]), || async {
    ///         db.first().cloned().ok_or("not found")
    ///     })
    ///     .await;
    /// assert_eq!(title.as_deref(), Ok("intro to rust"));
    /// # }
    /// ```
    pub async fn get_or_load<T, E, F, Fut>(&self, key: &str, policy: impl Into<Policy>, loader: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = policy.into();
        let ttl = policy.ttl;
        self.load_through(key, &policy, loader, |_| Some(ttl)).await
    }

    /// Like [`get_or_load`](Self::get_or_load) for loaders returning an
    /// `Option`: `Some` is cached for the policy's TTL, `None` only when the
    /// policy has a [`negative_ttl`](Policy::negative_ttl), for that long.
    pub async fn get_or_load_optional<T, E, F, Fut>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let policy = policy.into();
        let (ttl, negative) = (policy.ttl, policy.negative_ttl);
        self.load_through(
            key,
            &policy,
            loader,
            |v: &Option<T>| {
                if v.is_some() { Some(ttl) } else { negative }
            },
        )
        .await
    }

    /// Write-through: runs `loader` always and stores its `Ok` value
    /// (Spring's `@CachePut`). Store failures are logged, never returned.
    pub async fn put_with<T, E, F, Fut>(&self, key: &str, policy: impl Into<Policy>, loader: F) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = policy.into();
        let scope = self.inner.stats.scope(policy.name);
        scope.add(|c| &c.loads);
        let value = loader().await.inspect_err(|_| scope.add(|c| &c.load_errors))?;
        let full = self.full_key(key);
        if let Some(bytes) = self.encode_for_store(key, &value, &scope) {
            self.store(key, &full, bytes, policy.ttl, None, &scope).await;
        }
        Ok(value)
    }

    /// The shared cache-aside loop. `ttl_for` decides, per value, whether and
    /// how long it is stored.
    async fn load_through<T, E, F, Fut>(
        &self,
        key: &str,
        policy: &Policy,
        loader: F,
        ttl_for: impl Fn(&T) -> Option<Duration>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let scope = self.inner.stats.scope(policy.name);
        let full = self.full_key(key);
        let tag_keys: Vec<String> = policy.tags.iter().map(|t| self.tag_key(t)).collect();
        let mut loader = Some(loader);
        loop {
            // 1. Read the entry, and the versions of its tags, in one round trip.
            let versions = match self.read::<T>(key, &full, &tag_keys, &scope).await {
                Read::Hit(v) => {
                    scope.add(|c| &c.hits);
                    trace_op("GET", key, "hit", start);
                    return Ok(v);
                }
                Read::Miss { versions, outcome } => {
                    scope.add(|c| &c.misses);
                    trace_op("GET", key, outcome, start);
                    versions
                }
            };

            // 2. Load once per key in this process.
            match self.inner.flights.join(&full) {
                Role::Waiter(rx) => {
                    scope.add(|c| &c.coalesced_waits);
                    if let Some(bytes) = flight::wait(rx).await {
                        match codec::decode::<T>(&bytes) {
                            Ok(v) => return Ok(v),
                            // Another type under the same key: load our own.
                            Err(_) => {
                                let load = loader.take().unwrap_or_else(|| unreachable!("loader taken twice"));
                                scope.add(|c| &c.loads);
                                return load().await.inspect_err(|_| scope.add(|c| &c.load_errors));
                            }
                        }
                    }
                    // Leader failed or was cancelled: go round again.
                }
                Role::Leader(leader) => {
                    let load = loader.take().unwrap_or_else(|| unreachable!("loader taken twice"));
                    // The lease is taken before the loader reads the source:
                    // an invalidation after this point revokes it.
                    let token = crate::ttl::random_u64();
                    let leased = self
                        .call(key, self.inner.backend.lease(&full, token, self.inner.lease_ttl))
                        .await
                        .is_ok();
                    scope.add(|c| &c.loads);
                    let load_start = Instant::now();
                    let value = match load().await {
                        Ok(v) => v,
                        Err(e) => {
                            scope.add(|c| &c.load_errors);
                            leader.publish(Outcome::Failed);
                            return Err(e);
                        }
                    };
                    trace_op("LOAD", key, "ok", load_start);
                    match self.encode_for_store(key, &value, &scope) {
                        Some(bytes) => {
                            let bytes: Arc<[u8]> = bytes.into();
                            // Waiters get the value now; the flight stays open
                            // until the store is done, so late arrivals join it
                            // instead of missing again.
                            leader.publish(Outcome::Value(bytes.clone()));
                            // Stored under the tag versions read *before* the
                            // load: a tag invalidated meanwhile makes it stale.
                            let stored = match versions {
                                _ if tag_keys.is_empty() => Some(bytes.to_vec()),
                                Some(v) => Some(codec::with_tags(&tag_keys, &v, &bytes)),
                                None => None, // versions unknown: storing could serve stale data
                            };
                            if let (Some(ttl), Some(stored), true) = (ttl_for(&value), stored, leased) {
                                let ttl = crate::ttl::jittered(ttl, self.inner.jitter);
                                self.store(key, &full, stored, ttl, Some(token), &scope).await;
                            }
                        }
                        None => leader.publish(Outcome::Failed),
                    }
                    return Ok(value);
                }
            }
        }
    }

    /// Reads and decodes an entry, checking its tags. Every failure is a miss.
    async fn read<T: DeserializeOwned>(
        &self,
        key: &str,
        full: &str,
        tag_keys: &[String],
        scope: &Scope<'_>,
    ) -> Read<T> {
        let (raw, versions) = match self.call(key, self.inner.backend.get_with_tags(full, tag_keys)).await {
            Ok((raw, versions)) => (raw, versions),
            Err(CacheError::Unavailable { .. }) => {
                scope.add(|c| &c.bypassed);
                return Read::Miss {
                    versions: None,
                    outcome: "bypass",
                };
            }
            Err(e) => {
                scope.add(|c| &c.backend_errors);
                tracing::debug!(target: "cache_runtime", key, error = %e, "cache read failed: treated as a miss");
                return Read::Miss {
                    versions: None,
                    outcome: "error",
                };
            }
        };
        let Some(raw) = raw else {
            return Read::Miss {
                versions: Some(versions),
                outcome: "miss",
            };
        };
        let decoded = match self.fresh_value(key, &raw, tag_keys, &versions).await {
            Ok(Some(value)) => codec::decode::<T>(value),
            // A tag of the entry was invalidated after it was loaded.
            Ok(None) => {
                return Read::Miss {
                    versions: Some(versions),
                    outcome: "stale",
                };
            }
            Err(reason) => Err(reason),
        };
        match decoded {
            Ok(v) => Read::Hit(v),
            Err(reason) => {
                scope.add(|c| &c.decode_errors);
                tracing::debug!(target: "cache_runtime", key, %reason, "undecodable value: treated as a miss");
                Read::Miss {
                    versions: Some(versions),
                    outcome: "undecodable",
                }
            }
        }
    }

    /// The value part of a stored entry if none of its tags was invalidated
    /// since it was loaded; `Ok(None)` if one was. `known` holds the current
    /// versions of `tag_keys`; tags of the entry not among them are fetched.
    async fn fresh_value<'r>(
        &self,
        key: &str,
        raw: &'r [u8],
        tag_keys: &[String],
        known: &[u64],
    ) -> Result<Option<&'r [u8]>, String> {
        let (stored, value) = codec::split_tags(raw)?;
        if stored.is_empty() {
            return Ok(Some(value));
        }
        let mut unknown: Vec<(String, u64)> = Vec::new();
        for (tag, version) in &stored {
            match tag_keys.iter().position(|t| t == tag) {
                Some(i) if known.get(i) == Some(version) => {}
                Some(_) => return Ok(None),
                None => unknown.push(((*tag).to_owned(), *version)),
            }
        }
        if !unknown.is_empty() {
            let keys: Vec<String> = unknown.iter().map(|(t, _)| t.clone()).collect();
            let current = self
                .call(key, self.inner.backend.tag_versions(&keys))
                .await
                .map_err(|e| e.to_string())?;
            if unknown.iter().zip(current).any(|((_, stored), now)| *stored != now) {
                return Ok(None);
            }
        }
        Ok(Some(value))
    }

    /// The internal key holding a tag's version.
    pub(crate) fn tag_key(&self, tag: &str) -> String {
        format!("{}:{}tag:{tag}", self.inner.namespace, crate::backend::INTERNAL_MARK)
    }

    fn encode_for_store<T: Serialize>(&self, key: &str, value: &T, scope: &Scope<'_>) -> Option<Vec<u8>> {
        match self.encode(key, value) {
            Ok(b) => Some(b),
            Err(e) => {
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
                // Once per cache and kind at `warn` (the stats keep counting),
                // then at `debug`: a hot oversized key must not flood the log.
                if warned.swap(true, Relaxed) {
                    tracing::debug!(target: "cache_runtime", key, error = %e, "value not cached");
                } else {
                    tracing::warn!(target: "cache_runtime", key, error = %e,
                        "value not cached (further cases are logged at debug and counted in stats)");
                }
                None
            }
        }
    }

    /// Writes a loaded value: only while the lease `token` is held when
    /// given (cache-aside fills), unconditionally otherwise (write-through).
    /// Failures are logged and counted, never returned.
    async fn store(&self, key: &str, full: &str, bytes: Vec<u8>, ttl: Duration, lease: Option<u64>, scope: &Scope<'_>) {
        let start = Instant::now();
        let backend = &self.inner.backend;
        let stored = match lease {
            Some(token) => self.call(key, backend.set_if_leased(full, bytes, ttl, token)).await,
            None => self.call(key, backend.set(full, bytes, ttl)).await.map(|()| true),
        };
        match stored {
            Ok(true) => trace_op("SET", key, "ok", start),
            Ok(false) => {
                scope.add(|c| &c.stale_sets_prevented);
                trace_op("SET", key, "stale", start);
            }
            Err(CacheError::Unavailable { .. }) => trace_op("SET", key, "bypass", start),
            Err(e) => {
                scope.add(|c| &c.backend_errors);
                tracing::debug!(target: "cache_runtime", key, error = %e, "cache write failed");
            }
        }
    }
}

enum Read<T> {
    Hit(T),
    /// With the tag versions read alongside when the read succeeded, and the
    /// outcome for the trace: miss, stale, undecodable, error or bypass.
    Miss {
        versions: Option<Vec<u64>>,
        outcome: &'static str,
    },
}

fn map_err(key: &str, e: BackendError, timeout: Duration) -> CacheError {
    match e {
        // The connection's own response timeout (of a SCAN round trip).
        BackendError::Redis(source) if source.is_timeout() => CacheError::Timeout {
            key: key.to_owned(),
            timeout,
        },
        BackendError::Redis(source) => CacheError::Backend {
            key: key.to_owned(),
            source,
        },
        BackendError::NotAnInteger => CacheError::NotAnInteger { key: key.to_owned() },
    }
}

/// One `debug` event per operation: key, outcome and elapsed time, never the
/// value.
pub(crate) fn trace_op(op: &'static str, key: &str, outcome: &'static str, start: Instant) {
    tracing::debug!(
        target: "cache_runtime",
        op,
        key,
        outcome,
        elapsed_us = start.elapsed().as_micros() as u64,
    );
}
