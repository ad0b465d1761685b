//! The near cache: a typed in-process tier in front of Redis, coherent
//! within a bound ε.
//!
//! * **Entries** hold the value itself (`Arc<dyn Any>`), so a near hit is a
//!   clone without decoding; a value is only handed to the type it was
//!   stored as. With it the tags the entry was stored under and their
//!   versions, and its logical expiry (for TTL and early refresh).
//! * **Tag versions** are near-cached too: a near hit checks every tag of
//!   its entry against them, so a tagged near hit costs no round trip.
//! * **Invalidations** arrive on a dedicated connection per Redis primary on
//!   which Redis pushes every change to this namespace's keys
//!   (`CLIENT TRACKING … BCAST`, see `channel.rs`): writes, deletes,
//!   expiries, evictions, flushes, by any client.
//! * **The bound**: the tier serves only while every channel answered a
//!   ping sent at most ε ago. Redis sends an invalidation before the reply
//!   to any command it reads later on that connection, and the push handler
//!   runs before the reply is delivered, so when a ping sent at `s` is
//!   answered, every invalidation applied by Redis before `s` has been
//!   applied here. A read that starts at `r` serves only if such an `s ≥ r − ε`
//!   exists: an invalidation that returned at `t ≤ r − ε ≤ s` is applied.
//! * **No insert after invalidate**: a reader takes a [`Ticket`] (the
//!   epoch and the stripe counters of its key and tags) *before* its Redis
//!   read, and inserts only if they did not move, checking and inserting
//!   under the stripe's lock; an invalidation bumps the counter and removes
//!   under the same lock, and `clear` excludes every insert. So a value
//!   read before an invalidation is never in the tier after it, not even
//!   for an instant (an earlier version inserted, then checked and taken
//!   back out, could be served in between).
//! * **Doubt clears**: a disconnect, a reconnect, a flush or a topology
//!   change bumps the epoch and empties the tier.

// Without the Redis backends there is nothing to put a near tier in front
// of: the tier compiles (the API names it) but is never built.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

#[cfg(feature = "redis")]
pub(crate) mod channel;

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Number of invalidation counters keys and tags are hashed onto.
const STRIPES: usize = 4096;
/// What an entry costs beyond its key, its value and its tags (moka's node
/// and queues, the `Arc`s, allocation headers and rounding), in bytes: as
/// measured for the in-process store (`store/memory.rs`).
const ENTRY_OVERHEAD: u64 = crate::store::ENTRY_OVERHEAD as u64;

/// How a near entry is made from, and turned back into, a `T`. Built only
/// for `T: Clone + Send + Sync + 'static` ([`NearOps::new`]); the cache's
/// generic paths carry an `Option<NearOps<T>>`.
pub struct NearOps<T> {
    /// `size_of::<T>()`: with the encoded size, what a value costs.
    size: usize,
    wrap: fn(&T) -> Arc<dyn Any + Send + Sync>,
    clone: fn(&(dyn Any + Send + Sync)) -> Option<T>,
}

impl<T> Clone for NearOps<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for NearOps<T> {}

impl<T> std::fmt::Debug for NearOps<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NearOps")
    }
}

impl<T: Clone + Send + Sync + 'static> NearOps<T> {
    /// The operations for `T`.
    pub fn new() -> Self {
        NearOps {
            size: std::mem::size_of::<T>(),
            wrap: |v| Arc::new(v.clone()),
            clone: |any| any.downcast_ref::<T>().cloned(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Default for NearOps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> NearOps<T> {
    pub(crate) fn wrap(&self, v: &T) -> Arc<dyn Any + Send + Sync> {
        (self.wrap)(v)
    }

    pub(crate) fn clone_out(&self, any: &(dyn Any + Send + Sync)) -> Option<T> {
        (self.clone)(any)
    }

    /// What a value whose encoding is `encoded` bytes costs in memory,
    /// about: the value itself and its heap parts (estimated by the
    /// encoding's size).
    pub(crate) fn cost(&self, encoded: usize) -> usize {
        self.size + encoded
    }
}

/// Picks [`NearOps`] for `T` when it is `Clone + Send + Sync + 'static`,
/// nothing otherwise (autoref specialization: `#[cached]` writes
/// `(&&NearProbe::<T>::new()).near_ops()` with both traits in scope).
pub struct NearProbe<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for NearProbe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NearProbe")
    }
}

impl<T> NearProbe<T> {
    /// A probe for `T`.
    pub fn new() -> Self {
        NearProbe(PhantomData)
    }
}

impl<T> Default for NearProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The probe's choice for types that can be near-cached.
pub trait NearYes<T> {
    /// `Some` operations.
    fn near_ops(&self) -> Option<NearOps<T>>;
}

impl<T: Clone + Send + Sync + 'static> NearYes<T> for &NearProbe<T> {
    fn near_ops(&self) -> Option<NearOps<T>> {
        Some(NearOps::new())
    }
}

/// The probe's choice for every other type.
pub trait NearNo<T> {
    /// `None`.
    fn near_ops(&self) -> Option<NearOps<T>>;
}

impl<T> NearNo<T> for NearProbe<T> {
    fn near_ops(&self) -> Option<NearOps<T>> {
        None
    }
}

/// One near-cached value.
pub(crate) struct Entry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    /// Tag keys (`{ns#tag:T}`) and the versions the entry was stored under.
    pub(crate) tags: Box<[(Box<str>, u64)]>,
    /// Logical expiry (from the entry's freshness section, on the
    /// monotonic clock: one clock read per hit), and the last load's
    /// duration.
    pub(crate) expires: Instant,
    pub(crate) load_us: u32,
    weight: u32,
}

/// Milliseconds since the Unix epoch.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Counters a reader read before its Redis read (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    epoch: u64,
    key: (usize, u64),
    tags: Vec<(usize, u64)>,
}

/// The tier shared by a cache handle and its channel task.
pub(crate) struct Tier {
    entries: moka::sync::Cache<Box<str>, Arc<Entry>>,
    tags: moka::sync::Cache<Box<str>, u64>,
    stripes: Box<[AtomicU64]>,
    /// One lock per stripe: an invalidation bumps the stripe and removes
    /// under it; an insert checks the stripe and inserts under it, so no
    /// insert lands between another's check and removal.
    locks: Box<[Mutex<()>]>,
    /// Inserts hold it shared; `clear` holds it exclusively.
    gate: RwLock<()>,
    epoch: AtomicU64,
    /// Nanoseconds since `base` until which hits may be served (a ping sent
    /// at `s` and answered makes it `s + ε`); 0: not serving.
    serve_until: AtomicU64,
    base: Instant,
    pub(crate) eps: Duration,
    /// `{ns:` and `{ns#`: the key prefixes of this namespace.
    pub(crate) entry_prefix: String,
    pub(crate) tag_prefix: String,
}

impl Tier {
    pub(crate) fn new(namespace: &str, capacity: u64, eps: Duration) -> Self {
        // Tag versions are small: a fixed share of the capacity.
        let tag_capacity = (capacity / 16).max(64 * 1024);
        Tier {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .weigher(|_, e: &Arc<Entry>| e.weight)
                .build(),
            tags: moka::sync::Cache::builder()
                .max_capacity(tag_capacity)
                .weigher(
                    #[allow(clippy::borrowed_box)]
                    |k: &Box<str>, _| (k.len() as u64 + 64).min(u64::from(u32::MAX)) as u32,
                )
                .build(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            gate: RwLock::new(()),
            epoch: AtomicU64::new(0),
            serve_until: AtomicU64::new(0),
            base: Instant::now(),
            eps,
            entry_prefix: format!("{{{namespace}:"),
            tag_prefix: format!("{{{namespace}#"),
        }
    }

    /// Whether hits may be served now.
    pub(crate) fn live(&self) -> bool {
        self.live_at(Instant::now())
    }

    fn live_at(&self, now: Instant) -> bool {
        let until = self.serve_until.load(SeqCst);
        until != 0 && (now.saturating_duration_since(self.base).as_nanos() as u64) < until
    }

    /// A ping sent at `sent` was answered (with every invalidation before
    /// it applied): serve until `sent + ε`.
    pub(crate) fn confirmed(&self, sent: Instant) {
        let at = sent.saturating_duration_since(self.base).as_nanos() as u64;
        let until = at.saturating_add(self.eps.as_nanos() as u64).max(1);
        self.serve_until.fetch_max(until, SeqCst);
    }

    /// Stop serving (the channel is in doubt) and forget everything.
    pub(crate) fn doubt(&self) {
        self.serve_until.store(0, SeqCst);
        self.clear();
    }

    /// Empties the tier; reads in flight cannot insert what they read
    /// before.
    pub(crate) fn clear(&self) {
        let _all = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, SeqCst);
        self.entries.invalidate_all();
        self.tags.invalidate_all();
    }

    fn stripe(&self, s: &str) -> usize {
        // FNV-1a: short keys, no DoS concern (a collision only costs an
        // insert).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % STRIPES as u64) as usize
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, ()> {
        self.locks[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An entry key (the user's key) changed.
    pub(crate) fn invalidate_key(&self, key: &str) {
        let i = self.stripe(key);
        let _g = self.lock(i);
        self.stripes[i].fetch_add(1, SeqCst);
        self.entries.invalidate(key);
    }

    /// A tag version (`{ns#tag:T}`) changed.
    pub(crate) fn invalidate_tag(&self, tag_key: &str) {
        let i = self.stripe(tag_key);
        let _g = self.lock(i);
        self.stripes[i].fetch_add(1, SeqCst);
        self.tags.invalidate(tag_key);
    }

    /// A key named by a Redis invalidation message.
    pub(crate) fn invalidate_redis_key(&self, redis_key: &[u8]) {
        let Ok(k) = std::str::from_utf8(redis_key) else {
            // Not one of ours (ours are UTF-8): nothing to do.
            return;
        };
        if let Some(rest) = k.strip_prefix(self.entry_prefix.as_str()) {
            if let Some(key) = rest.strip_suffix('}') {
                self.invalidate_key(key);
            }
            // `{ns:KEY}:lease`: leases are not near-cached.
        } else if k.starts_with(self.tag_prefix.as_str()) {
            self.invalidate_tag(k);
        }
    }

    /// The counters to check after a read of `key` under `tags`.
    pub(crate) fn ticket(&self, key: &str, tags: &[String]) -> Ticket {
        let at = |s: &str| {
            let i = self.stripe(s);
            (i, self.stripes[i].load(SeqCst))
        };
        Ticket {
            epoch: self.epoch.load(SeqCst),
            key: at(key),
            tags: tags.iter().map(|t| at(t)).collect(),
        }
    }

    /// A served entry: the value, if present, of this type, unexpired and
    /// with every tag at its stored version. `None` on any doubt.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        if !self.live_at(now) {
            return None;
        }
        let e = self.entries.get(key)?;
        if now >= e.expires {
            return None;
        }
        for (tag, version) in e.tags.iter() {
            if self.tags.get(&**tag) != Some(*version) {
                return None;
            }
        }
        Some(e)
    }

    /// The near-cached versions of all of `tags`, while serving; `None` if
    /// any is unknown.
    pub(crate) fn tag_versions(&self, tags: &[String]) -> Option<Vec<Option<u64>>> {
        if !self.live() {
            return None;
        }
        tags.iter().map(|t| self.tags.get(t.as_str()).map(Some)).collect()
    }

    /// Keeps the tag versions a read that took `ticket` found (`None`:
    /// missing in the store, not kept), each unless it moved since.
    pub(crate) fn insert_tags(&self, ticket: &Ticket, tags: &[String], versions: &[Option<u64>]) {
        let _shared = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(SeqCst) != ticket.epoch {
            return;
        }
        for (tag, version) in tags.iter().zip(versions) {
            if let Some(v) = version {
                self.put_tag(ticket, tag, *v);
            }
        }
    }

    /// One tag version, under its stripe's lock, if the ticket covers it
    /// and it did not move. The caller holds the gate.
    fn put_tag(&self, ticket: &Ticket, tag: &str, version: u64) {
        let i = self.stripe(tag);
        let Some(&(_, seen)) = ticket.tags.iter().find(|(j, _)| *j == i) else {
            return;
        };
        let _g = self.lock(i);
        if self.stripes[i].load(SeqCst) == seen {
            self.tags.insert(Box::from(tag), version);
        }
    }

    /// Inserts what a read that took `ticket` found, unless it was
    /// invalidated since (its key, or everything). Its tags' versions are
    /// kept each unless that tag moved; an entry whose tag versions are not
    /// all kept is never served (see [`get`](Self::get)). `size`: what the
    /// value costs.
    pub(crate) fn insert(
        &self,
        ticket: &Ticket,
        key: &str,
        value: Arc<dyn Any + Send + Sync>,
        tags: Vec<(Box<str>, u64)>,
        expiry: (u64, u32),
        size: usize,
    ) {
        let _shared = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(SeqCst) != ticket.epoch {
            return;
        }
        for (tag, version) in &tags {
            self.put_tag(ticket, tag, *version);
        }
        let weight = (key.len() as u64
            + size as u64
            + ENTRY_OVERHEAD
            + tags.iter().map(|(t, _)| t.len() as u64 + 24).sum::<u64>())
        .min(u64::from(u32::MAX)) as u32;
        let left = Duration::from_millis(expiry.0.saturating_sub(wall_ms()));
        let now = Instant::now();
        let entry = Arc::new(Entry {
            value,
            tags: tags.into_boxed_slice(),
            expires: now
                .checked_add(left)
                .unwrap_or(now + Duration::from_secs(10 * 365 * 86_400)),
            load_us: expiry.1,
            weight,
        });
        let (i, seen) = ticket.key;
        let _g = self.lock(i);
        if self.stripes[i].load(SeqCst) == seen {
            self.entries.insert(Box::from(key), entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier() -> Tier {
        let t = Tier::new("app", 1 << 20, Duration::from_millis(50));
        t.confirmed(Instant::now());
        t
    }

    fn put(t: &Tier, ticket: &Ticket, key: &str, v: u32, tags: &[(&str, u64)]) {
        let tags = tags.iter().map(|(k, v)| (Box::from(*k), *v)).collect();
        t.insert(ticket, key, Arc::new(v), tags, (u64::MAX, 0), 8);
    }

    fn value(t: &Tier, key: &str) -> Option<u32> {
        t.get(key, Instant::now())
            .and_then(|e| e.value.downcast_ref::<u32>().copied())
    }

    #[test]
    fn serves_only_while_a_recent_ping_was_answered() {
        let t = Tier::new("app", 1 << 20, Duration::from_millis(20));
        let ticket = t.ticket("k", &[]);
        put(&t, &ticket, "k", 1, &[]);
        assert_eq!(value(&t, "k"), None, "never confirmed");
        t.confirmed(Instant::now());
        assert_eq!(value(&t, "k"), Some(1));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(value(&t, "k"), None, "the last answered ping is older than ε");
        t.confirmed(Instant::now());
        assert_eq!(value(&t, "k"), Some(1));
        t.doubt();
        assert_eq!(value(&t, "k"), None);
        t.confirmed(Instant::now());
        assert_eq!(value(&t, "k"), None, "doubt cleared the tier");
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let t = tier();
        // The ticket is taken before the Redis read; the invalidation is
        // applied before the read's insert.
        let ticket = t.ticket("k", &[]);
        t.invalidate_redis_key(b"{app:k}");
        put(&t, &ticket, "k", 1, &[]);
        assert_eq!(value(&t, "k"), None);
        // The same through a tag, and through a flush.
        let tags = ["{app#tag:t}".to_owned()];
        let ticket = t.ticket("k", &tags);
        t.invalidate_redis_key(b"{app#tag:t}");
        put(&t, &ticket, "k", 2, &[("{app#tag:t}", 7)]);
        assert_eq!(value(&t, "k"), None);
        let ticket = t.ticket("k", &tags);
        t.clear();
        put(&t, &ticket, "k", 3, &[("{app#tag:t}", 7)]);
        assert_eq!(value(&t, "k"), None);
        // Unrelated invalidations do not refuse it.
        let ticket = t.ticket("k", &tags);
        t.invalidate_redis_key(b"{app:other}");
        put(&t, &ticket, "k", 4, &[("{app#tag:t}", 7)]);
        assert_eq!(value(&t, "k"), Some(4));
    }

    #[test]
    fn invalidation_messages_map_to_entries_and_tags_of_this_namespace_only() {
        let t = tier();
        let tags = ["{app#tag:t}".to_owned()];
        for (msg, gone) in [
            (&b"{app:k}:lease"[..], false),
            (b"{apps:k}", false),
            (b"{ap:k}", false),
            (b"{app#tag:u}", false),
            (b"{app:k}", true),
        ] {
            let ticket = t.ticket("k", &tags);
            put(&t, &ticket, "k", 1, &[("{app#tag:t}", 7)]);
            assert_eq!(value(&t, "k"), Some(1));
            t.invalidate_redis_key(msg);
            assert_eq!(value(&t, "k").is_none(), gone, "{}", String::from_utf8_lossy(msg));
        }
        // A tag message makes every entry under the tag unservable.
        t.invalidate_redis_key(b"{app#tag:t}");
        assert_eq!(value(&t, "k"), None);
        // Keys holding braces and colons map back exactly.
        let ticket = t.ticket("a:{b}", &[]);
        put(&t, &ticket, "a:{b}", 5, &[]);
        t.invalidate_redis_key(b"{app:a:{b}}");
        assert_eq!(value(&t, "a:{b}"), None);
    }

    #[test]
    fn a_value_is_only_handed_to_its_own_type() {
        let t = tier();
        let ticket = t.ticket("k", &[]);
        put(&t, &ticket, "k", 1, &[]);
        let e = t.get("k", Instant::now()).expect("entry");
        assert_eq!(NearOps::<u32>::new().clone_out(&*e.value), Some(1));
        assert_eq!(NearOps::<u64>::new().clone_out(&*e.value), None);
        assert_eq!(NearOps::<String>::new().clone_out(&*e.value), None);
    }

    #[test]
    fn entries_expire_at_their_logical_expiry() {
        let t = tier();
        let ticket = t.ticket("k", &[]);
        t.insert(&ticket, "k", Arc::new(1u32), Vec::new(), (wall_ms() + 1_000, 0), 8);
        assert!(t.get("k", Instant::now()).is_some());
        assert!(t.get("k", Instant::now() + Duration::from_millis(1_001)).is_none());
    }
}
