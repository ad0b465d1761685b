//! `CacheBuilder`: settings, their checks, and construction.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Cache, Inner};
use crate::CacheError;
use crate::breaker::Breaker;
use crate::codec::Codec;
use crate::flight::Flights;
use crate::stats::StatsInner;
#[cfg(feature = "redis")]
use crate::store::RedisStore;
use crate::store::{DisabledStore, Layout, MemoryStore, Store};

/// Default namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "cache";

/// Which storage a [`CacheBuilder`] builds.
#[derive(Clone)]
enum BackendChoice {
    Memory,
    Disabled,
    Redis(String),
    /// Seed node URLs.
    Cluster(Vec<String>),
    /// Sentinel URLs and the master's name.
    Sentinel(Vec<String>, String),
}

impl fmt::Debug for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendChoice::Memory => f.write_str("Memory"),
            BackendChoice::Disabled => f.write_str("Disabled"),
            BackendChoice::Redis(url) => f.debug_tuple("Redis").field(&redact(url)).finish(),
            BackendChoice::Cluster(urls) => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
                .finish(),
            BackendChoice::Sentinel(urls, master) => f
                .debug_tuple("Sentinel")
                .field(&urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
                .field(master)
                .finish(),
        }
    }
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
///
/// Every setting is checked by [`build`](Self::build): an out-of-range value
/// is a [`CacheError::Config`] naming the setting, never a panic later.
///
/// # Code and environment
///
/// **A setting made in code wins over the environment.** The
/// [`from_env`](Self::from_env) step only fills what the code did not set
/// (the namespace, the backend, logging), wherever it stands in the chain:
/// `.namespace("tenant-a").env_overrides()` and `.env_overrides().namespace("tenant-a")`
/// both use `tenant-a` whatever `CACHE_NAMESPACE` says, so a variable set
/// for one part of a deployment cannot silently move a cache whose code
/// chose its namespace (or its Redis). To let the environment decide a
/// setting, leave it out of the code: `Cache::builder().env_overrides()` is
/// namespace `CACHE_NAMESPACE`, else `cache`. To give a default of your own
/// that the environment may replace, read the variable yourself:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
/// let ns = std::env::var("CACHE_NAMESPACE").unwrap_or_else(|_| "lms".to_owned());
/// let cache = cache_runtime::Cache::builder().namespace(&ns).env_overrides().build().await?;
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
    compress_above: Option<usize>,
    durable: Option<(u32, Duration)>,
    /// Near tier capacity in bytes (`None`: no near tier).
    near_capacity: Option<u64>,
    /// Its staleness bound ε.
    near_staleness: Duration,
    /// Where the near tier's invalidation channel connects, when not to
    /// the data URL (tests put a proxy there).
    near_channel: Option<String>,
    /// A malformed environment variable, reported by `build`.
    env_error: Option<String>,
    log: bool,
    /// Settings made in code, which the environment does not override.
    explicit: Explicit,
}

/// Which environment-backed settings the code set (see "Code and
/// environment" on [`CacheBuilder`]).
#[derive(Debug, Clone, Copy, Default)]
struct Explicit {
    namespace: bool,
    backend: bool,
    log: bool,
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
            compress_above: Some(DEFAULT_COMPRESS_ABOVE),
            durable: None,
            near_capacity: None,
            near_staleness: DEFAULT_NEAR_STALENESS,
            near_channel: None,
            env_error: None,
            log: false,
            explicit: Explicit::default(),
        }
    }
}

/// Values whose payload is larger than this are compressed by default.
const DEFAULT_COMPRESS_ABOVE: usize = 16 * 1024;

/// Default bound ε of the near cache's staleness.
pub const DEFAULT_NEAR_STALENESS: Duration = Duration::from_millis(50);
/// Longest ε.
const MAX_NEAR_STALENESS: Duration = Duration::from_secs(60);

/// Longest `operation_timeout`.
const MAX_OP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest circuit-breaker cool-down and fill lease.
const MAX_DAY: Duration = Duration::from_secs(86_400);

impl CacheBuilder {
    /// Prefix of every key. Default `cache`. ASCII letters, digits, `_`,
    /// `-`, `.`, so that namespaces never overlap.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self.explicit.namespace = true;
        self
    }

    /// Store in Redis at this URL (`redis://`, `rediss://` with the `tls`
    /// feature, `redis+unix://`; user and password in the URL for ACLs).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, url: &str) -> Self {
        self.backend = BackendChoice::Redis(url.to_owned());
        self.explicit.backend = true;
        self
    }

    /// Store in a Redis Cluster, given seed node URLs (pass every node you
    /// know: one seed that is down must not keep the cache from finding the
    /// others). Connects in the background, like [`redis`](Self::redis).
    /// Needs the `cluster` feature.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn redis_cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.backend = BackendChoice::Cluster(nodes.into_iter().map(|n| n.as_ref().to_owned()).collect());
        self.explicit.backend = true;
        self
    }

    /// Store in the Redis primary that these sentinels (`redis://host:26379`
    /// URLs) know as `master`: on a failover the cache asks them again and
    /// moves to the new primary, without blocking callers. Connects lazily.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis_sentinel(["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"], "mymaster")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_sentinel<I, S>(mut self, sentinels: I, master: &str) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls = sentinels.into_iter().map(|n| n.as_ref().to_owned()).collect();
        self.backend = BackendChoice::Sentinel(urls, master.to_owned());
        self.explicit.backend = true;
        self
    }

    /// Store in this process (the default).
    pub fn memory(mut self) -> Self {
        self.backend = BackendChoice::Memory;
        self.explicit.backend = true;
        self
    }

    /// Cache nothing ([`Cache::disabled`]): every cache-aside call runs its
    /// loader.
    pub fn disabled(mut self) -> Self {
        self.backend = BackendChoice::Disabled;
        self.explicit.backend = true;
        self
    }

    /// Print every operation of this cache to stderr in the original's
    /// shape, `[Cache] GET course:7: HIT (0.21ms)` (default off; the
    /// environment's `CACHE_LOG=1` turns it on through
    /// [`env_overrides`](Self::env_overrides)). See [`log`](crate::log), also
    /// for a `tracing` layer that prints the same lines through your
    /// subscriber.
    pub fn log(mut self, on: bool) -> Self {
        self.log = on;
        self.explicit.log = true;
        self
    }

    /// Fills the settings the code did not make from the environment (a
    /// setting made in code, before or after this call, always wins: see
    /// "Code and environment" above). Variables, read when this is called;
    /// empty ones count as unset:
    ///
    /// | variable | setting |
    /// | --- | --- |
    /// | `CACHE_DISABLED` (`1`/`true`/`yes`) | [`disabled`](Self::disabled), **over any backend set in code**: the switch for tests (`0`/`false`/`no`: no effect; any other value makes [`build`](Self::build) fail) |
    /// | `CACHE_NAMESPACE` | [`namespace`](Self::namespace) |
    /// | `REDIS_CLUSTER_URLS` (comma-separated seed nodes) | [`redis_cluster`](Self::redis_cluster) (feature `cluster`) |
    /// | else `REDIS_SENTINEL_URLS` (comma-separated), `REDIS_SENTINEL_MASTER` (default `mymaster`) | [`redis_sentinel`](Self::redis_sentinel) |
    /// | else `REDIS_URL` | [`redis`](Self::redis); none of the three: [`memory`](Self::memory) |
    /// | `CACHE_LOG` (`1` or `true` on, anything else off) | [`log`](Self::log) |
    ///
    /// The backend is one setting: code that chose any backend keeps it. A
    /// Redis variable in a build without the `redis` feature makes
    /// [`build`](Self::build) return [`CacheError::Config`] rather than
    /// silently caching in process.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
    /// // Backend and logging from the environment; the namespace from code.
    /// let cache = cache_runtime::Cache::builder().namespace("lms").env_overrides().build().await?;
    /// assert_eq!(cache.namespace(), "lms");
    /// # Ok(()) }
    /// ```
    pub fn env_overrides(self) -> Self {
        self.overrides_from(|name| std::env::var(name).ok())
    }

    /// The former name of [`env_overrides`](Self::env_overrides).
    #[deprecated(since = "0.1.0", note = "renamed `env_overrides`: a builder step, not a constructor")]
    #[doc(hidden)]
    pub fn from_env(self) -> Self {
        self.env_overrides()
    }

    /// [`env_overrides`](Self::env_overrides) over any variable lookup.
    fn overrides_from(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect()
        };
        if !self.explicit.namespace
            && let Some(ns) = var("CACHE_NAMESPACE")
        {
            self.namespace = ns;
        }
        if !self.explicit.log
            && let Some(v) = var("CACHE_LOG")
        {
            self.log = v == "1" || v.eq_ignore_ascii_case("true");
        }
        match var("CACHE_DISABLED").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("0" | "false" | "no") => {}
            Some("1" | "true" | "yes") => {
                self.backend = BackendChoice::Disabled;
                return self;
            }
            Some(other) => {
                self.env_error = Some(format!(
                    "CACHE_DISABLED must be 1, true, yes, 0, false or no, got {other:?}"
                ));
                return self;
            }
        }
        if !self.explicit.backend {
            self.backend = if let Some(urls) = var("REDIS_CLUSTER_URLS") {
                BackendChoice::Cluster(list(urls))
            } else if let Some(urls) = var("REDIS_SENTINEL_URLS") {
                let master = var("REDIS_SENTINEL_MASTER").unwrap_or_else(|| "mymaster".to_owned());
                BackendChoice::Sentinel(list(urls), master)
            } else if let Some(url) = var("REDIS_URL") {
                BackendChoice::Redis(url)
            } else {
                BackendChoice::Memory
            };
        }
        self
    }

    /// Serialization format of new values (reads accept every codec).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Upper bound of the backend time of one call (connecting included):
    /// one `get_or_load` waits on the backend at most this long in total,
    /// however many round trips it makes. Default 250 ms; at most 1 h.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Consecutive backend failures that open the circuit (default 5, at
    /// least 1), and how long it stays open before one probe call is let
    /// through (default 1 s, at most a day).
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

    /// How long a load may take and still store its value (default 30 s,
    /// between 1 ms and a day). Before a loader runs, the cache takes a
    /// lease on the key; an invalidation or write of the key revokes it, and
    /// the loaded value is only stored while the lease is held. This closes
    /// the stale-set race: a value loaded before an invalidation is never
    /// stored after it. Other processes missing the same key wait for the
    /// lease holder's value instead of loading (about twice the typical
    /// load time at most, then they load themselves).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Compress values whose serialized payload is larger than `bytes` with
    /// LZ4 (default 16 KiB; `None` turns it off). Only done when it makes the
    /// value smaller; the value header records it, so every reader, with
    /// compression on or off, reads compressed values. The size limit
    /// (`max_value_bytes`) applies to the stored, compressed bytes.
    pub fn compress_above(mut self, bytes: Option<usize>) -> Self {
        self.compress_above = bytes;
        self
    }

    /// Durable invalidation: after an invalidation by key or tag, wait (at
    /// most `timeout`) until `replicas` replicas of the node(s) involved
    /// acknowledged it (`WAIT`), and report [`CacheError::NotDurable`] when
    /// fewer did. Without it (the default), an invalidation acknowledged by a
    /// primary that dies before its replica received it is lost in the
    /// failover, and entries it dropped can be served again. Pattern and
    /// `all()` invalidations do not wait.
    pub fn durable_invalidation(mut self, replicas: u32, timeout: Duration) -> Self {
        self.durable = Some((replicas, timeout));
        self
    }

    /// A near cache: a typed in-process tier of at most `capacity_bytes`
    /// (keys, encoded values and per-entry overhead counted) in front of
    /// Redis (standalone or Cluster). A near hit returns a clone of the
    /// value without a round trip or decoding; it needs a value type that is
    /// `Clone + Send + Sync + 'static` (`#[cached]` functions use it
    /// whenever theirs is, and [`Cache::get_or_load_cloned`] does).
    ///
    /// **Coherent within a bound ε** ([`near_cache_max_staleness`](Self::near_cache_max_staleness),
    /// default 50 ms): every process holds one extra connection per Redis
    /// primary on which Redis pushes invalidations of this namespace's keys
    /// (server-assisted client-side caching, `CLIENT TRACKING … BCAST`):
    /// any write, delete, expiry, eviction or flush, by any client. The
    /// tier is served only while that connection answered a ping sent at
    /// most ε ago, so a read that starts ε or later after an invalidation
    /// returned anywhere never sees the old value, even if the connection
    /// silently stalls; on a disconnect, a reconnect or a topology change
    /// it is cleared. This process's own invalidations apply to it before
    /// they return. Opt a function out with `#[cached(local = false)]` or
    /// [`Policy::local`](crate::Policy::local).
    ///
    /// With the in-process or disabled backend (e.g. `CACHE_DISABLED=1`),
    /// and with Sentinel, there is no near tier and this setting has no
    /// effect.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .near_cache(64 * 1024 * 1024)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn near_cache(mut self, capacity_bytes: u64) -> Self {
        self.near_capacity = Some(capacity_bytes);
        self
    }

    /// The near cache's staleness bound ε (default 50 ms, at most 1 min):
    /// see [`near_cache`](Self::near_cache). Smaller costs more pings (one
    /// every ε/4 per primary).
    pub fn near_cache_max_staleness(mut self, max_staleness: Duration) -> Self {
        self.near_staleness = max_staleness;
        self
    }

    /// Tests only: the near cache's invalidation channel connects here
    /// instead of to the data URL (standalone Redis).
    #[doc(hidden)]
    pub fn __near_channel_url(mut self, url: &str) -> Self {
        self.near_channel = Some(url.to_owned());
        self
    }

    /// `SCAN ... COUNT n` batch size of pattern deletion (default 500).
    pub fn scan_batch(mut self, n: usize) -> Self {
        self.scan_batch = n;
        self
    }

    /// Checks every setting: `CacheError::Config` names the first bad one.
    fn check(&self) -> Result<(), CacheError> {
        let bad = |msg: String| Err(CacheError::Config(msg));
        if let Some(e) = &self.env_error {
            return bad(e.clone());
        }
        crate::keys::validate_namespace(&self.namespace).map_err(CacheError::Config)?;
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return bad(format!("ttl_jitter must be in [0, 1), got {}", self.jitter));
        }
        if self.op_timeout.is_zero() || self.op_timeout > MAX_OP_TIMEOUT {
            return bad(format!(
                "operation_timeout must be positive and at most 1 h, got {:?}",
                self.op_timeout
            ));
        }
        if self.breaker_threshold == 0 {
            return bad("circuit_breaker failures must be at least 1".into());
        }
        if self.breaker_cooldown.is_zero() || self.breaker_cooldown > MAX_DAY {
            return bad(format!(
                "circuit_breaker cool-down must be positive and at most a day, got {:?}",
                self.breaker_cooldown
            ));
        }
        if self.lease_ttl < Duration::from_millis(1) || self.lease_ttl > MAX_DAY {
            return bad(format!(
                "lease_ttl must be between 1 ms and a day, got {:?}",
                self.lease_ttl
            ));
        }
        if self.max_value_bytes == 0 {
            return bad("max_value_bytes must be positive".into());
        }
        if self.memory_capacity == 0 {
            return bad("memory_capacity must be positive".into());
        }
        if self.near_capacity == Some(0) {
            return bad("near_cache capacity must be positive".into());
        }
        if self.near_staleness < Duration::from_millis(1) || self.near_staleness > MAX_NEAR_STALENESS {
            return bad(format!(
                "near_cache_max_staleness must be between 1 ms and 1 min, got {:?}",
                self.near_staleness
            ));
        }
        if self.scan_batch == 0 {
            return bad("scan_batch must be positive".into());
        }
        if let Some((replicas, timeout)) = self.durable
            && (replicas == 0 || timeout.is_zero() || timeout > MAX_OP_TIMEOUT)
        {
            return bad(format!(
                "durable_invalidation needs at least 1 replica and a timeout in (0, 1 h], got {replicas} and {timeout:?}"
            ));
        }
        Ok(())
    }

    /// Builds the cache. Never waits for Redis: it connects on first use, so
    /// this succeeds while Redis is down. Errors only for a bad configuration
    /// (malformed URL, invalid namespace, out-of-range setting).
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::Config`] naming the first out-of-range setting, an
    /// invalid namespace, or a backend this build lacks (a Redis URL from the
    /// environment without the `redis` feature), and [`CacheError::InvalidUrl`]
    /// for a malformed Redis URL. Never a connection error.
    pub async fn build(self) -> Result<Cache, CacheError> {
        self.check()?;
        let store = match &self.backend {
            BackendChoice::Memory => Store::Memory(MemoryStore::new(self.memory_capacity)),
            BackendChoice::Disabled => Store::Disabled(DisabledStore),
            BackendChoice::Redis(url) => self.standalone(url)?,
            BackendChoice::Cluster(urls) => self.cluster(urls)?,
            BackendChoice::Sentinel(urls, master) => self.sentinel(urls, master)?,
        };
        crate::metrics::register(&self.namespace);
        let near = self.near(&store)?;
        Ok(Cache {
            inner: Arc::new(Inner {
                layout: Layout::new(&self.namespace),
                codec: self.codec,
                op_timeout: self.op_timeout,
                jitter: self.jitter,
                max_value_bytes: self.max_value_bytes,
                lease_ttl: self.lease_ttl,
                scan_batch: self.scan_batch,
                compress_above: self.compress_above,
                durable: self.durable,
                breakers: (0..store.shards())
                    .map(|_| Breaker::new(self.breaker_threshold, self.breaker_cooldown))
                    .collect(),
                flights: Flights::default(),
                stats: StatsInner::default(),
                warned_oversized: Default::default(),
                warned_encode: Default::default(),
                log: self.log,
                near,
                store,
            }),
        })
    }

    /// The near tier and its channel, for a Redis or Cluster backend.
    #[cfg(feature = "redis")]
    fn near(&self, store: &Store) -> Result<Option<super::Near>, CacheError> {
        use crate::near::channel::{self, Endpoints};
        let Some(capacity) = self.near_capacity else {
            return Ok(None);
        };
        let endpoints = match (&self.backend, store) {
            (BackendChoice::Redis(url), Store::Redis(_)) => {
                Endpoints::Standalone(self.near_channel.clone().unwrap_or_else(|| url.clone()))
            }
            #[cfg(feature = "cluster")]
            (BackendChoice::Cluster(urls), Store::Cluster(_)) => Endpoints::Cluster(urls.clone()),
            _ => return Ok(None),
        };
        let tier = Arc::new(crate::near::Tier::new(&self.namespace, capacity, self.near_staleness));
        let task = channel::spawn(&tier, endpoints, self.op_timeout).map_err(CacheError::Config)?;
        Ok(Some(super::Near { tier, task }))
    }

    #[cfg(not(feature = "redis"))]
    fn near(&self, _store: &Store) -> Result<Option<super::Near>, CacheError> {
        Ok(None)
    }

    #[cfg(feature = "redis")]
    fn standalone(&self, url: &str) -> Result<Store, CacheError> {
        if url.starts_with("rediss:") && !cfg!(feature = "tls") {
            return Err(CacheError::Config(
                "`rediss://` URLs need the `tls` feature of cache-runtime".into(),
            ));
        }
        let shown = redact(url);
        let store = RedisStore::new(url, self.op_timeout, shown.clone()).map_err(|e| CacheError::InvalidUrl {
            reason: format!("{shown}: {}", url_error(&e)),
        })?;
        Ok(Store::Redis(store))
    }

    #[cfg(feature = "redis")]
    fn sentinel(&self, urls: &[String], master: &str) -> Result<Store, CacheError> {
        if urls.is_empty() || master.is_empty() {
            return Err(CacheError::Config(
                "redis_sentinel needs at least one sentinel URL and the master's name".into(),
            ));
        }
        for u in urls {
            if let Err(e) = redis::Client::open(u.as_str()) {
                return Err(CacheError::InvalidUrl {
                    reason: format!("{}: {}", redact(u), url_error(&e)),
                });
            }
        }
        let shown = format!(
            "{} ({master})",
            urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",")
        );
        Ok(Store::Sentinel(crate::store::SentinelStore::new(
            Layout::new(&self.namespace),
            self.scan_batch,
            urls.to_vec(),
            master.to_owned(),
            self.op_timeout,
            shown,
        )))
    }

    #[cfg(not(feature = "redis"))]
    fn standalone(&self, _url: &str) -> Result<Store, CacheError> {
        Err(CacheError::Config(
            "Redis (REDIS_URL) needs the `redis` feature of cache-runtime, which is off in this build".into(),
        ))
    }

    #[cfg(not(feature = "redis"))]
    fn sentinel(&self, _urls: &[String], _master: &str) -> Result<Store, CacheError> {
        Err(CacheError::Config(
            "Redis Sentinel (REDIS_SENTINEL_URLS) needs the `redis` feature of cache-runtime, which is off in this build"
                .into(),
        ))
    }

    #[cfg(not(feature = "cluster"))]
    fn cluster(&self, _urls: &[String]) -> Result<Store, CacheError> {
        Err(CacheError::Config(
            "Redis Cluster (REDIS_CLUSTER_URLS) needs the `cluster` feature of cache-runtime".into(),
        ))
    }

    #[cfg(feature = "cluster")]
    fn cluster(&self, urls: &[String]) -> Result<Store, CacheError> {
        if urls.is_empty() {
            return Err(CacheError::Config(
                "redis_cluster needs at least one seed node URL".into(),
            ));
        }
        if let Some(u) = urls.iter().find(|u| u.starts_with("rediss:")) {
            return Err(CacheError::Config(format!(
                "{}: TLS to a Redis Cluster is not supported yet",
                redact(u)
            )));
        }
        let shown = urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
        let store = crate::store::ClusterStore::new(urls, self.op_timeout, shown.clone()).map_err(|e| {
            CacheError::InvalidUrl {
                reason: format!("{shown}: {}", url_error(&e)),
            }
        })?;
        Ok(Store::Cluster(store))
    }

    pub(super) fn build_memory(self) -> Cache {
        // The memory backend has no fallible settings beyond the namespace,
        // which is the default here.
        poll_ready_now(self.build()).unwrap_or_else(|e| unreachable!("default memory cache: {e}"))
    }
}

/// Polls a future that never awaits anything pending (the memory build).
fn poll_ready_now<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("building a memory cache does not wait"),
    }
}

#[cfg(feature = "redis")]
use crate::redact::redact_url as redact;

/// Without the Redis backends there is no URL parser: a configured URL is
/// never shown (it may hold a password), only that there was one.
#[cfg(not(feature = "redis"))]
fn redact(_url: &str) -> String {
    "<url>".to_owned()
}

/// A redis-rs URL error, without anything it may have echoed from the URL
/// (its detail, e.g. the value of `?protocol=`).
#[cfg(feature = "redis")]
fn url_error(e: &redis::RedisError) -> String {
    match e.detail() {
        None => e.to_string(),
        Some(_) => e.category().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{BackendChoice, CacheBuilder};
    use crate::{BackendKind, CacheError};

    fn with(vars: &[(&str, &str)]) -> CacheBuilder {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        CacheBuilder::default()
            .namespace("app")
            .overrides_from(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn build(b: CacheBuilder) -> Result<crate::Cache, CacheError> {
        super::poll_ready_now(b.build())
    }

    #[test]
    fn cache_disabled_wins_over_redis() {
        for on in ["1", "true", "YES", " 1 "] {
            let b = with(&[("CACHE_DISABLED", on), ("REDIS_URL", "redis://127.0.0.1:1")]);
            assert!(matches!(b.backend, BackendChoice::Disabled), "{on}: {:?}", b.backend);
            assert_eq!(build(b).unwrap().backend(), BackendKind::Disabled);
        }
        for off in ["0", "false", "no", ""] {
            let b = with(&[("CACHE_DISABLED", off)]);
            assert!(matches!(b.backend, BackendChoice::Memory), "{off}: {:?}", b.backend);
        }
        let Err(CacheError::Config(msg)) = build(with(&[("CACHE_DISABLED", "maybe")])) else {
            panic!("a malformed CACHE_DISABLED built");
        };
        assert!(msg.contains("CACHE_DISABLED") && msg.contains("maybe"), "{msg}");
    }

    #[test]
    fn env_chooses_the_backend_and_namespace() {
        assert!(matches!(with(&[]).backend, BackendChoice::Memory));
        assert_eq!(with(&[]).namespace, "app");
        // Code wins: a namespace set in code is kept; the environment fills
        // it only when the code left it open.
        assert_eq!(with(&[("CACHE_NAMESPACE", " lms ")]).namespace, "app");
        let open = CacheBuilder::default().overrides_from(|n| (n == "CACHE_NAMESPACE").then(|| " lms ".to_owned()));
        assert_eq!(open.namespace, "lms");
        assert!(
            matches!(with(&[("REDIS_URL", " redis://h:1 ")]).backend, BackendChoice::Redis(u) if u == "redis://h:1")
        );
        let b = with(&[
            ("REDIS_SENTINEL_URLS", "redis://a:1, redis://b:2,"),
            ("REDIS_URL", "redis://h:1"),
        ]);
        assert!(
            matches!(&b.backend, BackendChoice::Sentinel(urls, m) if urls == &["redis://a:1", "redis://b:2"] && m == "mymaster"),
            "{:?}",
            b.backend
        );
        let b = with(&[
            ("REDIS_CLUSTER_URLS", "redis://a:1"),
            ("REDIS_SENTINEL_URLS", "redis://s:1"),
        ]);
        assert!(matches!(&b.backend, BackendChoice::Cluster(urls) if urls == &["redis://a:1"]));
    }

    /// Without the `redis` feature a Redis URL in the environment is an
    /// error at `build`, never a silent in-process cache.
    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_url_without_the_feature_is_a_config_error() {
        for var in ["REDIS_URL", "REDIS_SENTINEL_URLS", "REDIS_CLUSTER_URLS"] {
            let Err(CacheError::Config(msg)) = build(with(&[(var, "redis://127.0.0.1:6379")])) else {
                panic!("{var} built without the redis feature");
            };
            assert!(msg.contains("feature"), "{msg}");
        }
    }
}
