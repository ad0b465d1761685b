//! The two storage backends. They see full keys (namespace included) and raw
//! bytes; everything typed lives in `cache.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use redis::aio::ConnectionManager;

use crate::ttl::ttl_millis;

/// Errors of a backend call. The in-process backend only fails on `INCR` of a
/// non-integer; Redis can fail in every call.
#[derive(Debug)]
pub(crate) enum BackendError {
    Redis(redis::RedisError),
    NotAnInteger,
}

impl From<redis::RedisError> for BackendError {
    fn from(e: redis::RedisError) -> Self {
        BackendError::Redis(e)
    }
}

impl BackendError {
    /// Failures of the server or the connection (what the circuit breaker
    /// counts), as opposed to a refused command.
    pub(crate) fn is_outage(&self) -> bool {
        match self {
            BackendError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
            BackendError::NotAnInteger => false,
        }
    }
}

pub(crate) type BResult<T> = Result<T, BackendError>;

/// Bytes read from a backend.
pub(crate) enum Raw {
    Shared(Arc<[u8]>),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Raw {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Raw::Shared(b) => b,
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

pub(crate) enum Backend {
    Memory(MemoryBackend),
    Redis(RedisBackend),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Memory(_) => f.write_str("Memory"),
            Backend::Redis(r) => write!(f, "Redis({})", r.display_url),
        }
    }
}

macro_rules! dispatch {
    ($self:ident.$m:ident($($a:expr),*)) => {
        match $self {
            Backend::Memory(b) => b.$m($($a),*),
            Backend::Redis(b) => b.$m($($a),*).await,
        }
    };
}

impl Backend {
    pub(crate) async fn get(&self, key: &str) -> BResult<Option<Raw>> {
        dispatch!(self.get(key))
    }
    /// Stores a value and revokes any outstanding lease on the key, so that
    /// a load that started before this write can no longer store over it.
    pub(crate) async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> BResult<()> {
        dispatch!(self.set(key, value, ttl))
    }
    /// Takes the fill lease of `key` with `token` (overwriting another's).
    pub(crate) async fn lease(&self, key: &str, token: u64, ttl: Duration) -> BResult<()> {
        dispatch!(self.lease(key, token, ttl))
    }
    /// Stores the value only if the lease taken with `token` is still held,
    /// i.e. no invalidation or write of the key happened since; releases it.
    pub(crate) async fn set_if_leased(&self, key: &str, value: Vec<u8>, ttl: Duration, token: u64) -> BResult<bool> {
        dispatch!(self.set_if_leased(key, value, ttl, token))
    }
    /// Deletes keys and revokes their leases; counts the keys that existed.
    pub(crate) async fn del(&self, keys: &[String]) -> BResult<u64> {
        dispatch!(self.del(keys))
    }
    pub(crate) async fn del_pattern(&self, pattern: &str, batch: usize) -> BResult<u64> {
        dispatch!(self.del_pattern(pattern, batch))
    }
    pub(crate) async fn exists(&self, key: &str) -> BResult<bool> {
        dispatch!(self.exists(key))
    }
    pub(crate) async fn ttl(&self, key: &str) -> BResult<KeyTtl> {
        dispatch!(self.ttl(key))
    }
    pub(crate) async fn incr_by(&self, key: &str, by: i64) -> BResult<i64> {
        dispatch!(self.incr_by(key, by))
    }
    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> BResult<bool> {
        dispatch!(self.expire(key, ttl))
    }
    /// Reads an entry and the current versions of tags, in one round trip.
    /// A tag that was never invalidated has version 0.
    pub(crate) async fn get_with_tags(&self, key: &str, tag_keys: &[String]) -> BResult<(Option<Raw>, Vec<u64>)> {
        dispatch!(self.get_with_tags(key, tag_keys))
    }
    /// Current versions of tags.
    pub(crate) async fn tag_versions(&self, tag_keys: &[String]) -> BResult<Vec<u64>> {
        dispatch!(self.tag_versions(tag_keys))
    }
    /// Gives each tag a fresh random version, in one round trip: every entry
    /// stored under an older version is stale from now on.
    pub(crate) async fn bump_tags(&self, tag_keys: &[String]) -> BResult<()> {
        dispatch!(self.bump_tags(tag_keys))
    }
    /// Removes every key starting with `prefix` (the namespace), internal
    /// keys included.
    pub(crate) async fn clear_prefix(&self, prefix: &str, batch: usize) -> BResult<u64> {
        dispatch!(self.clear_prefix(prefix, batch))
    }
}

/// The internal key of `full_key`'s fill lease: `{ns}:__lease:{rest}`. Works
/// for patterns too (the namespace holds no glob characters).
pub(crate) fn lease_key(full_key: &str) -> String {
    match full_key.split_once(':') {
        Some((ns, rest)) => format!("{ns}:{INTERNAL_MARK}lease:{rest}"),
        None => format!("{INTERNAL_MARK}lease:{full_key}"),
    }
}

/// A fresh tag version: random, never 0 (0 means "never invalidated").
fn new_version() -> u64 {
    crate::ttl::random_u64().max(1)
}

/// Keys of this prefix are the cache's own bookkeeping (tag versions), not
/// entries: patterns never touch them.
pub(crate) const INTERNAL_MARK: &str = "__";

fn is_internal(full_key: &str, pattern: &str) -> bool {
    // `{ns}:__...`: the namespace is the pattern's part before its first ':'.
    match (full_key.split_once(':'), pattern.split_once(':')) {
        (Some((ns, rest)), Some((pns, _))) => ns == pns && rest.starts_with(INTERNAL_MARK),
        _ => false,
    }
}

// ---------------------------------------------------------------- memory

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

/// In-process storage on moka, bounded by the total size of keys and values.
pub(crate) struct MemoryBackend {
    cache: moka::sync::Cache<String, MemEntry>,
    /// Tag versions live apart from entries so that eviction never resets
    /// one (which could revive a stale entry).
    tags: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Fill leases: key → (token, expiry). Stores and invalidations of a key
    /// take this lock around their change, which makes "store if the lease
    /// is still held" atomic with respect to invalidation.
    leases: std::sync::Mutex<std::collections::HashMap<String, (u64, Instant)>>,
}

impl MemoryBackend {
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &String, v: &MemEntry| (k.len() + v.bytes.len() + 32).min(u32::MAX as usize) as u32)
            .expire_after(MemExpiry)
            .build();
        MemoryBackend {
            cache,
            tags: Default::default(),
            leases: Default::default(),
        }
    }

    fn live(&self, key: &str) -> Option<MemEntry> {
        let e = self.cache.get(key)?;
        if e.live(Instant::now()) { Some(e) } else { None }
    }

    fn get(&self, key: &str) -> BResult<Option<Raw>> {
        Ok(self.live(key).map(|e| Raw::Shared(e.bytes)))
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u64, Instant)>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let entry = MemEntry {
            bytes: value.into(),
            expires_at: Instant::now().checked_add(ttl),
        };
        self.cache.insert(key.to_owned(), entry);
    }

    fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> BResult<()> {
        let mut leases = self.leases();
        leases.remove(key);
        self.insert(key, value, ttl);
        Ok(())
    }

    fn lease(&self, key: &str, token: u64, ttl: Duration) -> BResult<()> {
        let now = Instant::now();
        let mut leases = self.leases();
        if leases.len() >= 1024 {
            // Leases of cancelled loads are never released: drop expired ones.
            leases.retain(|_, (_, until)| *until > now);
        }
        leases.insert(key.to_owned(), (token, now + ttl));
        Ok(())
    }

    fn set_if_leased(&self, key: &str, value: Vec<u8>, ttl: Duration, token: u64) -> BResult<bool> {
        let mut leases = self.leases();
        match leases.get(key) {
            Some(&(t, until)) if t == token && until > Instant::now() => {
                leases.remove(key);
                self.insert(key, value, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn del(&self, keys: &[String]) -> BResult<u64> {
        let mut leases = self.leases();
        for k in keys {
            leases.remove(k);
        }
        drop(leases);
        let now = Instant::now();
        Ok(keys
            .iter()
            .filter(|k| self.cache.remove(k.as_str()).is_some_and(|e| e.live(now)))
            .count() as u64)
    }

    fn del_pattern(&self, pattern: &str, _batch: usize) -> BResult<u64> {
        self.leases()
            .retain(|k, _| !crate::glob::glob_match(pattern.as_bytes(), k.as_bytes()));
        let now = Instant::now();
        let matching: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, e)| {
                e.live(now) && !is_internal(k, pattern) && crate::glob::glob_match(pattern.as_bytes(), k.as_bytes())
            })
            .map(|(k, _)| k)
            .collect();
        let removed = matching
            .iter()
            .filter(|k| self.cache.remove(k.as_str()).is_some())
            .count();
        Ok(removed as u64)
    }

    fn exists(&self, key: &str) -> BResult<bool> {
        Ok(self.live(key).is_some())
    }

    fn ttl(&self, key: &str) -> BResult<KeyTtl> {
        Ok(match self.live(key) {
            None => KeyTtl::Missing,
            Some(MemEntry { expires_at: None, .. }) => KeyTtl::NoExpiry,
            Some(MemEntry {
                expires_at: Some(t), ..
            }) => KeyTtl::ExpiresIn(t.saturating_duration_since(Instant::now())),
        })
    }

    fn incr_by(&self, key: &str, by: i64) -> BResult<i64> {
        let mut result = Err(BackendError::NotAnInteger);
        let now = Instant::now();
        self.cache.entry(key.to_owned()).and_compute_with(|current| {
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

    fn tag_versions(&self, tag_keys: &[String]) -> BResult<Vec<u64>> {
        let tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        Ok(tag_keys.iter().map(|k| tags.get(k).copied().unwrap_or(0)).collect())
    }

    fn get_with_tags(&self, key: &str, tag_keys: &[String]) -> BResult<(Option<Raw>, Vec<u64>)> {
        // Versions first: a value read after them is at least as new.
        let versions = self.tag_versions(tag_keys)?;
        Ok((self.get(key)?, versions))
    }

    fn bump_tags(&self, tag_keys: &[String]) -> BResult<()> {
        let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        for k in tag_keys {
            tags.insert(k.clone(), new_version());
        }
        Ok(())
    }

    fn clear_prefix(&self, prefix: &str, _batch: usize) -> BResult<u64> {
        let now = Instant::now();
        let matching: Vec<(Arc<String>, bool)> = self
            .cache
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k, e.live(now)))
            .collect();
        let mut removed = 0;
        for (k, live) in matching {
            if self.cache.remove(k.as_str()).is_some() && live && !k[prefix.len()..].starts_with(INTERNAL_MARK) {
                removed += 1;
            }
        }
        self.leases().retain(|k, _| !k.starts_with(prefix));
        // Tag versions are bumped, not dropped: an entry stored concurrently
        // under an old version must stay stale.
        let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in tags.iter_mut() {
            if k.starts_with(prefix) {
                *v = new_version();
            }
        }
        Ok(removed)
    }

    fn expire(&self, key: &str, ttl: Duration) -> BResult<bool> {
        let now = Instant::now();
        let mut found = false;
        self.cache
            .entry(key.to_owned())
            .and_compute_with(|current| match current.map(|e| e.into_value()) {
                Some(e) if e.live(now) => {
                    found = true;
                    Op::Put(MemEntry {
                        bytes: e.bytes,
                        expires_at: now.checked_add(ttl),
                    })
                }
                _ => Op::Nop,
            });
        Ok(found)
    }
}

// ---------------------------------------------------------------- redis

/// One multiplexed, self-reconnecting connection shared by every clone of
/// the cache. It connects on first use, so building it never waits for Redis.
pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    /// The URL with any password removed, for `Debug` and logs.
    pub(crate) display_url: String,
}

impl RedisBackend {
    pub(crate) fn new(url: &str, op_timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            // Bounds each round trip of SCAN walks, which the cache does not
            // wrap in its per-call timeout. Longer than that timeout, so that
            // for ordinary calls the cache's own (clearly reported) fires first.
            .set_response_timeout(Some(op_timeout * 2))
            // The cache applies its own per-operation timeout and circuit
            // breaker; the manager only needs to reconnect, not to retry hard.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisBackend {
            conn,
            display_url: redact(url),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn get(&self, key: &str) -> BResult<Option<Raw>> {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut self.conn()).await?;
        Ok(v.map(Raw::Owned))
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> BResult<()> {
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .ignore()
            .cmd("UNLINK")
            .arg(lease_key(key))
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn lease(&self, key: &str, token: u64, ttl: Duration) -> BResult<()> {
        redis::cmd("SET")
            .arg(lease_key(key))
            .arg(token)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn set_if_leased(&self, key: &str, value: Vec<u8>, ttl: Duration, token: u64) -> BResult<bool> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"if redis.call('GET', KEYS[2]) == ARGV[3] then
                    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
                    redis.call('DEL', KEYS[2])
                    return 1
                  end
                  return 0",
            )
        });
        let stored: i64 = SCRIPT
            .key(key)
            .key(lease_key(key))
            .arg(value)
            .arg(ttl_millis(ttl))
            .arg(token.to_string())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(stored == 1)
    }

    async fn del(&self, keys: &[String]) -> BResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let leases: Vec<String> = keys.iter().map(|k| lease_key(k)).collect();
        let (removed,): (u64,) = redis::pipe()
            .atomic()
            .cmd("UNLINK")
            .arg(keys)
            .cmd("UNLINK")
            .arg(leases)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(removed)
    }

    async fn del_pattern(&self, pattern: &str, batch: usize) -> BResult<u64> {
        // Leases first: a load racing with this walk can no longer store.
        self.scan_each(&lease_key(pattern), batch, |keys| self.unlink(keys))
            .await?;
        self.scan_each(pattern, batch, |keys| {
            self.unlink(keys.into_iter().filter(|k| !is_internal(k, pattern)).collect())
        })
        .await
    }

    /// Walks `SCAN MATCH pattern` batch by batch (never `KEYS`), handing each
    /// batch to `each`; returns the sum of what `each` returned.
    async fn scan_each<F, Fut>(&self, pattern: &str, batch: usize, mut each: F) -> BResult<u64>
    where
        F: FnMut(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = BResult<u64>>,
    {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut total = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(batch)
                .query_async(&mut conn)
                .await?;
            total += each(keys).await?;
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }

    /// `UNLINK` of some keys; how many existed.
    async fn unlink(&self, keys: Vec<String>) -> BResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        Ok(redis::cmd("UNLINK").arg(keys).query_async(&mut self.conn()).await?)
    }

    async fn exists(&self, key: &str) -> BResult<bool> {
        Ok(redis::cmd("EXISTS")
            .arg(key)
            .query_async::<u64>(&mut self.conn())
            .await?
            > 0)
    }

    async fn ttl(&self, key: &str) -> BResult<KeyTtl> {
        let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut self.conn()).await?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::NoExpiry,
            ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    async fn incr_by(&self, key: &str, by: i64) -> BResult<i64> {
        match redis::cmd("INCRBY")
            .arg(key)
            .arg(by)
            .query_async(&mut self.conn())
            .await
        {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Err(BackendError::NotAnInteger)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_with_tags(&self, key: &str, tag_keys: &[String]) -> BResult<(Option<Raw>, Vec<u64>)> {
        if tag_keys.is_empty() {
            return Ok((self.get(key).await?, Vec::new()));
        }
        let mut values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(key)
            .arg(tag_keys)
            .query_async(&mut self.conn())
            .await?;
        let versions = values.drain(1..).map(|v| parse_version(v.as_deref())).collect();
        Ok((values.pop().flatten().map(Raw::Owned), versions))
    }

    async fn tag_versions(&self, tag_keys: &[String]) -> BResult<Vec<u64>> {
        if tag_keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(tag_keys).query_async(&mut self.conn()).await?;
        Ok(values.iter().map(|v| parse_version(v.as_deref())).collect())
    }

    async fn bump_tags(&self, tag_keys: &[String]) -> BResult<()> {
        if tag_keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MSET");
        for k in tag_keys {
            cmd.arg(k).arg(new_version());
        }
        cmd.query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    async fn clear_prefix(&self, prefix: &str, batch: usize) -> BResult<u64> {
        // One walk over the namespace (which holds no glob characters):
        // entries and leases go; tag versions are bumped rather than dropped,
        // so that an entry stored concurrently under an old version stays
        // stale. Counts entries only.
        let internal = format!("{prefix}{INTERNAL_MARK}");
        let tags = format!("{internal}tag:");
        self.scan_each(&format!("{prefix}*"), batch, |keys| {
            let (internal_keys, entries): (Vec<String>, Vec<String>) =
                keys.into_iter().partition(|k| k.starts_with(&internal));
            let (tag_keys, leases): (Vec<String>, Vec<String>) =
                internal_keys.into_iter().partition(|k| k.starts_with(&tags));
            async move {
                self.bump_tags(&tag_keys).await?;
                self.unlink(leases).await?;
                self.unlink(entries).await
            }
        })
        .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> BResult<bool> {
        Ok(redis::cmd("PEXPIRE")
            .arg(key)
            .arg(ttl_millis(ttl))
            .query_async::<u64>(&mut self.conn())
            .await?
            == 1)
    }
}

fn parse_version(v: Option<&[u8]>) -> u64 {
    v.and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `redis://user:secret@host/0` → `redis://user:***@host/0`.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
