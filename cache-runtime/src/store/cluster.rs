//! Redis Cluster: redis-rs's `cluster_async` connection (connecting in the
//! background, so building never waits), the same scripts as standalone,
//! split by slot.
//!
//! An entry and its lease share a hash tag (see `layout.rs`), so every
//! script touching both runs in one slot. Tag versions live in their own
//! slots, so the steps that involve them are split:
//!
//! * `read`: `GET` of the entry and `MGET` of the tags, concurrently (the
//!   client splits the `MGET` per slot).
//! * `acquire`: the entry-slot script (read-or-lease) and one `ENSURE_TAGS`
//!   per tag, concurrently; both finish before the loader runs, which is
//!   all the stale-set argument needs.
//! * `finish`: the entry-slot script (store-if-leased), *then* a read of the
//!   tag versions: the store is certified only if no tag moved. A value
//!   stored under a tag that moved meanwhile is never served (every read
//!   checks versions), it only costs a miss.
//! * Tags computed from the loaded value: their `ENSURE_TAGS`, *then* a
//!   `GET` of the tag epoch; tag invalidation bumps the epoch *before* the
//!   tags. Both orders are awaited, never concurrent.
//! * Key invalidation revokes leases before deleting entries (the order that
//!   keeps a racing store from surviving); patterns and `all()` walk every
//!   primary with `SCAN`.

use std::time::Duration;

use futures_util::future::{join, join_all, try_join_all};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Script, Value};

use super::redis::{
    acquire_invocation, ensure_tags_invocation, finish_invocation, parse_acquired, parse_version, parse_versions,
    protocol_error,
};
use super::{Acquire, Acquired, Finish, KeyTtl, Layout, Raw, SResult, StoreError, single};
use crate::ttl::ttl_millis;

/// KEYS: entry, lease. ARGV: value, ttl ms. Stores and revokes the lease.
static SET_REVOKE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new("redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('UNLINK', KEYS[2]) return 1")
});

pub(crate) struct ClusterStore {
    conn: ClusterConnection,
    /// When a slot-map refresh was last provoked (ms since `epoch`).
    refreshed_ms: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    /// The seed URLs with any secret removed, for `Debug` and logs.
    pub(crate) display: String,
}

/// Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, or of the
/// whole key when it has no non-empty `{…}`, modulo 16384.
pub(crate) fn key_slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tagged = b.iter().position(|&c| c == b'{').and_then(|open| {
        let close = b[open + 1..].iter().position(|&c| c == b'}')?;
        (close > 0).then(|| &b[open + 1..open + 1 + close])
    });
    crc16_xmodem(tagged.unwrap_or(b)) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

impl ClusterStore {
    pub(crate) fn new(urls: &[String], op_timeout: Duration, display: String) -> Result<Self, redis::RedisError> {
        let client = redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
            // The cache applies its own timeout and breaker; the client only
            // needs to follow MOVED/ASK and reconnect.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()?;
        let config = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(op_timeout)
            .set_response_timeout(op_timeout.saturating_mul(2));
        let conn = client.get_pending_async_connection_with_config(config);
        Ok(ClusterStore {
            conn,
            refreshed_ms: std::sync::atomic::AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            display,
        })
    }

    fn conn(&self) -> ClusterConnection {
        self.conn.clone()
    }

    /// After a call on `key` timed out. redis-rs retries a timed-out
    /// connection as is and does not refresh its slot map, so a frozen
    /// primary (or a partition) keeps failing its slots long after its
    /// replica took over. Asking every primary for the key makes the ones
    /// that do not serve it answer `MOVED`, which makes the client rebuild
    /// its slot map. At most once a second, in the background.
    pub(crate) fn after_timeout(&self, key: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.epoch.elapsed().as_millis() as u64 + 1000;
        let last = self.refreshed_ms.load(Relaxed);
        if now < last + 1000 || self.refreshed_ms.compare_exchange(last, now, Relaxed, Relaxed).is_err() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (conn, key) = (self.conn(), key.to_owned());
        handle.spawn(async move {
            let provoke = async {
                let Ok(primaries) = primaries(conn.clone()).await else {
                    return;
                };
                let asks = primaries.into_iter().map(|(host, port)| {
                    let mut conn = conn.clone();
                    let mut get = redis::cmd("EXISTS");
                    get.arg(&key);
                    async move {
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                        let _ = conn.route_command(get, route).await;
                    }
                });
                join_all(asks).await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), provoke).await;
        });
    }

    pub(crate) async fn get(&self, entry: &str) -> SResult<Option<Raw>> {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(entry).query_async(&mut self.conn()).await?;
        Ok(v.map(Raw::Owned))
    }

    pub(crate) async fn read(&self, entry: &str, tags: &[String]) -> SResult<(Option<Raw>, Vec<Option<u64>>)> {
        if tags.is_empty() {
            return Ok((self.get(entry).await?, Vec::new()));
        }
        let (raw, versions) = join(self.get(entry), self.tag_versions(tags)).await;
        Ok((raw?, versions?))
    }

    pub(crate) async fn tag_versions(&self, tags: &[String]) -> SResult<Vec<Option<u64>>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per tag, concurrently: each goes straight to its slot's
        // node, where a cross-slot MGET is split, fanned out and reassembled
        // by the client (measured slower).
        let gets = tags.iter().map(|t| {
            let mut conn = self.conn();
            async move { redis::cmd("GET").arg(t).query_async::<Option<Vec<u8>>>(&mut conn).await }
        });
        let values = try_join_all(gets).await?;
        Ok(values.iter().map(|v| parse_version(v.as_deref())).collect())
    }

    pub(crate) async fn acquire(&self, req: &Acquire<'_>) -> SResult<Acquired> {
        let entry_only = Acquire { tags: &[], ..*req };
        let mut conn = self.conn();
        let entry = async move {
            let reply: Value = acquire_invocation(&entry_only).invoke_async(&mut conn).await?;
            parse_acquired(reply, 0)
        };
        let (acquired, versions) = join(entry, self.ensure_tags(req.tags, req.tag_ttl)).await;
        let mut acquired = acquired?;
        acquired.versions = versions?;
        Ok(acquired)
    }

    pub(crate) async fn finish(&self, req: &Finish<'_>) -> SResult<bool> {
        let entry_only = Finish {
            tags: &[],
            versions: &[],
            ..*req
        };
        let done: i64 = finish_invocation(&entry_only).invoke_async(&mut self.conn()).await?;
        if done != 1 {
            return Ok(false);
        }
        let now = self.tag_versions(req.tags).await?;
        Ok(now.iter().zip(req.versions).all(|(now, then)| *now == Some(*then)))
    }

    pub(crate) async fn ensure_tags(&self, tags: &[String], tag_ttl: Duration) -> SResult<Vec<u64>> {
        let each = tags.iter().map(|t| {
            let mut conn = self.conn();
            async move {
                let reply: Vec<Value> = ensure_tags_invocation(std::slice::from_ref(t), tag_ttl)
                    .invoke_async(&mut conn)
                    .await?;
                Ok::<u64, StoreError>(parse_versions(&reply, 1, "ensure tags")?[0])
            }
        });
        try_join_all(each).await
    }

    /// The tags (one `ENSURE_TAGS` per slot, concurrently), and only once
    /// every one has answered, the epoch.
    pub(crate) async fn ensure_tags_then_epoch(
        &self,
        tags: &[String],
        tag_ttl: Duration,
        epoch: &str,
    ) -> SResult<(Vec<u64>, Option<u64>)> {
        let versions = self.ensure_tags(tags, tag_ttl).await?;
        let epoch = self.tag_versions(std::slice::from_ref(&epoch.to_owned())).await?;
        Ok((versions, epoch.into_iter().next().flatten()))
    }

    pub(crate) async fn set(&self, entry: &str, value: &[u8], ttl: Duration) -> SResult<()> {
        let _: i64 = SET_REVOKE
            .key(entry)
            .key(Layout::lease_of(entry))
            .arg(value)
            .arg(ttl_millis(ttl))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    pub(crate) async fn del(&self, entries: &[String]) -> SResult<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        // Leases first: a load in flight can no longer store, and an entry
        // it stored before is deleted next.
        let leases: Vec<String> = entries.iter().map(|k| Layout::lease_of(k)).collect();
        let _: u64 = redis::cmd("UNLINK").arg(&leases).query_async(&mut self.conn()).await?;
        Ok(redis::cmd("UNLINK").arg(entries).query_async(&mut self.conn()).await?)
    }

    pub(crate) async fn del_pattern(&self, entry_pattern: &str, batch: usize) -> SResult<u64> {
        self.walk(&Layout::lease_pattern(entry_pattern), batch, |_| false)
            .await?;
        self.walk(entry_pattern, batch, |_| true).await
    }

    pub(crate) async fn clear(&self, layout: &Layout, batch: usize) -> SResult<u64> {
        let [leases, current, previous] = layout.namespace_patterns();
        let tag_prefix = format!("{{{}#", layout.namespace());
        self.walk(&leases, batch, |_| false).await?;
        // Counts entries only; tag versions go too (a missing version is a
        // miss for every entry that carried it).
        let removed = self.walk(&current, batch, |k| !k.starts_with(&tag_prefix)).await?;
        self.walk(&previous, batch, |_| false).await?;
        Ok(removed)
    }

    async fn primaries(&self) -> SResult<Vec<(String, u16)>> {
        primaries(self.conn()).await
    }

    /// `SCAN MATCH pattern` on every primary, unlinking what it finds, key
    /// by key (keys of one node may be in different slots); counts the keys
    /// that existed and satisfy `counted`.
    async fn walk(&self, pattern: &str, batch: usize, counted: impl Fn(&str) -> bool) -> SResult<u64> {
        let mut total = 0;
        for (host, port) in self.primaries().await? {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(batch);
                let reply = self.conn().route_command(scan, route.clone()).await?;
                let (next, keys): (u64, Vec<String>) =
                    redis::from_redis_value(reply).map_err(|_| protocol_error("scan"))?;
                let unlinks = keys.iter().map(|k| {
                    let mut conn = self.conn();
                    async move { redis::cmd("UNLINK").arg(k).query_async::<u64>(&mut conn).await }
                });
                for (k, r) in keys.iter().zip(join_all(unlinks).await) {
                    if r? > 0 && counted(k) {
                        total += 1;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(total)
    }

    pub(crate) async fn bump_tags(&self, tags: &[String]) -> SResult<()> {
        // The first key (the tag epoch, see `drop_tags`) changes before any
        // other: it is bumped alone first, the rest concurrently after it.
        let Some((first, rest)) = tags.split_first() else {
            return Ok(());
        };
        redis::cmd("SET")
            .arg(first)
            .arg(super::new_version())
            .arg("XX")
            .arg("KEEPTTL")
            .query_async::<Value>(&mut self.conn())
            .await?;
        // Every tag is bumped even if one fails; a partial failure is an
        // error (the caller must not believe the invalidation happened).
        let each = rest.iter().map(|t| {
            let mut conn = self.conn();
            async move {
                redis::cmd("SET")
                    .arg(t)
                    .arg(super::new_version())
                    .arg("XX")
                    .arg("KEEPTTL")
                    .query_async::<Value>(&mut conn)
                    .await
            }
        });
        for r in join_all(each).await {
            r?;
        }
        Ok(())
    }

    /// `WAIT` on the primary of every slot among `keys`, concurrently.
    pub(crate) async fn wait_replicas(&self, keys: &[String], replicas: u32, timeout: Duration) -> SResult<u32> {
        use redis::cluster_routing::{Route, SlotAddr};
        let slots: std::collections::BTreeSet<u16> = keys.iter().map(|k| key_slot(k)).collect();
        let waits = slots.into_iter().map(|slot| {
            let mut conn = self.conn();
            let mut wait = redis::cmd("WAIT");
            wait.arg(replicas).arg(ttl_millis(timeout));
            async move {
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
                let v = conn.route_command(wait, route).await?;
                redis::from_redis_value::<u32>(v).map_err(|_| protocol_error("wait"))
            }
        });
        let acks = try_join_all(waits).await?;
        Ok(acks.into_iter().min().unwrap_or(replicas))
    }

    pub(crate) async fn exists(&self, entry: &str) -> SResult<bool> {
        single::exists(&mut self.conn(), entry).await
    }

    pub(crate) async fn ttl(&self, entry: &str) -> SResult<KeyTtl> {
        single::ttl(&mut self.conn(), entry).await
    }

    pub(crate) async fn incr_by(&self, entry: &str, by: i64) -> SResult<i64> {
        single::incr_by(&mut self.conn(), entry, by).await
    }

    pub(crate) async fn expire(&self, entry: &str, ttl: Duration) -> SResult<bool> {
        single::expire(&mut self.conn(), entry, ttl).await
    }
}

/// The primaries, as (host, port), from `CLUSTER NODES` of any node.
async fn primaries(mut conn: ClusterConnection) -> SResult<Vec<(String, u16)>> {
    let reply = conn
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let text = match reply {
        Value::BulkString(b) => String::from_utf8(b).map_err(|_| protocol_error("cluster nodes"))?,
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        _ => return Err(protocol_error("cluster nodes")),
    };
    let out = crate::near::channel::parse_primaries(&text);
    if out.is_empty() {
        return Err(protocol_error("no primary in CLUSTER NODES"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::key_slot;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot("123456789"), 12739);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_eq!(key_slot("{ns:k}"), key_slot("{ns:k}:lease"));
    }
}
