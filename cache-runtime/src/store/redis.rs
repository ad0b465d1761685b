//! Standalone Redis: one multiplexed, self-reconnecting connection shared by
//! every clone of the cache; the fill protocol as Lua scripts (each touches
//! one entry, its lease and its tags, atomically).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::{Acquire, Acquired, Finish, KeyTtl, Layout, Raw, SResult, StoreError, single};
use crate::ttl::ttl_millis;

/// KEYS: entry, lease, tags… ARGV: token, lease ms, tag ms, force (0/1),
/// takeover token (or ""), then one fresh version per tag. Returns {entry or
/// nil, {versions}, leased 0/1, holder or nil}. Without force, a present
/// entry is returned without a lease; with it, the lease is taken anyway
/// (the entry was found stale). The lease is taken only if free, or held by
/// the takeover token (a leader that overran the wait cap). Tag lifetimes
/// only grow (`PEXPIRE … GT` needs Redis 7; this works on 6 too).
pub(super) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE_SOURCE));

/// The source of [`ACQUIRE`] (also for the miss bench, via `__private`).
pub(crate) const ACQUIRE_SOURCE: &str = r"
local versions = {}
for i = 3, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    v = ARGV[i + 3]
    redis.call('SET', KEYS[i], v, 'PX', ARGV[3])
  else
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 and left < tonumber(ARGV[3]) then
      redis.call('PEXPIRE', KEYS[i], ARGV[3])
    end
  end
  versions[#versions + 1] = v
end
local e = redis.call('GET', KEYS[1])
if e and ARGV[4] == '0' then return {e, versions, 0, false} end
local holder = redis.call('GET', KEYS[2])
if (not holder) or holder == ARGV[5] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {e or false, versions, 1, false}
end
return {e or false, versions, 0, holder}
";

/// KEYS: entry, lease, tags… ARGV: token, store 0/1, value, ttl ms, then the
/// expected version per tag. Returns 1 when the lease was held and no tag
/// moved (and the value was stored if asked), else 0. Releases the lease.
pub(super) static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 2] then return 0 end
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
",
    )
});

/// KEYS: tags… ARGV: tag ms, one fresh version per tag. Returns the versions.
pub(super) static ENSURE_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local versions = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    v = ARGV[i + 1]
    redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
  else
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 and left < tonumber(ARGV[1]) then
      redis.call('PEXPIRE', KEYS[i], ARGV[1])
    end
  end
  versions[#versions + 1] = v
end
return versions
",
    )
});

/// KEYS: tags…, then the tag epoch. ARGV: tag ms, one fresh version per
/// tag. Returns {versions, epoch or nil}: `ENSURE_TAGS` of the tags, then
/// a `GET` of the epoch, atomically.
pub(super) static ENSURE_TAGS_THEN_EPOCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local versions = {}
for i = 1, #KEYS - 1 do
  local v = redis.call('GET', KEYS[i])
  if not v then
    v = ARGV[i + 1]
    redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
  else
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 and left < tonumber(ARGV[1]) then
      redis.call('PEXPIRE', KEYS[i], ARGV[1])
    end
  end
  versions[#versions + 1] = v
end
return {versions, redis.call('GET', KEYS[#KEYS]) or false}
",
    )
});

pub(crate) struct RedisStore {
    conn: ConnectionManager,
    /// The URL with any secret removed, for `Debug` and logs.
    pub(crate) display_url: String,
}

pub(super) fn protocol_error(what: &str) -> StoreError {
    StoreError::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply to a cache script",
        what.to_owned(),
    )))
}

pub(super) fn parse_version(v: Option<&[u8]>) -> Option<u64> {
    v.and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok())
}

pub(super) fn value_version(v: &Value) -> Option<u64> {
    match v {
        Value::BulkString(b) => parse_version(Some(b)),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

impl RedisStore {
    pub(crate) fn new(url: &str, op_timeout: Duration, display_url: String) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            // Bounds each round trip of SCAN walks, which the cache does not
            // wrap in its per-call timeout. Longer than that timeout, so that
            // for ordinary calls the cache's own (clearly reported) fires first.
            .set_response_timeout(Some(op_timeout.saturating_mul(2)))
            // The cache applies its own per-operation timeout and circuit
            // breaker; the manager only needs to reconnect, not to retry hard.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore { conn, display_url })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) async fn get(&self, entry: &str) -> SResult<Option<Raw>> {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(entry).query_async(&mut self.conn()).await?;
        Ok(v.map(Raw::Owned))
    }

    pub(crate) async fn read(&self, entry: &str, tags: &[String]) -> SResult<(Option<Raw>, Vec<Option<u64>>)> {
        if tags.is_empty() {
            return Ok((self.get(entry).await?, Vec::new()));
        }
        let mut values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(entry)
            .arg(tags)
            .query_async(&mut self.conn())
            .await?;
        let versions = values.drain(1..).map(|v| parse_version(v.as_deref())).collect();
        Ok((values.pop().flatten().map(Raw::Owned), versions))
    }

    pub(crate) async fn tag_versions(&self, tags: &[String]) -> SResult<Vec<Option<u64>>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(tags).query_async(&mut self.conn()).await?;
        Ok(values.iter().map(|v| parse_version(v.as_deref())).collect())
    }

    pub(crate) async fn acquire(&self, req: &Acquire<'_>) -> SResult<Acquired> {
        let reply: Value = acquire_invocation(req).invoke_async(&mut self.conn()).await?;
        parse_acquired(reply, req.tags.len())
    }

    pub(crate) async fn finish(&self, req: &Finish<'_>) -> SResult<bool> {
        let done: i64 = finish_invocation(req).invoke_async(&mut self.conn()).await?;
        Ok(done == 1)
    }

    pub(crate) async fn ensure_tags(&self, tags: &[String], tag_ttl: Duration) -> SResult<Vec<u64>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let reply: Vec<Value> = ensure_tags_invocation(tags, tag_ttl)
            .invoke_async(&mut self.conn())
            .await?;
        parse_versions(&reply, tags.len(), "ensure tags")
    }

    pub(crate) async fn ensure_tags_then_epoch(
        &self,
        tags: &[String],
        tag_ttl: Duration,
        epoch: &str,
    ) -> SResult<(Vec<u64>, Option<u64>)> {
        let mut inv = ENSURE_TAGS_THEN_EPOCH.prepare_invoke();
        for t in tags {
            inv.key(t);
        }
        inv.key(epoch).arg(ttl_millis(tag_ttl));
        for _ in tags {
            inv.arg(super::new_version().to_string());
        }
        let reply: Value = inv.invoke_async(&mut self.conn()).await?;
        let Value::Array(parts) = reply else {
            return Err(protocol_error("ensure tags then epoch"));
        };
        match parts.as_slice() {
            [Value::Array(vs), epoch] => Ok((
                parse_versions(vs, tags.len(), "ensure tags then epoch")?,
                value_version(epoch),
            )),
            // A nil epoch ends the Lua table: the reply has one element.
            [Value::Array(vs)] => Ok((parse_versions(vs, tags.len(), "ensure tags then epoch")?, None)),
            _ => Err(protocol_error("ensure tags then epoch")),
        }
    }

    pub(crate) async fn set(&self, entry: &str, value: &[u8], ttl: Duration) -> SResult<()> {
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(entry)
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .ignore()
            .cmd("UNLINK")
            .arg(Layout::lease_of(entry))
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    pub(crate) async fn del(&self, entries: &[String]) -> SResult<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let leases: Vec<String> = entries.iter().map(|k| Layout::lease_of(k)).collect();
        let (removed,): (u64,) = redis::pipe()
            .atomic()
            .cmd("UNLINK")
            .arg(entries)
            .cmd("UNLINK")
            .arg(leases)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(removed)
    }

    pub(crate) async fn del_pattern(&self, entry_pattern: &str, batch: usize) -> SResult<u64> {
        // Leases first: a load in flight can no longer store; an entry stored
        // before its lease was reached is still there for the second walk.
        self.scan_each(&Layout::lease_pattern(entry_pattern), batch, |keys| self.unlink(keys))
            .await?;
        self.scan_each(entry_pattern, batch, |keys| self.unlink(keys)).await
    }

    pub(crate) async fn clear(&self, layout: &Layout, batch: usize) -> SResult<u64> {
        let [leases, current, previous] = layout.namespace_patterns();
        self.scan_each(&leases, batch, |keys| self.unlink(keys)).await?;
        let tag_prefix = format!("{{{}#", layout.namespace());
        // Counts entries only; tag versions go too (a missing version is a
        // miss for every entry that carried it).
        let removed = self
            .scan_each(&current, batch, |keys| {
                let (tags, entries): (Vec<String>, Vec<String>) =
                    keys.into_iter().partition(|k| k.starts_with(&tag_prefix));
                async move {
                    self.unlink(tags).await?;
                    self.unlink(entries).await
                }
            })
            .await?;
        self.scan_each(&previous, batch, |keys| self.unlink(keys)).await?;
        Ok(removed)
    }

    /// Walks `SCAN MATCH pattern` batch by batch (never `KEYS`), handing each
    /// batch to `each`; returns the sum of what `each` returned.
    async fn scan_each<F, Fut>(&self, pattern: &str, batch: usize, mut each: F) -> SResult<u64>
    where
        F: FnMut(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = SResult<u64>>,
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
    async fn unlink(&self, keys: Vec<String>) -> SResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        Ok(redis::cmd("UNLINK").arg(keys).query_async(&mut self.conn()).await?)
    }

    pub(crate) async fn bump_tags(&self, tags: &[String]) -> SResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        // `XX`: a version that does not exist is already a miss for every
        // entry; creating one would only leave a key without a lifetime.
        // One connection runs the pipeline in order: the first key (the
        // tag epoch, see `drop_tags`) changes before the others.
        let mut pipe = redis::pipe();
        for t in tags {
            pipe.cmd("SET")
                .arg(t)
                .arg(super::new_version())
                .arg("XX")
                .arg("KEEPTTL")
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    /// `WAIT` covers every earlier write of this (multiplexed) connection,
    /// the invalidation's included.
    pub(crate) async fn wait_replicas(&self, _keys: &[String], replicas: u32, timeout: Duration) -> SResult<u32> {
        Ok(redis::cmd("WAIT")
            .arg(replicas)
            .arg(ttl_millis(timeout))
            .query_async(&mut self.conn())
            .await?)
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

/// The `ACQUIRE` call for a request (the cluster store sends it without
/// tags, whose versions live in other slots).
pub(super) fn acquire_invocation(req: &Acquire<'_>) -> redis::ScriptInvocation<'static> {
    let mut inv = ACQUIRE.prepare_invoke();
    inv.key(req.entry).key(req.lease);
    for t in req.tags {
        inv.key(t);
    }
    inv.arg(req.token.to_string())
        .arg(ttl_millis(req.lease_ttl))
        .arg(ttl_millis(req.tag_ttl))
        .arg(if req.force { "1" } else { "0" })
        .arg(req.takeover.map(|t| t.to_string()).unwrap_or_default());
    for _ in req.tags {
        inv.arg(super::new_version().to_string());
    }
    inv
}

/// Parses `ACQUIRE`'s reply.
pub(super) fn parse_acquired(reply: Value, tags: usize) -> SResult<Acquired> {
    let Value::Array(mut parts) = reply else {
        return Err(protocol_error("acquire"));
    };
    if parts.len() != 4 {
        return Err(protocol_error("acquire"));
    }
    let leased = matches!(parts[2], Value::Int(1));
    let versions = match &parts[1] {
        Value::Array(vs) => parse_versions(vs, tags, "acquire versions")?,
        _ => return Err(protocol_error("acquire versions")),
    };
    let entry = match std::mem::take(&mut parts[0]) {
        Value::BulkString(b) => Some(Raw::Owned(b)),
        _ => None,
    };
    let holder = value_version(&parts[3]);
    Ok(Acquired {
        entry,
        versions,
        leased,
        holder,
    })
}

pub(super) fn parse_versions(values: &[Value], expected: usize, what: &str) -> SResult<Vec<u64>> {
    values
        .iter()
        .map(value_version)
        .collect::<Option<Vec<u64>>>()
        .filter(|v| v.len() == expected)
        .ok_or_else(|| protocol_error(what))
}

/// The `FINISH` call for a request.
pub(super) fn finish_invocation(req: &Finish<'_>) -> redis::ScriptInvocation<'static> {
    let mut inv = FINISH.prepare_invoke();
    inv.key(req.entry).key(req.lease);
    for t in req.tags {
        inv.key(t);
    }
    inv.arg(req.token.to_string());
    match req.store {
        Some((value, ttl)) => inv.arg("1").arg(value).arg(ttl_millis(ttl)),
        None => inv.arg("0").arg("").arg(0),
    };
    for v in req.versions {
        inv.arg(v.to_string());
    }
    inv
}

/// The `ENSURE_TAGS` call for some tags (on a cluster: one tag per call).
pub(super) fn ensure_tags_invocation(tags: &[String], tag_ttl: Duration) -> redis::ScriptInvocation<'static> {
    let mut inv = ENSURE_TAGS.prepare_invoke();
    for t in tags {
        inv.key(t);
    }
    inv.arg(ttl_millis(tag_ttl));
    for _ in tags {
        inv.arg(super::new_version().to_string());
    }
    inv
}
