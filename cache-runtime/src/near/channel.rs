//! The near tier's invalidation channel: one RESP3 connection per Redis
//! primary, in `CLIENT TRACKING … BCAST` mode for this namespace's prefixes,
//! pinged every ε/4.
//!
//! Why tracking and not pub/sub: with `BCAST`, Redis itself reports every
//! change to a key under the prefixes (writes and deletes by any client,
//! expiries, evictions, and `FLUSHALL` as a flush message), so nothing a
//! writer forgets, and no eviction of a tag version, can go unreported;
//! pub/sub would report only what our own processes publish. Why not
//! redis-rs's `cache-aio`: a cached hit never touches a connection, so a
//! frozen one serves stale hits forever, and it keeps some keys stale after
//! concurrent writes (redis-rs #2526); here every hit checks a liveness
//! stamp that only a ping answered on the channel itself can renew.
//!
//! Ordering: redis-rs hands a push to our handler (which applies it to the
//! tier) before it delivers any reply read after it, and Redis writes an
//! invalidation before the reply to any later command on the connection.
//! So when the ping sent at `s` is answered, the tier holds every
//! invalidation Redis applied before `s`.
//!
//! On Cluster: one connection per primary (ordering between a node's
//! pushes and its replies is only kept on a direct connection), and each
//! ping is `CLUSTER NODES`: the node must still be a primary and the set of
//! primaries unchanged, else the tier is cleared and the channel rebuilt.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};

use super::Tier;

/// Where the channel connects.
#[derive(Debug, Clone)]
pub(crate) enum Endpoints {
    /// One server.
    Standalone(String),
    /// A cluster's seed nodes: the channel finds the primaries.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Cluster(Vec<String>),
}

/// The client name of channel connections (`CLIENT LIST`).
pub(crate) const CLIENT_NAME: &str = "cache-near";

/// Longest pause between two attempts to open the channel.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the channel task. It ends when the tier is dropped (the task
/// holds it weakly) or the returned handle is aborted.
pub(crate) fn spawn(
    tier: &Arc<Tier>,
    endpoints: Endpoints,
    op_timeout: Duration,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "near_cache needs a tokio runtime when the cache is built".to_owned())?;
    Ok(handle.spawn(run(Arc::downgrade(tier), endpoints, op_timeout)))
}

async fn run(tier: Weak<Tier>, endpoints: Endpoints, op_timeout: Duration) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let Some(t) = tier.upgrade() else { return };
        t.doubt();
        drop(t);
        let started = Instant::now();
        let why = session(&tier, &endpoints, op_timeout).await;
        let Some(t) = tier.upgrade() else { return };
        t.doubt();
        drop(t);
        tracing::debug!(target: "cache_runtime", reason = %why, "near cache channel lost: near tier cleared, reconnecting");
        if started.elapsed() > MAX_BACKOFF * 4 {
            backoff = Duration::from_millis(20);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One life of the channel: connect, track, ping until something fails.
/// Returns why it ended.
async fn session(tier: &Weak<Tier>, endpoints: &Endpoints, op_timeout: Duration) -> String {
    let (eps, prefixes) = match tier.upgrade() {
        Some(t) => (t.eps, [t.entry_prefix.clone(), t.tag_prefix.clone()]),
        None => return "cache dropped".into(),
    };
    let connect_budget = op_timeout.saturating_mul(4).max(Duration::from_millis(200));
    let (urls, cluster) = match endpoints {
        Endpoints::Standalone(url) => (vec![url.clone()], false),
        Endpoints::Cluster(seeds) => match tokio::time::timeout(connect_budget, primaries_of(seeds)).await {
            Ok(Ok(urls)) => (urls, true),
            Ok(Err(e)) => return e,
            Err(_) => return "cluster discovery timed out".into(),
        },
    };
    let mut conns = Vec::with_capacity(urls.len());
    for url in &urls {
        match tokio::time::timeout(connect_budget, open(tier, url, &prefixes)).await {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => return e,
            Err(_) => return "connecting timed out".into(),
        }
    }
    let expected: Vec<String> = if cluster { addresses(&urls) } else { Vec::new() };
    // Tracking is on everywhere: what was read before may have changed
    // unreported, so start empty (and refuse inserts of reads in flight).
    match tier.upgrade() {
        Some(t) => t.clear(),
        None => return "cache dropped".into(),
    }
    let period = (eps / 4).max(Duration::from_millis(1));
    // A ping unanswered this long means the connection is dead, not slow.
    let dead = (eps * 4).max(op_timeout * 2);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sent = Instant::now();
        let probes = join_all(conns.iter_mut().map(|c| probe(c, cluster)));
        let answers = match tokio::time::timeout(dead, probes).await {
            Ok(a) => a,
            Err(_) => return format!("no answer to a ping within {dead:?}"),
        };
        for a in answers {
            match a {
                Ok(None) => {}
                Ok(Some(view)) => {
                    if !view.primary {
                        return "a tracked node is no longer a primary".into();
                    }
                    if view.primaries != expected {
                        return "the cluster's primaries changed".into();
                    }
                }
                Err(e) => return e,
            }
        }
        match tier.upgrade() {
            Some(t) => t.confirmed(sent),
            None => return "cache dropped".into(),
        }
    }
}

/// What a cluster node says of the topology.
struct View {
    primary: bool,
    primaries: Vec<String>,
}

async fn probe(conn: &mut MultiplexedConnection, cluster: bool) -> Result<Option<View>, String> {
    if !cluster {
        let _: () = redis::cmd("PING")
            .query_async::<Value>(conn)
            .await
            .map(drop)
            .map_err(|e| format!("ping failed: {}", e.category()))?;
        return Ok(None);
    }
    let nodes: Value = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(conn)
        .await
        .map_err(|e| format!("CLUSTER NODES failed: {}", e.category()))?;
    let text = text_of(nodes).ok_or("unexpected reply to CLUSTER NODES")?;
    let primary = text.lines().any(|l| {
        let flags = l.split_whitespace().nth(2).unwrap_or("");
        flags.split(',').any(|f| f == "myself") && flags.split(',').any(|f| f == "master")
    });
    Ok(Some(View {
        primary,
        primaries: sorted(
            parse_primaries(&text)
                .into_iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect(),
        ),
    }))
}

fn text_of(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::VerbatimString { text, .. } => Some(text),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// `host:port` of each URL, sorted.
fn addresses(urls: &[String]) -> Vec<String> {
    sorted(
        urls.iter()
            .filter_map(|u| u.as_str().into_connection_info().ok())
            .filter_map(|i| match i.addr() {
                ConnectionAddr::Tcp(h, p) => Some(format!("{h}:{p}")),
                ConnectionAddr::TcpTls { host, port, .. } => Some(format!("{host}:{port}")),
                _ => None,
            })
            .collect(),
    )
}

/// The primaries' URLs: a seed's URL (credentials, TLS) with each primary's
/// address, from the first seed that answers `CLUSTER NODES`.
async fn primaries_of(seeds: &[String]) -> Result<Vec<String>, String> {
    let mut last = "no seed node".to_owned();
    for seed in seeds {
        let attempt = async {
            let client = redis::Client::open(seed.as_str()).map_err(|e| e.category().to_owned())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.category().to_owned())?;
            let nodes: Value = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.category().to_owned())?;
            let text = text_of(nodes).ok_or("unexpected reply to CLUSTER NODES")?;
            let info = client.get_connection_info().clone();
            let urls: Vec<String> = parse_primaries(&text)
                .into_iter()
                .map(|(host, port)| url_of(&info, &host, port))
                .collect();
            if urls.is_empty() {
                return Err("no primary in CLUSTER NODES".to_owned());
            }
            Ok::<_, String>(urls)
        };
        match attempt.await {
            Ok(urls) => return Ok(urls),
            Err(e) => last = e,
        }
    }
    Err(format!("cluster discovery failed: {last}"))
}

/// A URL for `host:port` with `info`'s scheme, credentials and database.
fn url_of(info: &redis::ConnectionInfo, host: &str, port: u16) -> String {
    let r = info.redis_settings();
    let (scheme, insecure) = match info.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => ("rediss", *insecure),
        _ => ("redis", false),
    };
    let mut u = url::Url::parse(&format!("{scheme}://placeholder/")).unwrap_or_else(|_| unreachable!("a valid URL"));
    let _ = u.set_host(Some(host));
    let _ = u.set_port(Some(port));
    if let Some(user) = r.username() {
        let _ = u.set_username(user);
    }
    if let Some(pw) = r.password() {
        let _ = u.set_password(Some(pw));
    }
    u.set_path(&format!("/{}", r.db()));
    if insecure {
        u.set_fragment(Some("insecure"));
    }
    u.to_string()
}

/// The primaries, as (host, port), in a `CLUSTER NODES` reply: nodes
/// flagged `master`, not failing, with an address.
pub(crate) fn parse_primaries(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") || flags.contains("noaddr") {
            continue;
        }
        let hostport = addr.split('@').next().unwrap_or(addr);
        if let Some((host, port)) = hostport.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            out.push((host.to_owned(), port));
        }
    }
    out
}

/// Opens one tracking connection.
async fn open(tier: &Weak<Tier>, url: &str, prefixes: &[String; 2]) -> Result<MultiplexedConnection, String> {
    let info = url.into_connection_info().map_err(|e| e.category().to_owned())?;
    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(|e| e.category().to_owned())?;
    let weak = tier.clone();
    let config = AsyncConnectionConfig::new().set_response_timeout(None).set_push_sender(
        move |info: PushInfo| -> Result<(), ()> {
            let Some(t) = weak.upgrade() else { return Err(()) };
            apply(&t, info);
            Ok(())
        },
    );
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("connecting failed: {}", e.category()))?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(CLIENT_NAME)
        .exec_async(&mut conn)
        .await
        .map_err(|e| format!("CLIENT SETNAME failed: {}", e.category()))?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(&prefixes[0])
        .arg("PREFIX")
        .arg(&prefixes[1])
        .exec_async(&mut conn)
        .await
        .map_err(|e| format!("CLIENT TRACKING failed: {}", e.category()))?;
    Ok(conn)
}

/// Applies one push message to the tier.
fn apply(tier: &Tier, info: PushInfo) {
    match info.kind {
        PushKind::Invalidate => match info.data.first() {
            Some(Value::Array(keys)) => {
                for k in keys {
                    if let Value::BulkString(b) = k {
                        tier.invalidate_redis_key(b);
                    }
                }
            }
            // A flush (`FLUSHALL`, `FLUSHDB`): everything goes.
            _ => tier.clear(),
        },
        PushKind::Disconnection => tier.doubt(),
        _ => {}
    }
}
