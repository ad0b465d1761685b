//! Counters: atomics inside, a plain snapshot outside.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) bypassed: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) encode_errors: AtomicU64,
    pub(crate) stale_sets_prevented: AtomicU64,
    pub(crate) fill_waits: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) scope_hits: AtomicU64,
    pub(crate) near_hits: AtomicU64,
    /// Moving average of load durations (µs), for the fill-wait cap; not
    /// part of the snapshot.
    pub(crate) load_ewma_us: AtomicU64,
    /// Moving average of how often a call's first read misses, in units of
    /// `1 / MISS_ONE`, to choose that read (see `Scope::mostly_misses`); not
    /// part of the snapshot.
    pub(crate) miss_ewma: AtomicU64,
}

/// A miss ratio of 1 in `Counters::miss_ewma`.
const MISS_ONE: u64 = 1 << 16;

impl Counters {
    fn snapshot(&self) -> FunctionStats {
        FunctionStats {
            // Near hits are counted once, in `near_hits` (one atomic add
            // less on the hottest path), and reported within `hits` too.
            hits: self.hits.load(Relaxed) + self.near_hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            loads: self.loads.load(Relaxed),
            load_errors: self.load_errors.load(Relaxed),
            backend_errors: self.backend_errors.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            coalesced_waits: self.coalesced_waits.load(Relaxed),
            bypassed: self.bypassed.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            encode_errors: self.encode_errors.load(Relaxed),
            stale_sets_prevented: self.stale_sets_prevented.load(Relaxed),
            fill_waits: self.fill_waits.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            scope_hits: self.scope_hits.load(Relaxed),
            near_hits: self.near_hits.load(Relaxed),
        }
    }
}

/// One call site of a named function (`#[cached]` makes one per
/// function): remembers the function's counters in the first cache that
/// counted a call from it, so that later calls on that cache find them
/// without the per-function map (a lock, a hash of the name, a reference
/// count). Calls on another cache use the map.
#[derive(Default)]
pub struct Site {
    counters: OnceLock<(u64, Arc<Counters>)>,
}

impl Site {
    /// A site that has counted nothing yet.
    pub const fn new() -> Self {
        Site {
            counters: OnceLock::new(),
        }
    }
}

/// Sites are equal when they are the same site.
impl PartialEq for Site {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Site")
    }
}

/// A function's counters: the ones its call site remembers, or the map's.
pub(crate) enum Own<'a> {
    Site(&'a Counters),
    Shared(Arc<Counters>),
}

impl std::ops::Deref for Own<'_> {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        match self {
            Own::Site(c) => c,
            Own::Shared(c) => c,
        }
    }
}

/// Which counters one event touches: the cache's total, and the named
/// function's own when the policy has a name.
pub(crate) struct Scope<'a> {
    pub(crate) total: &'a Counters,
    pub(crate) function: Option<Own<'a>>,
    /// The function's name, for metrics labels.
    pub(crate) name: Option<&'static str>,
}

impl Scope<'_> {
    pub(crate) fn add(&self, pick: impl Fn(&Counters) -> &AtomicU64) {
        pick(self.total).fetch_add(1, Relaxed);
        if let Some(f) = &self.function {
            pick(f).fetch_add(1, Relaxed);
        }
    }

    /// Counts a near hit, the hottest event, with one atomic add: in the
    /// function's counters when named, else in the cache's total (the
    /// total's snapshot adds the functions' near hits).
    pub(crate) fn add_near_hit(&self) {
        self.own().near_hits.fetch_add(1, Relaxed);
    }

    /// The function's counters when named, else the cache's.
    fn own(&self) -> &Counters {
        self.function.as_deref().unwrap_or(self.total)
    }

    /// Records how long a load took (moving average, 1/8 weight).
    pub(crate) fn observe_load(&self, took: std::time::Duration) {
        let sample = took.as_micros().min(u64::MAX as u128) as u64;
        let avg = &self.own().load_ewma_us;
        let old = avg.load(Relaxed);
        let new = if old == 0 { sample } else { old - old / 8 + sample / 8 };
        avg.store(new.max(1), Relaxed);
    }

    /// Records whether a call's first read missed (moving average, 1/64
    /// weight: about the last 64 calls, so that the burst of callers that
    /// all miss one hot key as it expires does not flip its function).
    /// Racy updates may lose a sample, which a moving average can afford.
    pub(crate) fn observe_read(&self, missed: bool) {
        let avg = &self.own().miss_ewma;
        let old = avg.load(Relaxed);
        avg.store(old - old / 64 + if missed { MISS_ONE / 64 } else { 0 }, Relaxed);
    }

    /// Whether most recent calls of this function (of the cache, unnamed)
    /// missed on their first read.
    pub(crate) fn mostly_misses(&self) -> bool {
        self.own().miss_ewma.load(Relaxed) > MISS_ONE / 2
    }

    /// The typical load time of this function, if one was observed.
    pub(crate) fn typical_load(&self) -> Option<std::time::Duration> {
        match self.own().load_ewma_us.load(Relaxed) {
            0 => None,
            us => Some(std::time::Duration::from_micros(us)),
        }
    }
}

/// FNV-1a, for the per-function map.
#[derive(Debug)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Tells caches apart for [`Site`]s (an address could be reused by a
/// later cache).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub(crate) struct StatsInner {
    /// This cache's number, for [`Site`]s.
    id: u64,
    pub(crate) total: Counters,
    pub(crate) breaker_opened: AtomicU64,
    pub(crate) breaker_closed: AtomicU64,
    /// Looked up on every call of a named function, near hits included:
    /// hashed with FNV-1a (names are short and chosen by the program, so
    /// SipHash's flooding resistance buys nothing here).
    functions: RwLock<HashMap<&'static str, Arc<Counters>, BuildHasherDefault<Fnv>>>,
}

impl Default for StatsInner {
    fn default() -> Self {
        StatsInner {
            id: NEXT_ID.fetch_add(1, Relaxed),
            total: Counters::default(),
            breaker_opened: AtomicU64::new(0),
            breaker_closed: AtomicU64::new(0),
            functions: RwLock::default(),
        }
    }
}

impl StatsInner {
    /// The counters of a call of `name` (none: the total only), made at
    /// `site` when the caller has one.
    pub(crate) fn scope(&self, name: Option<&'static str>, site: Option<&'static Site>) -> Scope<'_> {
        let function = name.map(|n| {
            if let Some((id, c)) = site.and_then(|s| s.counters.get())
                && *id == self.id
            {
                return Own::Site(c);
            }
            let c = self.function(n);
            if let Some(s) = site
                && s.counters.set((self.id, c.clone())).is_ok()
            {
                return Own::Site(&s.counters.get().expect("just set").1);
            }
            Own::Shared(c)
        });
        Scope {
            total: &self.total,
            function,
            name,
        }
    }

    /// The counters of the function `name`, created on first use.
    fn function(&self, name: &'static str) -> Arc<Counters> {
        if let Some(c) = self.functions.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return c.clone();
        }
        self.functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default()
            .clone()
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut t = self.total.snapshot();
        let per_function: BTreeMap<String, FunctionStats> = self
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.snapshot()))
            .collect();
        // Near hits of named functions are counted in their counters only
        // (`Scope::add_near_hit`).
        let named_near: u64 = per_function.values().map(|f| f.near_hits).sum();
        t.near_hits += named_near;
        t.hits += named_near;
        Stats {
            total: t,
            breaker_opened: self.breaker_opened.load(Relaxed),
            breaker_closed: self.breaker_closed.load(Relaxed),
            per_function,
        }
    }
}

/// Counters of one cached function (or of the whole cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found nothing usable (absent, expired, undecodable, or the
    /// backend failed).
    pub misses: u64,
    /// Loader runs.
    pub loads: u64,
    /// Loader runs that returned `Err`.
    pub load_errors: u64,
    /// Backend calls that failed or timed out.
    pub backend_errors: u64,
    /// Stored values that did not decode as the requested type.
    pub decode_errors: u64,
    /// Callers that waited for another caller's load instead of loading.
    pub coalesced_waits: u64,
    /// Calls that skipped the backend because the circuit was open.
    pub bypassed: u64,
    /// Values not stored because they exceeded the size limit.
    pub oversized: u64,
    /// Values not stored because they failed to serialize.
    pub encode_errors: u64,
    /// Loaded values not stored because their key was invalidated or
    /// written while they loaded (their lease was revoked).
    pub stale_sets_prevented: u64,
    /// Misses that waited for another process's load of the same key (its
    /// fill lease) instead of loading.
    pub fill_waits: u64,
    /// Calls answered with an expired value: within stale-while-revalidate,
    /// or because the loader failed within stale-if-error.
    pub stale_served: u64,
    /// Reloads of entries that were still served: early refresh (XFetch)
    /// and stale-while-revalidate.
    pub refreshes: u64,
    /// Calls answered by the request scope ([`scope`](crate::scope())) of an
    /// earlier call of the same request, without a backend round trip;
    /// included in `hits`.
    pub scope_hits: u64,
    /// Calls answered by the near cache
    /// ([`CacheBuilder::near_cache`](crate::CacheBuilder::near_cache))
    /// without a round trip; included in `hits`.
    pub near_hits: u64,
}

impl FunctionStats {
    /// `hits / (hits + misses)`, or 0 when nothing was read.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// A snapshot of a cache's counters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_runtime::Cache::memory();
/// let _ = cache.get_or_load("k", cache_runtime::Ttl::SHORT, || async { Ok::<_, ()>(1) }).await;
/// let _ = cache.get_or_load("k", cache_runtime::Ttl::SHORT, || async { Ok::<_, ()>(1) }).await;
/// let stats = cache.stats();
/// assert_eq!((stats.total.hits, stats.total.misses), (1, 1));
/// assert_eq!(stats.hit_rate(), 0.5);
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Every call of this cache.
    pub total: FunctionStats,
    /// Times the circuit breaker opened.
    pub breaker_opened: u64,
    /// Times it closed again after a successful probe.
    pub breaker_closed: u64,
    /// Per named function (`Policy::name`, set by `#[cached]`).
    pub per_function: BTreeMap<String, FunctionStats>,
}

impl Stats {
    /// The total hit rate.
    pub fn hit_rate(&self) -> f64 {
        self.total.hit_rate()
    }
}
