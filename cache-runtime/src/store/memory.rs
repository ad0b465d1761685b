//! The in-process store: entries in moka, bounded by their size; leases and
//! tag versions beside them under one lock, which makes every protocol step
//! atomic. This engine is the reference semantics of the fill protocol.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::ops::compute::Op;

use super::{Acquire, Acquired, Finish, KeyTtl, Layout, Raw, SResult, StoreError, new_version};

#[derive(Clone)]
struct MemEntry {
    bytes: Arc<[u8]>,
    expires_at: Option<Instant>,
}

impl MemEntry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

struct MemExpiry;

impl moka::Expiry<String, MemEntry> for MemExpiry {
    fn expire_after_create(&self, _: &String, v: &MemEntry, now: Instant) -> Option<Duration> {
        v.expires_at.map(|t| t.saturating_duration_since(now))
    }
    fn expire_after_update(&self, _: &String, v: &MemEntry, now: Instant, _: Option<Duration>) -> Option<Duration> {
        v.expires_at.map(|t| t.saturating_duration_since(now))
    }
}

/// A map whose values expire, pruned in amortised O(1): a sweep runs when
/// the map has doubled since the last one.
struct Expiring<V> {
    map: HashMap<String, (V, Instant)>,
    sweep_at: usize,
}

impl<V: Copy> Expiring<V> {
    fn new() -> Self {
        Expiring {
            map: HashMap::new(),
            sweep_at: 1024,
        }
    }

    fn get(&self, k: &str, now: Instant) -> Option<V> {
        self.map.get(k).filter(|(_, until)| *until > now).map(|(v, _)| *v)
    }

    fn insert(&mut self, k: &str, v: V, until: Instant) {
        if self.map.len() >= self.sweep_at {
            let now = Instant::now();
            self.map.retain(|_, (_, u)| *u > now);
            self.sweep_at = (self.map.len() * 2).max(1024);
        }
        self.map.insert(k.to_owned(), (v, until));
    }

    fn remove(&mut self, k: &str) -> Option<V> {
        self.map.remove(k).map(|(v, _)| v)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Leases (token) and tag versions (version, each with an expiry).
struct Bookkeeping {
    leases: Expiring<u64>,
    tags: Expiring<u64>,
}

pub(crate) struct MemoryStore {
    cache: moka::sync::Cache<String, MemEntry>,
    books: Mutex<Bookkeeping>,
}

/// `now + d`, saturating far in the future instead of overflowing.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// What an entry costs beyond its key and value bytes: moka's node, its
/// queue and timer entries, the `Arc`, the allocations' headers and
/// rounding. Measured (RSS growth per entry, 1.7 M small entries filling a
/// 64 MiB cache): about 400 bytes; with 32 counted, a 64 MiB cache of
/// 100-byte values grew RSS by 220 MiB (3.4x its capacity).
pub(crate) const ENTRY_OVERHEAD: usize = 400;

impl MemoryStore {
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &String, v: &MemEntry| {
                (k.len() + v.bytes.len() + ENTRY_OVERHEAD).min(u32::MAX as usize) as u32
            })
            .expire_after(MemExpiry)
            .build();
        MemoryStore {
            cache,
            books: Mutex::new(Bookkeeping {
                leases: Expiring::new(),
                tags: Expiring::new(),
            }),
        }
    }

    fn books(&self) -> MutexGuard<'_, Bookkeeping> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops a tag version (or the tag epoch), as eviction would.
    #[cfg(test)]
    pub(crate) fn forget_tag(&self, tag: &str) {
        self.books().tags.remove(tag);
    }

    /// Leases and tag versions held (for tests of bounded bookkeeping).
    #[cfg(test)]
    pub(crate) fn bookkeeping_len(&self) -> (usize, usize) {
        let b = self.books();
        (b.leases.len(), b.tags.len())
    }

    fn live(&self, key: &str) -> Option<MemEntry> {
        let e = self.cache.get(key)?;
        if e.live(Instant::now()) { Some(e) } else { None }
    }

    pub(crate) fn get(&self, entry: &str) -> SResult<Option<Raw>> {
        Ok(self.live(entry).map(|e| Raw::Shared(e.bytes)))
    }

    pub(crate) fn read(&self, entry: &str, tags: &[String]) -> SResult<(Option<Raw>, Vec<Option<u64>>)> {
        // Versions first: a value read after them is at least as new.
        let versions = self.tag_versions(tags)?;
        Ok((self.get(entry)?, versions))
    }

    pub(crate) fn tag_versions(&self, tags: &[String]) -> SResult<Vec<Option<u64>>> {
        let now = Instant::now();
        let b = self.books();
        Ok(tags.iter().map(|t| b.tags.get(t, now)).collect())
    }

    fn ensure_tags_locked(b: &mut Bookkeeping, tags: &[String], tag_ttl: Duration, now: Instant) -> Vec<u64> {
        let until = after(now, tag_ttl);
        tags.iter()
            .map(|t| {
                let (v, old_until) = match b.tags.map.get(t.as_str()) {
                    Some(&(v, u)) if u > now => (v, u),
                    _ => (new_version(), now),
                };
                b.tags.insert(t, v, old_until.max(until));
                v
            })
            .collect()
    }

    pub(crate) fn ensure_tags(&self, tags: &[String], tag_ttl: Duration) -> SResult<Vec<u64>> {
        let now = Instant::now();
        Ok(Self::ensure_tags_locked(&mut self.books(), tags, tag_ttl, now))
    }

    pub(crate) fn ensure_tags_then_epoch(
        &self,
        tags: &[String],
        tag_ttl: Duration,
        epoch: &str,
    ) -> SResult<(Vec<u64>, Option<u64>)> {
        let now = Instant::now();
        let mut b = self.books();
        let versions = Self::ensure_tags_locked(&mut b, tags, tag_ttl, now);
        Ok((versions, b.tags.get(epoch, now)))
    }

    pub(crate) fn acquire(&self, req: &Acquire<'_>) -> SResult<Acquired> {
        let now = Instant::now();
        let mut b = self.books();
        let versions = Self::ensure_tags_locked(&mut b, req.tags, req.tag_ttl, now);
        let entry = self.live(req.entry).map(|e| Raw::Shared(e.bytes));
        if entry.is_some() && !req.force {
            return Ok(Acquired {
                entry,
                versions,
                leased: false,
                holder: None,
            });
        }
        let holder = b.leases.get(req.lease, now);
        let leased = holder.is_none() || holder == req.takeover;
        if leased {
            b.leases.insert(req.lease, req.token, after(now, req.lease_ttl));
        }
        Ok(Acquired {
            entry,
            versions,
            leased,
            holder: if leased { None } else { holder },
        })
    }

    pub(crate) fn finish(&self, req: &Finish<'_>) -> SResult<bool> {
        let now = Instant::now();
        let mut b = self.books();
        if b.leases.get(req.lease, now) != Some(req.token) {
            return Ok(false);
        }
        b.leases.remove(req.lease);
        let tags_unchanged = req
            .tags
            .iter()
            .zip(req.versions)
            .all(|(t, v)| b.tags.get(t, now) == Some(*v));
        if !tags_unchanged {
            return Ok(false);
        }
        if let Some((value, ttl)) = req.store {
            self.insert(req.entry, value, ttl);
        }
        Ok(true)
    }

    fn insert(&self, key: &str, value: &[u8], ttl: Duration) {
        let now = Instant::now();
        let entry = MemEntry {
            bytes: value.into(),
            expires_at: Some(after(now, ttl)),
        };
        self.cache.insert(key.to_owned(), entry);
    }

    pub(crate) fn set(&self, entry: &str, value: &[u8], ttl: Duration) -> SResult<()> {
        let mut b = self.books();
        b.leases.remove(&Layout::lease_of(entry));
        self.insert(entry, value, ttl);
        Ok(())
    }

    pub(crate) fn del(&self, entries: &[String]) -> SResult<u64> {
        let now = Instant::now();
        let mut b = self.books();
        let mut removed = 0;
        for k in entries {
            b.leases.remove(&Layout::lease_of(k));
            if self.cache.remove(k.as_str()).is_some_and(|e| e.live(now)) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub(crate) fn del_pattern(&self, entry_pattern: &str, _batch: usize) -> SResult<u64> {
        let lease_pattern = Layout::lease_pattern(entry_pattern);
        let matches = |p: &str, k: &str| crate::glob::glob_match(p.as_bytes(), k.as_bytes());
        let mut b = self.books();
        b.leases.map.retain(|k, _| !matches(&lease_pattern, k));
        let now = Instant::now();
        let matching: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, e)| e.live(now) && matches(entry_pattern, k))
            .map(|(k, _)| k)
            .collect();
        Ok(matching
            .iter()
            .filter(|k| self.cache.remove(k.as_str()).is_some())
            .count() as u64)
    }

    pub(crate) fn clear(&self, layout: &Layout, _batch: usize) -> SResult<u64> {
        let entries = format!("{{{}:", layout.namespace());
        let tags = format!("{{{}#", layout.namespace());
        let mut b = self.books();
        b.leases.map.retain(|k, _| !k.starts_with(&entries));
        b.tags.map.retain(|k, _| !k.starts_with(&tags));
        let now = Instant::now();
        let matching: Vec<(Arc<String>, bool)> = self
            .cache
            .iter()
            .filter(|(k, _)| k.starts_with(&entries))
            .map(|(k, e)| (k, e.live(now)))
            .collect();
        let mut removed = 0;
        for (k, live) in matching {
            if self.cache.remove(k.as_str()).is_some() && live {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub(crate) fn bump_tags(&self, tags: &[String]) -> SResult<()> {
        let now = Instant::now();
        let mut b = self.books();
        for t in tags {
            if let Some(&(_, until)) = b.tags.map.get(t.as_str())
                && until > now
            {
                b.tags.insert(t, new_version(), until);
            }
        }
        Ok(())
    }

    /// In process, an applied write is as durable as it gets.
    pub(crate) fn wait_replicas(&self, _keys: &[String], replicas: u32, _timeout: Duration) -> SResult<u32> {
        Ok(replicas)
    }

    pub(crate) fn exists(&self, entry: &str) -> SResult<bool> {
        Ok(self.live(entry).is_some())
    }

    pub(crate) fn ttl(&self, entry: &str) -> SResult<KeyTtl> {
        Ok(match self.live(entry) {
            None => KeyTtl::Missing,
            Some(MemEntry { expires_at: None, .. }) => KeyTtl::NoExpiry,
            Some(MemEntry {
                expires_at: Some(t), ..
            }) => KeyTtl::ExpiresIn(t.saturating_duration_since(Instant::now())),
        })
    }

    pub(crate) fn incr_by(&self, entry: &str, by: i64) -> SResult<i64> {
        let mut result = Err(StoreError::NotAnInteger);
        let now = Instant::now();
        self.cache.entry(entry.to_owned()).and_compute_with(|current| {
            let (old, expires_at) = match current.map(|e| e.into_value()).filter(|e| e.live(now)) {
                None => (Some(0), None),
                Some(e) => (
                    std::str::from_utf8(&e.bytes).ok().and_then(|s| s.parse::<i64>().ok()),
                    e.expires_at,
                ),
            };
            match old.and_then(|n| n.checked_add(by)) {
                Some(n) => {
                    result = Ok(n);
                    Op::Put(MemEntry {
                        bytes: n.to_string().into_bytes().into(),
                        expires_at,
                    })
                }
                None => Op::Nop,
            }
        });
        result
    }

    pub(crate) fn expire(&self, entry: &str, ttl: Duration) -> SResult<bool> {
        let now = Instant::now();
        let mut found = false;
        self.cache
            .entry(entry.to_owned())
            .and_compute_with(|current| match current.map(|e| e.into_value()) {
                Some(e) if e.live(now) => {
                    found = true;
                    Op::Put(MemEntry {
                        bytes: e.bytes,
                        expires_at: Some(after(now, ttl)),
                    })
                }
                _ => Op::Nop,
            });
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire<'a>(entry: &'a str, lease: &'a str, tags: &'a [String], token: u64) -> Acquire<'a> {
        Acquire {
            entry,
            lease,
            tags,
            token,
            lease_ttl: Duration::from_secs(30),
            tag_ttl: Duration::from_secs(60),
            force: false,
            takeover: None,
        }
    }

    #[test]
    fn leases_exclude_and_are_released_on_every_outcome() {
        let s = MemoryStore::new(1 << 20);
        let (e, l) = ("{n:k}", "{n:k}:lease");
        assert!(s.acquire(&acquire(e, l, &[], 1)).unwrap().leased);
        let other = s.acquire(&acquire(e, l, &[], 2)).unwrap();
        assert!(!other.leased, "never overwritten");
        assert_eq!(other.holder, Some(1));
        let release = Finish {
            entry: e,
            lease: l,
            tags: &[],
            versions: &[],
            token: 1,
            store: None,
        };
        assert!(s.finish(&release).unwrap());
        assert_eq!(s.bookkeeping_len().0, 0, "released without a store");
        assert!(s.acquire(&acquire(e, l, &[], 2)).unwrap().leased);
    }

    #[test]
    fn bookkeeping_stays_bounded() {
        let s = MemoryStore::new(1 << 20);
        for i in 0..20_000u64 {
            let e = format!("{{n:{i}}}");
            let l = Layout::lease_of(&e);
            let a = Acquire {
                lease_ttl: Duration::from_millis(1),
                ..acquire(&e, &l, &[], i)
            };
            s.acquire(&a).unwrap(); // never finished: a cancelled load
        }
        std::thread::sleep(Duration::from_millis(5));
        s.acquire(&acquire("{n:x}", "{n:x}:lease", &[], 9)).unwrap();
        assert!(s.bookkeeping_len().0 <= 20_001);
        for i in 0..3000u64 {
            let e = format!("{{n:y{i}}}");
            let l = Layout::lease_of(&e);
            s.acquire(&acquire(&e, &l, &[], i)).unwrap();
        }
        assert!(
            s.bookkeeping_len().0 < 20_000,
            "expired leases swept: {:?}",
            s.bookkeeping_len()
        );
    }

    #[test]
    fn a_missing_tag_version_never_matches() {
        let s = MemoryStore::new(1 << 20);
        let tags = vec!["{n#tag:t}".to_owned()];
        let a = s.acquire(&acquire("{n:k}", "{n:k}:lease", &tags, 1)).unwrap();
        assert!(a.versions[0] != 0);
        s.books().tags.remove("{n#tag:t}"); // evicted
        let fin = Finish {
            entry: "{n:k}",
            lease: "{n:k}:lease",
            tags: &tags,
            versions: &a.versions,
            token: 1,
            store: Some((b"v", Duration::from_secs(1))),
        };
        assert!(!s.finish(&fin).unwrap(), "stored under a version that is gone");
        assert_eq!(s.tag_versions(&tags).unwrap(), vec![None]);
    }
}
