//! What the cache asks of a storage engine, and the engines.
//!
//! The store sees full keys (built by [`layout`]) and bytes; everything
//! typed, timed and counted lives in `cache/`. Data flows one way:
//! cache-aside → guard (timeout, breaker, errors) → store.
//!
//! The fill protocol every engine implements (the semantics are the
//! contract, the memory engine is the reference):
//!
//! * [`Store::read`]: the entry and the current versions of its tags. A tag
//!   version that is missing (evicted, expired, flushed) is `None`, which no
//!   stored entry can match: losing bookkeeping is a miss, never a
//!   resurrection.
//! * [`Store::acquire`]: read-or-lease. Gives every missing tag a fresh
//!   random version, returns the entry if present, otherwise takes the fill
//!   lease **only if nobody holds it** (a live lease is never overwritten,
//!   except by an explicit takeover of a named holder that overran the wait
//!   cap).
//! * [`Store::finish`]: if our lease is still held and no tag moved since
//!   `acquire`, optionally stores the value; always releases the lease.
//!   `true` certifies that no invalidation of the key or its tags happened
//!   between `acquire` and now.
//! * Writes ([`Store::set`]) and invalidations ([`Store::del`],
//!   [`Store::del_pattern`], [`Store::clear`]) revoke leases; tag
//!   invalidation ([`Store::bump_tags`]) changes versions that exist, the
//!   first one given (the namespace's tag epoch) before the others.
//! * [`Store::ensure_tags_then_epoch`]: for tags computed from a loaded
//!   value, their current versions (missing ones created) and *then* the
//!   epoch, never the other way round.

#[cfg(feature = "cluster")]
mod cluster;
mod disabled;
pub(crate) mod layout;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod sentinel;
#[cfg(feature = "redis")]
mod single;

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "cluster")]
pub(crate) use cluster::ClusterStore;
pub(crate) use disabled::DisabledStore;
pub(crate) use layout::Layout;
pub(crate) use memory::{ENTRY_OVERHEAD, MemoryStore};
#[cfg(feature = "redis")]
pub(crate) use redis::{ACQUIRE_SOURCE, RedisStore};
#[cfg(feature = "redis")]
pub(crate) use sentinel::{SentinelStore, ask_sentinels};

/// Errors of a store call. The in-process store only fails on `INCR` of a
/// non-integer; Redis can fail in every call.
#[derive(Debug)]
pub(crate) enum StoreError {
    #[cfg(feature = "redis")]
    Redis(::redis::RedisError),
    NotAnInteger,
}

#[cfg(feature = "redis")]
impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}

impl StoreError {
    /// Failures of the server or the connection (what the circuit breaker
    /// counts), as opposed to a refused command.
    pub(crate) fn is_outage(&self) -> bool {
        match self {
            #[cfg(feature = "redis")]
            StoreError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                    // A cluster whose node for the slot is gone or failing over.
                    || e.is_cluster_error()
                    || matches!(
                        e.kind(),
                        ::redis::ErrorKind::ClusterConnectionNotFound
                            | ::redis::ErrorKind::Server(::redis::ServerErrorKind::MasterDown)
                            | ::redis::ErrorKind::Server(::redis::ServerErrorKind::BusyLoading)
                    )
            }
            StoreError::NotAnInteger => false,
        }
    }
}

pub(crate) type SResult<T> = Result<T, StoreError>;

/// Bytes read from a store.
#[derive(Debug)]
pub(crate) enum Raw {
    Shared(Arc<[u8]>),
    #[cfg(feature = "redis")]
    Owned(Vec<u8>),
}

impl std::ops::Deref for Raw {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Raw::Shared(b) => b,
            #[cfg(feature = "redis")]
            Raw::Owned(b) => b,
        }
    }
}

/// Remaining lifetime of a key, as `TTL`/`PTTL` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyTtl {
    /// No such key.
    Missing,
    /// The key exists and never expires.
    NoExpiry,
    /// The key expires after this long.
    ExpiresIn(Duration),
}

/// A read-or-lease request.
#[derive(Debug)]
pub(crate) struct Acquire<'a> {
    pub(crate) entry: &'a str,
    pub(crate) lease: &'a str,
    pub(crate) tags: &'a [String],
    pub(crate) token: u64,
    pub(crate) lease_ttl: Duration,
    /// Lifetime given to tag versions this call creates or touches: longer
    /// than any entry stored under them.
    pub(crate) tag_ttl: Duration,
    /// Take the lease even if an entry exists (it was found stale).
    pub(crate) force: bool,
    /// Take the lease over if this token still holds it (its leader overran
    /// the wait cap).
    pub(crate) takeover: Option<u64>,
}

/// What `acquire` found.
#[derive(Debug)]
pub(crate) struct Acquired {
    /// The entry, when present (and not ignored).
    pub(crate) entry: Option<Raw>,
    /// The current version of every tag, missing ones freshly created.
    pub(crate) versions: Vec<u64>,
    /// Whether this call took the fill lease.
    pub(crate) leased: bool,
    /// Who holds the lease when this call did not take it.
    pub(crate) holder: Option<u64>,
}

/// A store-if-leased (or release) request.
#[derive(Debug)]
pub(crate) struct Finish<'a> {
    pub(crate) entry: &'a str,
    pub(crate) lease: &'a str,
    pub(crate) tags: &'a [String],
    pub(crate) versions: &'a [u64],
    pub(crate) token: u64,
    /// The value and TTL to store, or `None` to only release and certify.
    pub(crate) store: Option<(&'a [u8], Duration)>,
}

/// Breakers of a cluster cache: one per 128 slots. A dead primary owning a
/// third of the slots opens about a third of them (plus at most one group
/// it shares with a neighbour); the rest keep caching.
#[cfg(feature = "cluster")]
const SLOT_GROUPS: usize = 128;

/// A fresh tag version: random and never 0.
pub(crate) fn new_version() -> u64 {
    crate::ttl::random_u64().max(1)
}

/// The storage engine of a cache.
pub(crate) enum Store {
    Memory(MemoryStore),
    Disabled(DisabledStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
    #[cfg(feature = "redis")]
    Sentinel(SentinelStore),
    #[cfg(feature = "cluster")]
    Cluster(ClusterStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Memory(_) => f.write_str("Memory"),
            Store::Disabled(_) => f.write_str("Disabled"),
            #[cfg(feature = "redis")]
            Store::Redis(r) => write!(f, "Redis({})", r.display_url),
            #[cfg(feature = "redis")]
            Store::Sentinel(s) => write!(f, "Sentinel({})", s.display),
            #[cfg(feature = "cluster")]
            Store::Cluster(c) => write!(f, "Cluster({})", c.display),
        }
    }
}

macro_rules! dispatch {
    ($self:ident.$m:ident($($a:expr),*)) => {
        match $self {
            Store::Memory(s) => s.$m($($a),*),
            Store::Disabled(s) => s.$m($($a),*),
            #[cfg(feature = "redis")]
            Store::Redis(s) => s.$m($($a),*).await,
            #[cfg(feature = "redis")]
            Store::Sentinel(s) => s.$m($($a),*).await,
            #[cfg(feature = "cluster")]
            Store::Cluster(s) => s.$m($($a),*).await,
        }
    };
}

impl Store {
    /// In this process (memory or disabled): no timeouts, no breaker.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(
            self.kind(),
            crate::BackendKind::InProcess | crate::BackendKind::Disabled
        )
    }

    /// [`Cache::disabled`](crate::Cache::disabled): nothing is stored and
    /// every cache-aside call runs its loader.
    pub(crate) fn is_disabled(&self) -> bool {
        self.kind() == crate::BackendKind::Disabled
    }

    pub(crate) fn kind(&self) -> crate::BackendKind {
        use crate::BackendKind as K;
        match self {
            Store::Memory(_) => K::InProcess,
            Store::Disabled(_) => K::Disabled,
            #[cfg(feature = "redis")]
            Store::Redis(_) => K::Redis,
            #[cfg(feature = "redis")]
            Store::Sentinel(_) => K::RedisSentinel,
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => K::RedisCluster,
        }
    }

    /// How many independent failure domains (circuit breakers) the store
    /// has: one, or on a cluster one per group of slots, so that a dead
    /// primary bypasses only the keys of its slots.
    pub(crate) fn shards(&self) -> usize {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => SLOT_GROUPS,
            _ => 1,
        }
    }

    /// Told when a call on `key` timed out (the cluster store refreshes its
    /// slot map, see `ClusterStore::after_timeout`).
    pub(crate) fn after_timeout(&self, key: &str) {
        #[cfg(feature = "cluster")]
        if let Store::Cluster(c) = self {
            c.after_timeout(key);
        }
        let _ = key;
    }

    /// The failure domain of a key (any key shape of `layout`).
    pub(crate) fn shard_of(&self, key: &str) -> usize {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => usize::from(cluster::key_slot(key)) * SLOT_GROUPS / 16384,
            _ => {
                let _ = key;
                0
            }
        }
    }

    pub(crate) async fn get(&self, entry: &str) -> SResult<Option<Raw>> {
        dispatch!(self.get(entry))
    }
    /// The entry and the current versions of `tags` (`None`: missing), in
    /// one round trip.
    pub(crate) async fn read(&self, entry: &str, tags: &[String]) -> SResult<(Option<Raw>, Vec<Option<u64>>)> {
        dispatch!(self.read(entry, tags))
    }
    pub(crate) async fn tag_versions(&self, tags: &[String]) -> SResult<Vec<Option<u64>>> {
        dispatch!(self.tag_versions(tags))
    }
    pub(crate) async fn acquire(&self, req: &Acquire<'_>) -> SResult<Acquired> {
        dispatch!(self.acquire(req))
    }
    pub(crate) async fn finish(&self, req: &Finish<'_>) -> SResult<bool> {
        dispatch!(self.finish(req))
    }
    /// Current versions of `tags`, creating missing ones (for write-through).
    pub(crate) async fn ensure_tags(&self, tags: &[String], tag_ttl: Duration) -> SResult<Vec<u64>> {
        dispatch!(self.ensure_tags(tags, tag_ttl))
    }
    /// Current versions of `tags` (created if missing), then the current
    /// value of the tag epoch `epoch` (`None`: missing), read after them:
    /// atomically where the engine can, else in that order.
    pub(crate) async fn ensure_tags_then_epoch(
        &self,
        tags: &[String],
        tag_ttl: Duration,
        epoch: &str,
    ) -> SResult<(Vec<u64>, Option<u64>)> {
        dispatch!(self.ensure_tags_then_epoch(tags, tag_ttl, epoch))
    }
    /// Stores a value and revokes any lease on the key.
    pub(crate) async fn set(&self, entry: &str, value: &[u8], ttl: Duration) -> SResult<()> {
        dispatch!(self.set(entry, value, ttl))
    }
    /// Deletes entries and revokes their leases; counts entries that existed.
    pub(crate) async fn del(&self, entries: &[String]) -> SResult<u64> {
        dispatch!(self.del(entries))
    }
    /// Revokes the leases, then deletes the entries, matching an entry glob.
    pub(crate) async fn del_pattern(&self, entry_pattern: &str, batch: usize) -> SResult<u64> {
        dispatch!(self.del_pattern(entry_pattern, batch))
    }
    /// Deletes every key matching the globs, in order; counts entries.
    pub(crate) async fn clear(&self, layout: &Layout, batch: usize) -> SResult<u64> {
        dispatch!(self.clear(layout, batch))
    }
    /// `WAIT replicas timeout` on the node(s) that hold `keys` (after writes
    /// to them); returns the fewest replicas any of them acknowledged.
    pub(crate) async fn wait_replicas(&self, keys: &[String], replicas: u32, timeout: Duration) -> SResult<u32> {
        dispatch!(self.wait_replicas(keys, replicas, timeout))
    }
    /// Gives each existing tag a fresh version; the first is changed before
    /// any other (`drop_tags` puts the tag epoch first).
    pub(crate) async fn bump_tags(&self, tags: &[String]) -> SResult<()> {
        dispatch!(self.bump_tags(tags))
    }
    pub(crate) async fn exists(&self, entry: &str) -> SResult<bool> {
        dispatch!(self.exists(entry))
    }
    pub(crate) async fn ttl(&self, entry: &str) -> SResult<KeyTtl> {
        dispatch!(self.ttl(entry))
    }
    pub(crate) async fn incr_by(&self, entry: &str, by: i64) -> SResult<i64> {
        dispatch!(self.incr_by(entry, by))
    }
    pub(crate) async fn expire(&self, entry: &str, ttl: Duration) -> SResult<bool> {
        dispatch!(self.expire(entry, ttl))
    }
}
