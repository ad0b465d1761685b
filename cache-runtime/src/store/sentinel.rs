//! Redis behind Sentinel: a standalone store on the current primary, found
//! by asking the sentinels, and replaced by one on the new primary when
//! calls fail (connection errors, `READONLY` from a demoted primary).
//!
//! The first call looks the primary up (within its own timeout, like a
//! first connection). Later lookups happen in the background: calls keep
//! using the old store (failing fast, so the breaker and the loaders answer)
//! until the new primary is known; no caller waits for the sentinels.
//!
//! Besides errors, the sentinels are asked again at most every
//! [`RECHECK`] (driven by calls, in the background): after `SENTINEL
//! FAILOVER` the old primary keeps accepting writes on existing connections
//! for about ten seconds before it is demoted, and writes made there
//! (invalidations included) are lost when it resyncs. Asking on a timer
//! bounds that window to about `RECHECK` instead.
//!
//! Replication is asynchronous, so the new primary may lack writes the old
//! one acknowledged (before the failover, or in that window): an
//! invalidation among them would let an old entry be served again. So when
//! the primary changes, this cache treats everything it finds there as
//! suspect: its reads miss (loads still store fresh values) until it has
//! walked the namespace and removed every entry, lease and tag version that
//! was there before. A failover costs a cold namespace, never a stale read
//! from this process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::redis::protocol_error;
use super::{Acquire, Acquired, Finish, KeyTtl, Layout, Raw, RedisStore, SResult, StoreError};

/// How often calls make the store ask the sentinels again.
const RECHECK: Duration = Duration::from_millis(500);

struct Shared {
    /// The primary's address and the store on it, once known.
    current: RwLock<Option<(String, Arc<RedisStore>)>>,
    refreshing: AtomicBool,
    /// Set from a primary change until the namespace has been walked.
    suspect: AtomicBool,
    /// When the sentinels were last asked (ms since `epoch`).
    asked_ms: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

pub(crate) struct SentinelStore {
    layout: Layout,
    scan_batch: usize,
    sentinels: Vec<String>,
    master: String,
    op_timeout: Duration,
    shared: Arc<Shared>,
    /// The sentinels and master name, without secrets, for `Debug`.
    pub(crate) display: String,
}

impl SentinelStore {
    pub(crate) fn new(
        layout: Layout,
        scan_batch: usize,
        sentinels: Vec<String>,
        master: String,
        op_timeout: Duration,
        display: String,
    ) -> Self {
        SentinelStore {
            layout,
            scan_batch,
            sentinels,
            master,
            op_timeout,
            shared: Arc::new(Shared {
                current: RwLock::new(None),
                refreshing: AtomicBool::new(false),
                suspect: AtomicBool::new(false),
                asked_ms: std::sync::atomic::AtomicU64::new(0),
                epoch: std::time::Instant::now(),
            }),
            display,
        }
    }

    fn known(&self) -> Option<Arc<RedisStore>> {
        let current = self.shared.current.read().unwrap_or_else(|p| p.into_inner());
        current.as_ref().map(|(_, s)| s.clone())
    }

    /// The store on the current primary, looking it up if none is known.
    async fn store(&self) -> SResult<Arc<RedisStore>> {
        if let Some(s) = self.known() {
            let now = self.shared.epoch.elapsed().as_millis() as u64;
            if now.saturating_sub(self.shared.asked_ms.load(Ordering::Relaxed)) >= RECHECK.as_millis() as u64 {
                self.ask_in_background();
            }
            return Ok(s);
        }
        let addr = ask_sentinels(&self.sentinels, &self.master, self.op_timeout).await?;
        install(&self.shared, addr, self.op_timeout, &self.display, None)
    }

    /// While suspect, reads see nothing.
    fn suspect(&self) -> bool {
        self.shared.suspect.load(Ordering::Acquire)
    }

    /// After a failed call: a demoted primary (`READONLY`) or a dead one
    /// makes us ask the sentinels again, in the background.
    fn after_error(&self, e: &StoreError) {
        let demoted = matches!(e, StoreError::Redis(r) if r.code() == Some("READONLY"));
        if demoted || e.is_outage() {
            self.ask_in_background();
        }
    }

    fn ask_in_background(&self) {
        if self.shared.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let now = self.shared.epoch.elapsed().as_millis() as u64;
        self.shared.asked_ms.store(now, Ordering::Relaxed);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.shared.refreshing.store(false, Ordering::Release);
            return;
        };
        let (sentinels, master, timeout) = (self.sentinels.clone(), self.master.clone(), self.op_timeout);
        let (shared, display) = (self.shared.clone(), self.display.clone());
        let (layout, batch) = (self.layout.clone(), self.scan_batch);
        handle.spawn(async move {
            if let Ok(addr) = ask_sentinels(&sentinels, &master, timeout).await {
                let _ = install(&shared, addr, timeout, &display, Some((&layout, batch)));
            }
            shared.refreshing.store(false, Ordering::Release);
        });
    }
}

/// Makes `addr` the current primary (a new connection only if it moved).
/// When it replaces another primary, the namespace there is suspect until
/// walked (`clear`, in the background; only with a runtime and a layout).
fn install(
    shared: &Arc<Shared>,
    addr: String,
    timeout: Duration,
    display: &str,
    clear: Option<(&Layout, usize)>,
) -> SResult<Arc<RedisStore>> {
    let mut current = shared.current.write().unwrap_or_else(|p| p.into_inner());
    let moved = match current.as_ref() {
        Some((known, store)) if *known == addr => return Ok(store.clone()),
        Some(_) => true,
        None => false,
    };
    let store = Arc::new(RedisStore::new(
        &format!("redis://{addr}/"),
        timeout,
        display.to_owned(),
    )?);
    *current = Some((addr, store.clone()));
    drop(current);
    if moved
        && let Some((layout, batch)) = clear
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        shared.suspect.store(true, Ordering::Release);
        tracing::warn!(target: "cache_runtime", namespace = layout.namespace(),
            "Redis primary changed (Sentinel failover): clearing this namespace there, reads miss until done");
        let (shared, store, layout) = (shared.clone(), store.clone(), layout.clone());
        handle.spawn(async move {
            // Retried until it completes: a half-walked namespace stays suspect.
            for attempt in 0..50u32 {
                if store.clear(&layout, batch).await.is_ok() {
                    shared.suspect.store(false, Ordering::Release);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10) + 1))).await;
            }
        });
    }
    Ok(store)
}

/// `SENTINEL get-master-addr-by-name` on each sentinel in turn, each within
/// `timeout`; the first answer wins.
pub(crate) async fn ask_sentinels(sentinels: &[String], master: &str, timeout: Duration) -> SResult<String> {
    let mut last = protocol_error("no sentinel configured");
    for url in sentinels {
        let ask = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(addr)
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(Ok(Some((host, port)))) => return Ok(format!("{host}:{port}")),
            Ok(Ok(None)) => last = protocol_error("the sentinels do not know this master name"),
            Ok(Err(e)) => last = StoreError::Redis(e),
            Err(_) => last = protocol_error("a sentinel did not answer in time"),
        }
    }
    Err(last)
}

/// Delegates to the store on the current primary, noting failures.
macro_rules! delegate {
    ($($name:ident = $inner:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        pub(crate) async fn $name(&self, $($arg: $ty),*) -> SResult<$ret> {
            let store = self.store().await?;
            let r = store.$inner($($arg),*).await;
            if let Err(e) = &r {
                self.after_error(e);
            }
            r
        }
    )*};
}

impl SentinelStore {
    /// The entry, unless the namespace is suspect.
    pub(crate) async fn get(&self, entry: &str) -> SResult<Option<Raw>> {
        let r = self.get_raw(entry).await?;
        Ok(if self.suspect() { None } else { r })
    }

    pub(crate) async fn read(&self, entry: &str, tags: &[String]) -> SResult<(Option<Raw>, Vec<Option<u64>>)> {
        let (raw, versions) = self.read_raw(entry, tags).await?;
        Ok(if self.suspect() {
            (None, vec![None; versions.len()])
        } else {
            (raw, versions)
        })
    }

    pub(crate) async fn acquire(&self, req: &Acquire<'_>) -> SResult<Acquired> {
        let suspect = self.suspect();
        let req = Acquire {
            force: req.force || suspect,
            ..*req
        };
        let mut a = self.acquire_raw(&req).await?;
        if suspect {
            a.entry = None;
        }
        Ok(a)
    }

    delegate! {
        get_raw = get(entry: &str) -> Option<Raw>;
        read_raw = read(entry: &str, tags: &[String]) -> (Option<Raw>, Vec<Option<u64>>);
        tag_versions = tag_versions(tags: &[String]) -> Vec<Option<u64>>;
        acquire_raw = acquire(req: &Acquire<'_>) -> Acquired;
        finish = finish(req: &Finish<'_>) -> bool;
        ensure_tags = ensure_tags(tags: &[String], tag_ttl: Duration) -> Vec<u64>;
        ensure_tags_then_epoch = ensure_tags_then_epoch(tags: &[String], tag_ttl: Duration, epoch: &str) -> (Vec<u64>, Option<u64>);
        set = set(entry: &str, value: &[u8], ttl: Duration) -> ();
        del = del(entries: &[String]) -> u64;
        del_pattern = del_pattern(entry_pattern: &str, batch: usize) -> u64;
        clear = clear(layout: &Layout, batch: usize) -> u64;
        bump_tags = bump_tags(tags: &[String]) -> ();
        wait_replicas = wait_replicas(keys: &[String], replicas: u32, timeout: Duration) -> u32;
        exists = exists(entry: &str) -> bool;
        ttl = ttl(entry: &str) -> KeyTtl;
        incr_by = incr_by(entry: &str, by: i64) -> i64;
        expire = expire(entry: &str, ttl: Duration) -> bool;
    }
}
