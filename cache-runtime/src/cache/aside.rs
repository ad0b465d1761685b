//! Cache-aside: read, follow a flight, or lead a load.
//!
//! One `get_or_load` is at most: a read (`GET`, or `MGET` with the tag
//! versions); on a miss, joining this process's flight for the key or
//! leading it; the leader's read-or-lease (`acquire`), the loader, and
//! store-if-leased (`finish`). Across processes the fill lease makes one
//! process load while the others poll for its value, bounded by about
//! twice the typical load time. See `flight.rs` for which waiters may take
//! a leader's value, and `store/mod.rs` for the protocol's guarantees.
//!
//! When most recent calls of a function missed (on Redis), the first read
//! is read-or-lease itself: a miss that takes the lease there skips the
//! `GET` and is two round trips (`read`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::guard::Budget;
use super::tagged::Keep;
use super::{Cache, trace_op};
use crate::codec;
use crate::flight::{self, ALL, Leader, Outcome, Role};
use crate::near::{NearOps, Ticket, Tier};
use crate::stats::Scope;
use crate::store::{Acquire, Acquired, Finish, Layout, Raw};
use crate::{CacheError, Policy};

/// A waiter bounced by uncertified values this many times loads by itself.
const MAX_ROUNDS: u32 = 4;
/// Fill-wait cap before any load was observed.
const FIRST_LOAD_GUESS: Duration = Duration::from_millis(100);
/// Longest pause between two polls of another process's lease.
const MAX_POLL: Duration = Duration::from_millis(20);

/// Why a read did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    Absent,
    /// A tag of the entry was invalidated (or its version lost) since it was
    /// loaded.
    Stale,
    Undecodable,
    Error,
    /// The circuit is open.
    Bypass,
    /// Past its logical expiry (and its stale-while-revalidate window).
    Expired,
}

impl Miss {
    fn label(self) -> &'static str {
        match self {
            Miss::Absent => "miss",
            Miss::Stale => "stale",
            Miss::Undecodable => "undecodable",
            Miss::Error => "error",
            Miss::Bypass => "bypass",
            Miss::Expired => "expired",
        }
    }
}

/// What a read can answer with.
enum Found<T> {
    Fresh(T),
    /// Fresh, but this caller drew a probabilistic early refresh.
    Early(T),
    /// Expired less than stale-while-revalidate ago.
    Stale(T),
}

/// A read that cannot answer: why, and an expired value that
/// stale-if-error may serve if the loader fails.
struct NoAnswer<T> {
    miss: Miss,
    fallback: Option<T>,
    /// The fill lease (token, tag versions), when the read took it.
    lease: Option<(u64, Vec<u64>)>,
}

impl<T> From<Miss> for NoAnswer<T> {
    fn from(miss: Miss) -> Self {
        NoAnswer {
            miss,
            fallback: None,
            lease: None,
        }
    }
}

/// A stored entry that decoded: the value, where its value bytes start
/// (after tags and freshness), and its freshness section.
struct Decoded<T> {
    value: T,
    at: usize,
    freshness: Option<codec::Freshness>,
}

/// The lease key of `entry`, made once per call and only when needed (a
/// hit never needs it). A function of two fields, so that it borrows only
/// them.
fn lease_key<'a>(cell: &'a std::sync::OnceLock<String>, entry: &str) -> &'a str {
    cell.get_or_init(|| Layout::lease_of(entry))
}

/// The storage rule of `get_or_load`: every value, for the policy's TTL.
pub(crate) fn always<T>(policy: &Policy) -> impl Fn(&T) -> Option<Duration> + use<T> {
    let ttl = policy.ttl;
    move |_| Some(ttl)
}

/// The storage rule of `get_or_load_optional`: `Some` for the policy's
/// TTL, `None` for its negative TTL, if any.
pub(crate) fn optional<T>(policy: &Policy) -> impl Fn(&Option<T>) -> Option<Duration> + use<T> {
    let (ttl, negative) = (policy.ttl, policy.negative_ttl);
    move |v| if v.is_some() { Some(ttl) } else { negative }
}

/// `rule`, except that a value for which `unless` is true is not stored:
/// the storage rule of the `_unless` reads.
pub(crate) fn refusing<T>(
    rule: impl Fn(&T) -> Option<Duration>,
    unless: impl Fn(&T) -> bool,
) -> impl Fn(&T) -> Option<Duration> {
    move |v| if unless(v) { None } else { rule(v) }
}

/// Milliseconds since the Unix epoch (the clock every process shares).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A uniform draw in (0, 1].
fn unit() -> f64 {
    ((crate::ttl::random_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// XFetch's draw: whether a hit on an entry expiring at `expires_at_ms`,
/// whose last load took `load_us`, reloads it early.
fn xfetch_draw(beta: f64, now: u64, expires_at_ms: u64, load_us: u32) -> bool {
    xfetch_ahead(beta, expires_at_ms.saturating_sub(now), load_us)
}

/// XFetch's draw for an entry expiring `ahead_ms` from now.
fn xfetch_ahead(beta: f64, ahead_ms: u64, load_us: u32) -> bool {
    if beta <= 0.0 {
        return false;
    }
    let scale = (f64::from(load_us) / 1000.0) * beta;
    let ahead = ahead_ms as f64;
    // −ln(u) for a draw u in (0, 1] never exceeds 53·ln 2 ≈ 36.8: far from
    // its expiry no draw can refresh, so none is made (hot hits stay cheap).
    if ahead > scale * 37.0 {
        return false;
    }
    scale * -unit().ln() >= ahead
}

/// Whether a stored entry may be served.
pub(super) enum Fresh<'r> {
    /// The value bytes (header and payload).
    Yes(&'r [u8]),
    Stale,
    /// The tag section is malformed.
    Corrupt(String),
}

/// The per-call state of one cache-aside fill.
struct Fill<'c> {
    cache: &'c Cache,
    key: &'c str,
    entry: String,
    /// The lease key, made on the first miss (a hit never needs it).
    lease: std::sync::OnceLock<String>,
    /// No read made yet (the first may be read-or-lease, see `read`).
    first_read: bool,
    tags: Vec<String>,
    /// Longest lifetime of an entry this call may store.
    longest_ttl: Duration,
    /// XFetch's β (0: off), stale-while-revalidate, stale-if-error.
    beta: f64,
    swr: Option<Duration>,
    sie: Option<Duration>,
    scope: Scope<'c>,
    budget: Budget,
    /// The namespace's tag epoch, when tags are also computed from the
    /// loaded value (`Policy::result_tagged`), and its value at the last
    /// `acquire` (before the load).
    epoch: Option<String>,
    epoch_seen: Option<u64>,
}

impl Cache {
    /// Cache-aside: returns the cached value of `key`, or runs `loader`,
    /// stores its `Ok` value under `policy`, and returns it. `Err` is
    /// returned as is and not stored.
    ///
    /// Concurrent misses of one key in this process run the loader once
    /// (single-flight); the others receive its value. Across processes, one
    /// process loads while the others wait briefly for its value. If the
    /// leading call is cancelled, a waiting call takes over. **Cache failures
    /// never surface here:** a backend that is down, slow or holding
    /// undecodable bytes makes a miss, and the loader's result is returned.
    ///
    /// The loader may borrow from the caller; the returned future is `Send`
    /// whenever the loader's future, `T` and `E` are.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
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
        let keep = always(&policy);
        self.load_scoped(key, policy, None, loader, keep).await
    }

    /// The cache-aside loop within the request scope (`scope.rs`): answered
    /// by an earlier call of the request, or this call's value fills it
    /// when `keep` stores it. With the near tier when `near` is given.
    pub(crate) async fn load_scoped<T, E, F, Fut>(
        &self,
        key: &str,
        policy: Policy,
        near: Option<NearOps<T>>,
        loader: F,
        keep: impl Keep<T>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let fill = match crate::scope::check(self, key, &policy).await {
            Ok(v) => return Ok(v),
            Err(fill) => fill,
        };
        let result = self.load_through(key, &policy, near, loader, &keep).await;
        fill.keep(self, &result, |v| keep.ttl(v).is_some());
        result
    }

    /// Like [`get_or_load`](Self::get_or_load) for loaders returning an
    /// `Option`: `Some` is cached for the policy's TTL, `None` only when the
    /// policy has a [`negative_ttl`](Policy::negative_ttl), for that long.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
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
        let keep = optional(&policy);
        self.load_scoped(key, policy, None, loader, keep).await
    }

    /// [`get_or_load`](Self::get_or_load) for values that are `Clone`: with
    /// a near cache ([`CacheBuilder::near_cache`](crate::CacheBuilder::near_cache)),
    /// a hit in this process's near tier returns a clone of the value, with
    /// no round trip and no decoding. Without one it is `get_or_load`.
    /// `#[cached]` functions use it whenever their value type allows.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
    pub async fn get_or_load_cloned<T, E, F, Fut>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = policy.into();
        let keep = always(&policy);
        self.load_scoped(key, policy, Some(NearOps::new()), loader, keep).await
    }

    /// [`get_or_load_optional`](Self::get_or_load_optional) for values that
    /// are `Clone`, served from the near cache when there is one (see
    /// [`get_or_load_cloned`](Self::get_or_load_cloned)).
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
    pub async fn get_or_load_optional_cloned<T, E, F, Fut>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let policy = policy.into();
        let keep = optional(&policy);
        self.load_scoped(key, policy, Some(NearOps::new()), loader, keep).await
    }

    /// Write-through: runs `loader` always and stores its `Ok` value
    /// (Spring's `@CachePut`), with the policy's tags. Store failures are
    /// logged, never returned.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (nothing is stored). Store failures
    /// are logged, never returned.
    pub async fn put_with<T, E, F, Fut>(&self, key: &str, policy: impl Into<Policy>, loader: F) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = policy.into();
        crate::scope::forget_key(self, key);
        let mut fill = Fill::new(self, key, &policy);
        fill.scope.add(|c| &c.loads);
        let start = Instant::now();
        let result = loader().await;
        crate::metrics::load(fill.scope.name, result.is_ok(), start.elapsed());
        let value = result.inspect_err(|_| fill.scope.add(|c| &c.load_errors))?;
        let bytes = match self.encode(key, &value) {
            Ok(b) => b,
            Err(e) => {
                self.not_cached(key, &e, &fill.scope);
                return Ok(value);
            }
        };
        fill.write_through(bytes, policy.ttl).await;
        self.near_forget_key(key);
        Ok(value)
    }

    /// The shared cache-aside loop. `ttl_for` decides, per value, whether and
    /// how long it is stored.
    pub(super) async fn load_through<T, E, F, Fut>(
        &self,
        key: &str,
        policy: &Policy,
        near: Option<NearOps<T>>,
        loader: F,
        ttl_for: &impl Keep<T>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        // The near tier, for policies that may use it: its tag versions
        // serve every such read; its entries, reads of `Clone` types.
        let tier = self.near_tier().filter(|_| policy.local);
        let ops = near.filter(|_| tier.is_some());
        // A fresh entry of this type is the answer, without a round trip
        // (one drawn for early refresh is reloaded below).
        let mut early = None;
        if let (Some(ops), Some(tier)) = (&ops, tier)
            && let Some(e) = tier.get(key, start)
            && let Some(v) = ops.clone_out(&*e.value)
        {
            let ahead = e.expires.saturating_duration_since(start).as_millis() as u64;
            if !xfetch_ahead(policy.early_refresh, ahead, e.load_us) {
                let scope = self.inner.stats.scope(policy.name, policy.site);
                scope.add_near_hit();
                crate::metrics::request(scope.name, "near_hit");
                if self.traced() {
                    trace_op(self.origin(policy.name), "GET", key, "near_hit", start);
                }
                return Ok(v);
            }
            early = Some(v);
        }
        let mut fill = Fill::new(self, key, policy);
        if let Some(v) = early {
            fill.scope.add(|c| &c.hits);
            crate::metrics::request(fill.scope.name, "early");
            trace_op(self.origin(policy.name), "GET", key, "early", start);
            return fill.refresh(v, "early", loader, ttl_for).await;
        }
        if self.inner.store.is_disabled() {
            fill.scope.add(|c| &c.misses);
            return fill.load_alone(loader, None).await;
        }
        let ticket = tier.map(|t| t.ticket(key, &fill.tags));
        let mut round = 0;
        let mut fallback = None;
        loop {
            let read = match (tier, &ticket) {
                (Some(tier), Some(ticket)) if round == 0 => fill.read::<T>(Some((tier, ticket)), ops.as_ref()).await,
                _ => fill.read::<T>(None, None).await,
            };
            let (found, outcome) = match read {
                Ok(Found::Fresh(v)) => (Ok(v), "hit"),
                Ok(Found::Early(v)) => (fill.refresh(v, "early", loader, ttl_for).await, "early"),
                Ok(Found::Stale(v)) => (fill.refresh(v, "stale", loader, ttl_for).await, "stale"),
                Err(no) => {
                    fallback = no.fallback.or(fallback);
                    let miss = no.miss;
                    if round == 0 {
                        fill.scope.add(|c| &c.misses);
                        crate::metrics::request(fill.scope.name, miss.label());
                        trace_op(self.origin(policy.name), "GET", key, miss.label(), start);
                    }
                    round += 1;
                    if round > MAX_ROUNDS {
                        return fill.load_alone(loader, fallback).await;
                    }
                    match self.inner.flights.join(&fill.entry) {
                        Role::Waiter(w) => {
                            if let Some((token, versions)) = &no.lease {
                                // Our read took the lease, but this process's
                                // leader loads: let it have the lease.
                                fill.release(*token, versions).await;
                            }
                            fill.scope.add(|c| &c.coalesced_waits);
                            if let Some(bytes) = flight::wait(w).await {
                                return match codec::decode::<T>(&bytes) {
                                    Ok(v) => Ok(v),
                                    // Another type under the same key: load our own.
                                    Err(_) => fill.load_alone(loader, fallback).await,
                                };
                            }
                            // The leader failed, went away, or its value is not
                            // certified for a caller that joined this late: read again.
                            continue;
                        }
                        Role::Leader(leader) => {
                            return match no.lease {
                                Some((token, versions)) => {
                                    fill.load_leased(leader, loader, ttl_for, token, versions, fallback)
                                        .await
                                }
                                None => fill.lead(leader, miss, loader, ttl_for, fallback).await,
                            };
                        }
                    }
                }
            };
            fill.scope.add(|c| &c.hits);
            crate::metrics::request(fill.scope.name, outcome);
            trace_op(self.origin(policy.name), "GET", key, outcome, start);
            return found;
        }
    }

    /// Whether a stored entry may be served: every tag it was stored under
    /// still has the version it had then. `known` holds the current versions
    /// of `tags` (`None`: missing, which never matches); versions of other
    /// tags the entry carries are fetched within `budget`.
    pub(super) async fn fresh<'r>(
        &self,
        budget: &mut Budget,
        key: &str,
        raw: &'r [u8],
        tags: &[String],
        known: &[Option<u64>],
    ) -> Result<Fresh<'r>, CacheError> {
        let (stored, value) = match codec::split_tags(raw) {
            Ok(split) => split,
            Err(reason) => return Ok(Fresh::Corrupt(reason)),
        };
        let mut unknown: Vec<(String, u64)> = Vec::new();
        for (tag, version) in &stored {
            match tags.iter().position(|t| t == tag) {
                Some(i) if known.get(i).copied().flatten() == Some(*version) => {}
                Some(_) => return Ok(Fresh::Stale),
                None => unknown.push(((*tag).to_owned(), *version)),
            }
        }
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|(t, _)| t.clone()).collect();
            let current = self.call_in(budget, key, self.inner.store.tag_versions(&names)).await?;
            if unknown
                .iter()
                .zip(current)
                .any(|((_, stored), now)| now != Some(*stored))
            {
                return Ok(Fresh::Stale);
            }
        }
        Ok(Fresh::Yes(value))
    }

    /// The wait cap for another process's load: about twice the typical
    /// load time of this function, never longer than the lease.
    fn fill_wait_cap(&self, scope: &Scope<'_>) -> Duration {
        let typical = scope.typical_load().unwrap_or(FIRST_LOAD_GUESS);
        (typical * 2).clamp(Duration::from_millis(5), self.inner.lease_ttl)
    }
}

impl<'c> Fill<'c> {
    fn new(cache: &'c Cache, key: &'c str, policy: &Policy) -> Self {
        let inner = &cache.inner;
        let entry = inner.layout.entry(key);
        let longest_ttl = crate::ttl::clamp(
            policy
                .ttl
                .max(policy.negative_ttl.unwrap_or_default())
                .saturating_add(Self::grace(policy.stale_while_revalidate, policy.stale_if_error)),
        );
        Fill {
            cache,
            key,
            lease: std::sync::OnceLock::new(),
            first_read: true,
            entry,
            tags: policy.tags.iter().map(|t| inner.layout.tag(t)).collect(),
            longest_ttl,
            beta: policy.early_refresh,
            swr: policy.stale_while_revalidate,
            sie: policy.stale_if_error,
            scope: inner.stats.scope(policy.name, policy.site),
            budget: Budget::new(inner.op_timeout),
            epoch: policy.result_tagged.then(|| inner.layout.epoch()),
            epoch_seen: None,
        }
    }

    /// How long an entry outlives its logical expiry in the store.
    fn grace(swr: Option<Duration>, sie: Option<Duration>) -> Duration {
        swr.unwrap_or_default().max(sie.unwrap_or_default())
    }

    /// Tag versions must outlive every entry stored under them.
    fn tag_ttl(&self) -> Duration {
        self.longest_ttl
            .saturating_add(self.cache.inner.lease_ttl)
            .saturating_add(Duration::from_secs(1))
    }

    /// Counts a failed backend call of the read path.
    fn note(&self, e: &CacheError) -> Miss {
        if let CacheError::Unavailable { .. } = e {
            self.scope.add(|c| &c.bypassed);
            return Miss::Bypass;
        }
        self.scope.add(|c| &c.backend_errors);
        tracing::debug!(target: "cache_runtime", namespace = self.cache.namespace(), function = self.scope.name,
            key = self.key, error = %e, "cache call failed: treated as a miss");
        Miss::Error
    }

    /// Reads and decodes the entry, checking its tags and its freshness.
    /// Every failure is a miss. The first read of a call whose function
    /// mostly misses (on Redis) is read-or-lease: a miss then takes the
    /// fill lease at once and costs two round trips (this read, then
    /// store-if-leased), not three; a hit costs a script call instead of a
    /// `GET`, so functions that mostly hit keep the `GET`.
    /// With `near`, see [`read_entry`](Self::read_entry).
    async fn read<T: DeserializeOwned>(
        &mut self,
        near: Option<(&Tier, &Ticket)>,
        ops: Option<&NearOps<T>>,
    ) -> Result<Found<T>, NoAnswer<T>> {
        if !std::mem::take(&mut self.first_read) {
            return self.read_entry(near, ops).await;
        }
        // A read that may fill the near tier (`ops`) stays a `GET`: a miss
        // there is followed by a hit that fills it, and read-or-lease would
        // not.
        let found = if ops.is_none() && self.scope.mostly_misses() && !self.cache.inner.store.is_memory() {
            self.read_or_lease().await
        } else {
            self.read_entry(near, ops).await
        };
        let missed = matches!(&found, Err(no) if !matches!(no.miss, Miss::Error | Miss::Bypass));
        self.scope.observe_read(missed);
        found
    }

    /// The first read as read-or-lease (`acquire` without force): the entry
    /// when present, else the fill lease when nobody holds it.
    async fn read_or_lease<T: DeserializeOwned>(&mut self) -> Result<Found<T>, NoAnswer<T>> {
        let token = crate::ttl::random_u64().max(1);
        let acquired = match self.acquire(token, false, None).await {
            Ok(a) => a,
            Err(e) => return Err(self.note(&e).into()),
        };
        let Some(raw) = &acquired.entry else {
            return Err(NoAnswer {
                miss: Miss::Absent,
                fallback: None,
                lease: acquired.leased.then_some((token, acquired.versions)),
            });
        };
        // Without force, a present entry never comes with the lease.
        let versions: Vec<Option<u64>> = acquired.versions.iter().copied().map(Some).collect();
        let decoded = self.decode_fresh(raw, &versions, true).await?;
        self.classify(decoded)
    }

    /// A `GET` (`MGET` with the tag versions) of the entry. With `near`
    /// (the tier and a ticket taken before this read), the tag versions
    /// come from the near tier when it has them all (the read is then a
    /// lone `GET`), or are put in it; with `ops` too, a fresh value found is
    /// put in it. Nothing is put if anything it depends on moved since the
    /// ticket was taken.
    async fn read_entry<T: DeserializeOwned>(
        &mut self,
        near: Option<(&Tier, &Ticket)>,
        ops: Option<&NearOps<T>>,
    ) -> Result<Found<T>, NoAnswer<T>> {
        let cache = self.cache;
        let known = near
            .filter(|_| !self.tags.is_empty())
            .and_then(|(tier, _)| tier.tag_versions(&self.tags));
        let fetched = match known {
            Some(versions) => {
                let get = cache.inner.store.get(&self.entry);
                cache
                    .call_in(&mut self.budget, self.key, get)
                    .await
                    .map(|raw| (raw, versions))
            }
            None => {
                let read = cache.inner.store.read(&self.entry, &self.tags);
                let r = cache.call_in(&mut self.budget, self.key, read).await;
                if let (Ok((_, versions)), Some((tier, ticket))) = (&r, near) {
                    tier.insert_tags(ticket, &self.tags, versions);
                }
                r
            }
        };
        let (raw, versions) = match fetched {
            Ok(r) => r,
            Err(e) => return Err(self.note(&e).into()),
        };
        let raw = raw.ok_or(Miss::Absent)?;
        let decoded = self.decode_fresh(&raw, &versions, true).await?;
        let expiry = decoded.freshness.map(|f| (f.expires_at_ms, f.load_us));
        let found = self.classify(decoded)?;
        if let (Some((tier, ticket)), Some(ops), Found::Fresh(v)) = (near, ops, &found) {
            self.keep_near(ops, tier, ticket, &raw, expiry, v);
        }
        Ok(found)
    }

    /// Puts a value just read from the store in the near tier: only when
    /// every tag it was stored under is one the ticket covers.
    fn keep_near<T>(
        &self,
        ops: &NearOps<T>,
        tier: &Tier,
        ticket: &Ticket,
        raw: &[u8],
        expiry: Option<(u64, u32)>,
        value: &T,
    ) {
        let Ok((stored, _)) = codec::split_tags(raw) else {
            return;
        };
        if !stored.iter().all(|(t, _)| self.tags.iter().any(|p| p == t)) {
            return;
        }
        let tags = stored.iter().map(|(t, v)| (Box::from(*t), *v)).collect();
        // An entry without a freshness section (written by `set`) lives in
        // the near tier no longer than this call's policy would keep it.
        let expiry = expiry.unwrap_or_else(|| (now_ms().saturating_add(self.longest_ttl.as_millis() as u64), 0));
        tier.insert(ticket, self.key, ops.wrap(value), tags, expiry, ops.cost(raw.len()));
    }

    /// Fresh, early-refresh, stale-while-revalidate, or expired (with a
    /// stale-if-error fallback when still within it).
    fn classify<T>(&self, d: Decoded<T>) -> Result<Found<T>, NoAnswer<T>> {
        let Some(f) = d.freshness else {
            return Ok(Found::Fresh(d.value));
        };
        let now = now_ms();
        let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
        if now < f.expires_at_ms {
            // XFetch: refresh early with a probability that grows as the
            // expiry nears and with the cost of a reload.
            if xfetch_draw(self.beta, now, f.expires_at_ms, f.load_us) {
                return Ok(Found::Early(d.value));
            }
            return Ok(Found::Fresh(d.value));
        }
        let late = now - f.expires_at_ms;
        if late < ms(self.swr) {
            return Ok(Found::Stale(d.value));
        }
        Err(NoAnswer {
            miss: Miss::Expired,
            fallback: (late < ms(self.sie)).then_some(d.value),
            lease: None,
        })
    }

    /// The value if no tag of the entry moved and it decodes, with the
    /// offset of its value bytes in `raw` and its freshness section.
    /// `count`: count an undecodable entry in the stats (once per call, on
    /// its first read).
    async fn decode_fresh<T: DeserializeOwned>(
        &mut self,
        raw: &Raw,
        versions: &[Option<u64>],
        count: bool,
    ) -> Result<Decoded<T>, Miss> {
        let fresh = self
            .cache
            .fresh(&mut self.budget, self.key, raw, &self.tags, versions)
            .await;
        let reason = match fresh {
            Ok(Fresh::Yes(value)) => match codec::split_freshness(value) {
                Ok((freshness, value)) => match codec::decode::<T>(value) {
                    Ok(v) => {
                        return Ok(Decoded {
                            value: v,
                            at: raw.len() - value.len(),
                            freshness,
                        });
                    }
                    Err(reason) => reason,
                },
                Err(reason) => reason,
            },
            Ok(Fresh::Stale) => return Err(Miss::Stale),
            Ok(Fresh::Corrupt(reason)) => reason,
            Err(e) => return Err(self.note(&e)),
        };
        if count {
            self.scope.add(|c| &c.decode_errors);
            tracing::debug!(target: "cache_runtime", namespace = self.cache.namespace(), function = self.scope.name,
                key = self.key, %reason, "undecodable value: treated as a miss");
        }
        Err(Miss::Undecodable)
    }

    /// Runs the loader for this caller only: nothing is stored or shared.
    /// A failing loader is answered with `fallback` (stale-if-error) when
    /// there is one.
    async fn load_alone<T, E, F, Fut>(&self, loader: F, fallback: Option<T>) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let r = self.run_loader(loader).await;
        self.or_stale(r, fallback)
    }

    /// Runs the loader, counted and timed (errors are counted by the
    /// caller's `or_stale`).
    async fn run_loader<T, E, F, Fut>(&self, loader: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.scope.add(|c| &c.loads);
        let start = Instant::now();
        let r = loader().await;
        crate::metrics::load(self.scope.name, r.is_ok(), start.elapsed());
        r
    }

    /// Read-or-lease (see `Store::acquire`) within this call's budget. With
    /// result tags, the tag epoch is read (created if missing) beside the
    /// tags and kept in `epoch_seen`.
    async fn acquire(&mut self, token: u64, force: bool, takeover: Option<u64>) -> Result<Acquired, CacheError> {
        let cache = self.cache;
        let with_epoch: Vec<String>;
        let tags = match &self.epoch {
            Some(epoch) => {
                with_epoch = self.tags.iter().chain([epoch]).cloned().collect();
                &with_epoch
            }
            None => &self.tags,
        };
        let req = Acquire {
            entry: &self.entry,
            lease: lease_key(&self.lease, &self.entry),
            tags,
            token,
            lease_ttl: cache.inner.lease_ttl,
            tag_ttl: self.tag_ttl(),
            force,
            takeover,
        };
        let mut acquired = cache
            .call_in(&mut self.budget, self.key, cache.inner.store.acquire(&req))
            .await?;
        if self.epoch.is_some() {
            self.epoch_seen = acquired.versions.pop();
        }
        Ok(acquired)
    }

    /// A failed load's answer: the stale-if-error value when there is one.
    fn or_stale<T, E>(&self, r: Result<T, E>, fallback: Option<T>) -> Result<T, E> {
        match (r, fallback) {
            (Ok(v), _) => Ok(v),
            (Err(e), None) => {
                self.scope.add(|c| &c.load_errors);
                Err(e)
            }
            (Err(_), Some(stale)) => {
                self.scope.add(|c| &c.load_errors);
                self.scope.add(|c| &c.stale_served);
                tracing::debug!(target: "cache_runtime", key = self.key, "loader failed: answered with the expired value (stale-if-error)");
                Ok(stale)
            }
        }
    }

    /// A read found a value to serve that should be reloaded (early refresh,
    /// or stale-while-revalidate): this caller reloads it if it wins the
    /// flight in its process and the fill lease across processes; everyone
    /// else is answered with `cached` at once.
    async fn refresh<T, E, F, Fut>(
        &mut self,
        cached: T,
        outcome: &'static str,
        loader: F,
        ttl_for: &impl Keep<T>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if outcome == "stale" {
            self.scope.add(|c| &c.stale_served);
        }
        let cache = self.cache;
        let Role::Leader(leader) = cache.inner.flights.join(&self.entry) else {
            return Ok(cached); // this process is reloading it already
        };
        let token = crate::ttl::random_u64().max(1);
        match self.acquire(token, true, None).await {
            Ok(a) if a.leased => {
                // Another caller may have refreshed it between our read and
                // this lease: then serve its value and do not load again.
                if let Some(raw) = &a.entry {
                    let versions: Vec<Option<u64>> = a.versions.iter().copied().map(Some).collect();
                    if let Ok(d) = self.decode_fresh::<T>(raw, &versions, false).await
                        && let Ok(Found::Fresh(v)) = self.classify(d)
                    {
                        self.release(token, &a.versions).await;
                        leader.publish(Outcome::Retry);
                        return Ok(v);
                    }
                }
                self.scope.add(|c| &c.refreshes);
                self.load_leased(leader, loader, ttl_for, token, a.versions, Some(cached))
                    .await
            }
            // Another process is reloading it, or the store failed.
            _ => {
                leader.publish(Outcome::Retry);
                Ok(cached)
            }
        }
    }

    /// Leads the flight: read-or-lease, then load (or wait for the process
    /// that holds the lease), store, and hand the value to the waiters it is
    /// certified for.
    async fn lead<T, E, F, Fut>(
        &mut self,
        leader: Leader<'_>,
        miss: Miss,
        loader: F,
        ttl_for: &impl Keep<T>,
        mut fallback: Option<T>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if matches!(miss, Miss::Error | Miss::Bypass) {
            // The backend just failed this call: no lease, answer from the
            // loader (and share it with this process's waiters).
            return self.load_unleased(leader, loader, ALL, fallback).await;
        }
        let cache = self.cache;
        let token = crate::ttl::random_u64().max(1);
        let mut force = matches!(miss, Miss::Stale | Miss::Undecodable | Miss::Expired);
        let mut takeover = None;
        let mut first_wait: Option<Instant> = None;
        let mut seen_holder = None;
        let mut waiting_since = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let seal = leader.seal();
            let acquired = match self.acquire(token, force, takeover).await {
                Ok(a) => a,
                Err(e) => {
                    self.note(&e);
                    return self.load_unleased(leader, loader, ALL, fallback).await;
                }
            };
            if let Some(raw) = &acquired.entry {
                let versions: Vec<Option<u64>> = acquired.versions.iter().copied().map(Some).collect();
                let usable = match self.decode_fresh::<T>(raw, &versions, false).await {
                    Ok(d) => {
                        let at = d.at;
                        match self.classify(d) {
                            Ok(Found::Fresh(v) | Found::Early(v)) => Some((v, at)),
                            Ok(Found::Stale(v)) => {
                                fallback = Some(v);
                                None
                            }
                            Err(no) => {
                                fallback = no.fallback.or(fallback);
                                None
                            }
                        }
                    }
                    Err(Miss::Error | Miss::Bypass) => {
                        return self.load_unleased(leader, loader, ALL, fallback).await;
                    }
                    Err(_) => None,
                };
                if let Some((v, at)) = usable {
                    // Stored by another process meanwhile: this read
                    // certifies it for every waiter that joined before it.
                    leader.publish(Outcome::Value {
                        bytes: Arc::from(&raw[at..]),
                        upto: seal,
                    });
                    if acquired.leased {
                        self.release(token, &acquired.versions).await;
                    }
                    return Ok(v);
                }
                if !acquired.leased && !force {
                    // Stale, expired or undecodable: ask again, taking the lease.
                    force = true;
                    continue;
                }
            }
            if acquired.leased {
                return self
                    .load_leased(leader, loader, ttl_for, token, acquired.versions, fallback)
                    .await;
            }
            // Another process is loading this key: wait for its value. Each
            // holder gets one wait cap (a new holder, e.g. one that took a
            // dead holder's lease over, a fresh one); a holder that overruns
            // it loses the lease to us. Never more than a few caps in all.
            let cap = cache.fill_wait_cap(&self.scope);
            let started = *first_wait.get_or_insert_with(|| {
                self.scope.add(|c| &c.fill_waits);
                Instant::now()
            });
            if acquired.holder != seen_holder {
                seen_holder = acquired.holder;
                waiting_since = Instant::now();
            }
            if started.elapsed() >= cap * 4 {
                let upto = leader.seal();
                return self.load_unleased(leader, loader, upto, fallback).await;
            }
            if waiting_since.elapsed() >= cap && acquired.holder.is_some() && takeover != acquired.holder {
                // The holder overran its cap: take the lease over (its
                // store will be refused; ours will not).
                takeover = acquired.holder;
                continue;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Loads while holding the fill lease, then stores if the lease is still
    /// held and no tag moved.
    async fn load_leased<T, E, F, Fut>(
        &mut self,
        leader: Leader<'_>,
        loader: F,
        ttl_for: &impl Keep<T>,
        token: u64,
        versions: Vec<u64>,
        fallback: Option<T>,
    ) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cache = self.cache;
        // Waiters up to here read the store before the source is read.
        let seal_at_load = leader.seal();
        let mut guard = LeaseGuard::new(cache, &self.entry, lease_key(&self.lease, &self.entry), token);
        self.scope.add(|c| &c.loads);
        let load_start = Instant::now();
        let result = loader().await;
        self.scope.observe_load(load_start.elapsed());
        crate::metrics::load(self.scope.name, result.is_ok(), load_start.elapsed());
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                leader.publish(Outcome::Retry);
                guard.disarm();
                self.release(token, &versions).await;
                return self.or_stale(Err(e), fallback);
            }
        };
        trace_op(cache.origin(self.scope.name), "LOAD", self.key, "ok", load_start);
        let bytes = match cache.encode_any_size(self.key, &value) {
            Ok(b) => b,
            Err(e) => {
                cache.not_cached(self.key, &e, &self.scope);
                leader.publish(Outcome::Retry);
                guard.disarm();
                self.release(token, &versions).await;
                return Ok(value);
            }
        };
        let ttl = match (ttl_for.ttl(&value), cache.check_size(self.key, &bytes)) {
            (Some(ttl), Ok(())) => Some(crate::ttl::jittered(crate::ttl::clamp(ttl), cache.inner.jitter)),
            (_, Err(e)) => {
                cache.not_cached(self.key, &e, &self.scope);
                None
            }
            (None, Ok(())) => None,
        };
        // Tags from the value: their versions are read after the load, then
        // the tag epoch, which must not have moved since `acquire`: a tag
        // invalidation bumps the epoch before its tags, so one that began
        // during the load is seen here, and one that begins later changes
        // a version read here (the store below or any later read sees it).
        let mut all_tags: Option<Vec<String>> = None;
        let mut versions = versions;
        if ttl.is_some()
            && let Some(epoch) = &self.epoch
        {
            let layout = &cache.inner.layout;
            let mut extra: Vec<String> = Vec::new();
            for t in ttl_for.result_tags(&value) {
                let t = layout.tag(&t);
                if !self.tags.contains(&t) && !extra.contains(&t) {
                    extra.push(t);
                }
            }
            if !extra.is_empty() {
                let read = cache.inner.store.ensure_tags_then_epoch(&extra, self.tag_ttl(), epoch);
                let moved = match cache.call_in(&mut self.budget, self.key, read).await {
                    Ok((now, seen)) if seen.is_some() && seen == self.epoch_seen => {
                        versions.extend(now);
                        all_tags = Some(self.tags.iter().chain(&extra).cloned().collect());
                        None
                    }
                    Ok(_) => Some(true),
                    Err(e) => {
                        self.note(&e);
                        Some(false)
                    }
                };
                if let Some(invalidated) = moved {
                    // Not stored: loaded before an invalidation of some tag
                    // (or the tags could not be read).
                    if invalidated {
                        self.scope.add(|c| &c.stale_sets_prevented);
                        trace_op(cache.origin(self.scope.name), "SET", self.key, "stale", load_start);
                    }
                    versions.truncate(self.tags.len());
                    self.release(token, &versions).await;
                    guard.disarm();
                    leader.publish(Outcome::Value {
                        bytes: bytes.into(),
                        upto: seal_at_load,
                    });
                    return Ok(value);
                }
            }
        }
        let tags: &[String] = all_tags.as_deref().unwrap_or(&self.tags);
        let load_us = u32::try_from(load_start.elapsed().as_micros()).unwrap_or(u32::MAX);
        let stored = ttl.map(|ttl| {
            let fresh = codec::Freshness {
                expires_at_ms: now_ms().saturating_add(ttl.as_millis() as u64),
                load_us,
            };
            let body = codec::with_freshness(fresh, &bytes);
            let section = if tags.is_empty() {
                body
            } else {
                codec::with_tags(tags, &versions, &body)
            };
            // The store keeps it past its logical expiry for as long as a
            // stale value may still be served.
            (
                section,
                crate::ttl::clamp(ttl.saturating_add(Fill::grace(self.swr, self.sie))),
            )
        });
        let seal = leader.seal();
        let start = Instant::now();
        let finish = Finish {
            entry: &self.entry,
            lease: lease_key(&self.lease, &self.entry),
            tags,
            versions: &versions,
            token,
            store: stored.as_ref().map(|(b, ttl)| (b.as_slice(), *ttl)),
        };
        let certified = match cache
            .call_in(&mut self.budget, self.key, cache.inner.store.finish(&finish))
            .await
        {
            Ok(true) => {
                if let Some((_, ttl)) = &stored {
                    trace_op(cache.origin(self.scope.name).ttl(*ttl), "SET", self.key, "ok", start);
                }
                true
            }
            Ok(false) => {
                self.scope.add(|c| &c.stale_sets_prevented);
                trace_op(cache.origin(self.scope.name), "SET", self.key, "stale", start);
                false
            }
            Err(e) => {
                self.note(&e);
                false
            }
        };
        guard.disarm();
        leader.publish(Outcome::Value {
            bytes: bytes.into(),
            upto: if certified { seal } else { seal_at_load },
        });
        Ok(value)
    }

    /// Loads without a lease (the backend failed, or another process's load
    /// overran the wait cap): nothing is stored; waiters up to `upto` get
    /// the value.
    async fn load_unleased<T, E, F, Fut>(
        &mut self,
        leader: Leader<'_>,
        loader: F,
        upto: u64,
        fallback: Option<T>,
    ) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let value = match self.run_loader(loader).await {
            Ok(v) => v,
            Err(e) => {
                leader.publish(Outcome::Retry);
                return self.or_stale(Err(e), fallback);
            }
        };
        match self.cache.encode_any_size(self.key, &value) {
            Ok(bytes) => leader.publish(Outcome::Value {
                bytes: bytes.into(),
                upto,
            }),
            Err(_) => leader.publish(Outcome::Retry),
        }
        Ok(value)
    }

    /// Releases our lease without storing.
    async fn release(&mut self, token: u64, versions: &[u64]) {
        let cache = self.cache;
        let finish = Finish {
            entry: &self.entry,
            lease: lease_key(&self.lease, &self.entry),
            tags: &self.tags,
            versions,
            token,
            store: None,
        };
        if let Err(e) = cache
            .call_in(&mut self.budget, self.key, cache.inner.store.finish(&finish))
            .await
        {
            self.note(&e);
        }
    }

    /// Write-through: store under the current tag versions (created if
    /// missing), revoking any load in flight.
    async fn write_through(&mut self, bytes: Vec<u8>, ttl: Duration) {
        let cache = self.cache;
        let start = Instant::now();
        let stored = if self.tags.is_empty() {
            bytes
        } else {
            let tag_ttl = self.tag_ttl();
            match cache
                .call_in(
                    &mut self.budget,
                    self.key,
                    cache.inner.store.ensure_tags(&self.tags, tag_ttl),
                )
                .await
            {
                Ok(versions) => codec::with_tags(&self.tags, &versions, &bytes),
                Err(e) => {
                    // Without the versions the entry cannot be tagged; drop
                    // the old one instead, so no stale value stays.
                    self.note(&e);
                    let _ = cache
                        .call_in(
                            &mut self.budget,
                            self.key,
                            cache.inner.store.del(std::slice::from_ref(&self.entry)),
                        )
                        .await;
                    return;
                }
            }
        };
        let ttl = crate::ttl::clamp(ttl);
        match cache
            .call_in(
                &mut self.budget,
                self.key,
                cache.inner.store.set(&self.entry, &stored, ttl),
            )
            .await
        {
            Ok(()) => trace_op(cache.origin(self.scope.name).ttl(ttl), "SET", self.key, "ok", start),
            Err(e) => {
                self.note(&e);
            }
        }
    }
}

/// Releases a fill lease if its load is cancelled, so that other processes
/// need not wait for it to expire.
struct LeaseGuard {
    cache: Cache,
    entry: String,
    lease: String,
    token: u64,
    armed: bool,
}

impl LeaseGuard {
    fn new(cache: &Cache, entry: &str, lease: &str, token: u64) -> Self {
        LeaseGuard {
            cache: cache.clone(),
            entry: entry.to_owned(),
            lease: lease.to_owned(),
            token,
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (cache, entry, lease, token) = (
            self.cache.clone(),
            std::mem::take(&mut self.entry),
            std::mem::take(&mut self.lease),
            self.token,
        );
        let release = async move {
            let finish = Finish {
                entry: &entry,
                lease: &lease,
                tags: &[],
                versions: &[],
                token,
                store: None,
            };
            let _ = cache.call(&entry, cache.inner.store.finish(&finish)).await;
        };
        // Without a runtime (dropped at shutdown) the lease expires by itself.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::Store;
    use crate::{Cache, Policy};

    fn leases(cache: &Cache) -> usize {
        match &cache.inner.store {
            Store::Memory(m) => m.bookkeeping_len().0,
            #[allow(unreachable_patterns)] // the only variant without `redis`
            _ => unreachable!("memory cache"),
        }
    }

    /// Issue 9 item 7: the memory store releases its fill lease on every
    /// outcome (error, `None` without a negative TTL, a value too large to
    /// store, a value stored), so bookkeeping never grows with history.
    #[tokio::test]
    async fn leases_are_released_on_every_outcome() {
        let cache = Cache::builder().max_value_bytes(64).build().await.unwrap();
        for i in 0..2_000u32 {
            let key = format!("k{i}");
            match i % 4 {
                0 => {
                    let r = cache
                        .get_or_load(&key, Duration::from_secs(60), || async { Err::<u32, _>("db down") })
                        .await;
                    assert!(r.is_err());
                }
                1 => {
                    let r = cache
                        .get_or_load_optional(&key, Policy::ttl(Duration::from_secs(60)), || async {
                            Ok::<Option<u32>, ()>(None)
                        })
                        .await;
                    assert_eq!(r, Ok(None));
                }
                2 => {
                    let big = vec![1u8; 1000];
                    let r = cache
                        .get_or_load(&key, Duration::from_secs(60), || async { Ok::<_, ()>(big) })
                        .await;
                    assert!(r.is_ok());
                }
                _ => {
                    let r = cache
                        .get_or_load(&key, Duration::from_secs(60), || async { Ok::<_, ()>(i) })
                        .await;
                    assert_eq!(r, Ok(i));
                }
            }
            assert_eq!(leases(&cache), 0, "lease left behind by call {i} (kind {})", i % 4);
        }
        assert_eq!(cache.stats().total.loads, 2_000);
    }

    /// A cancelled load's lease is released too (in the background).
    #[tokio::test]
    async fn a_cancelled_load_releases_its_lease() {
        let cache = Cache::memory();
        let load = cache.get_or_load("k", Duration::from_secs(60), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, ()>(1u8)
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), load).await.is_err());
        tokio::task::yield_now().await;
        assert_eq!(leases(&cache), 0);
    }
}
