//! Freshness policies (issue 12, DESIGN §13) on every backend: early
//! refresh (XFetch), stale-while-revalidate and stale-if-error, and that
//! none of them ever serves a value whose key or tag was invalidated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};
use tests::{Backend, cache_for};

/// A source of truth whose loads take `delay`, can be made to fail, and
/// count themselves.
#[derive(Clone)]
struct Source {
    version: Arc<AtomicU64>,
    loads: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    delay: Duration,
}

impl Source {
    fn new(delay: Duration) -> Self {
        Source {
            version: Arc::new(AtomicU64::new(1)),
            loads: Arc::new(AtomicU64::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
            delay,
        }
    }

    async fn get(&self, cache: &Cache, key: &str, policy: Policy) -> Result<u64, &'static str> {
        let me = self.clone();
        cache
            .get_or_load(key, policy, || async move {
                let v = me.version.load(Ordering::SeqCst);
                tokio::time::sleep(me.delay).await;
                me.loads.fetch_add(1, Ordering::SeqCst);
                if me.failing.load(Ordering::SeqCst) {
                    Err("database down")
                } else {
                    Ok(v)
                }
            })
            .await
    }

    fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }
}

/// With a large β, a hot key is reloaded before it expires: no caller ever
/// misses after the first, and the value changes without an expiry.
async fn early_refresh_reloads_before_expiry(backend: Backend) {
    let cache = cache_for(backend).await;
    let src = Source::new(Duration::from_millis(40));
    let policy = || {
        Policy::ttl(Duration::from_millis(1500))
            .early_refresh(30.0)
            .name("early")
    };
    assert_eq!(src.get(&cache, "k", policy()).await, Ok(1));
    src.version.store(2, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_millis(1400);
    let mut saw_new = false;
    while Instant::now() < deadline && !saw_new {
        saw_new = src.get(&cache, "k", policy()).await == Ok(2);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = cache.stats().per_function["early"];
    assert!(saw_new, "{backend:?}: not refreshed before expiry: {s:?}");
    assert_eq!(s.misses, 1, "{backend:?}: only the first call missed: {s:?}");
    assert!(s.refreshes >= 1, "{s:?}");
    // β = 0 turns it off: the value is kept to its expiry.
    let off = || Policy::ttl(Duration::from_millis(1500)).early_refresh(0.0);
    assert_eq!(src.get(&cache, "off", off()).await, Ok(2));
    src.version.store(3, Ordering::SeqCst);
    for _ in 0..50 {
        assert_eq!(src.get(&cache, "off", off()).await, Ok(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Within the window after expiry, callers get the old value at once and
/// one reload happens; an invalidated key or tag is never served stale.
async fn stale_while_revalidate_serves_old_values_but_never_invalidated_ones(backend: Backend) {
    let cache = cache_for(backend).await;
    let src = Source::new(Duration::from_millis(150));
    let policy = || {
        Policy::ttl(Duration::from_millis(300))
            .stale_while_revalidate(Duration::from_secs(5))
            .early_refresh(0.0)
            .tags(["t"])
    };
    assert_eq!(src.get(&cache, "k", policy()).await, Ok(1));
    src.version.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await; // expired, within the window
    // Concurrent callers: all but (at most) one answered at once with 1.
    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (src, cache) = (src.clone(), cache.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                (src.get(&cache, "k", policy()).await, t.elapsed())
            })
        })
        .collect();
    let mut fast_old = 0;
    for c in calls {
        let (v, took) = c.await.unwrap();
        if v == Ok(1) && took < Duration::from_millis(100) {
            fast_old += 1;
        }
    }
    assert!(
        fast_old >= 7,
        "{backend:?}: {fast_old} of 8 got the stale value at once"
    );
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(src.loads(), 2, "{backend:?}: one reload");
    assert_eq!(src.get(&cache, "k", policy()).await, Ok(2), "the reload was stored");

    // Expired again, then invalidated by key: the old value is not served.
    src.version.store(3, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    cache.invalidator().key("k").await.unwrap();
    assert_eq!(
        src.get(&cache, "k", policy()).await,
        Ok(3),
        "{backend:?}: served an invalidated key"
    );
    // And by tag.
    src.version.store(4, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    cache.invalidator().tag("t").await.unwrap();
    assert_eq!(
        src.get(&cache, "k", policy()).await,
        Ok(4),
        "{backend:?}: served an invalidated tag"
    );
}

/// When the loader fails, an expired value no older than the window is
/// served instead of the error; never an invalidated one, never an older one.
async fn stale_if_error_serves_only_on_error_within_the_window(backend: Backend) {
    let cache = cache_for(backend).await;
    let src = Source::new(Duration::from_millis(5));
    let policy = || {
        Policy::ttl(Duration::from_millis(200))
            .stale_if_error(Duration::from_millis(800))
            .early_refresh(0.0)
    };
    assert_eq!(src.get(&cache, "k", policy()).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired, loader fine: a fresh load (no stale value).
    src.version.store(2, Ordering::SeqCst);
    assert_eq!(src.get(&cache, "k", policy()).await, Ok(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired, loader failing: the expired value.
    src.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        src.get(&cache, "k", policy()).await,
        Ok(2),
        "{backend:?}: stale-if-error"
    );
    // Past the window: the error.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        src.get(&cache, "k", policy()).await,
        Err("database down"),
        "{backend:?}: too old"
    );
    // Invalidated: the error, not the old value.
    src.failing.store(false, Ordering::SeqCst);
    assert_eq!(src.get(&cache, "k2", policy()).await, Ok(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cache.invalidator().key("k2").await.unwrap();
    src.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        src.get(&cache, "k2", policy()).await,
        Err("database down"),
        "{backend:?}: invalidated"
    );
    let s = cache.stats().total;
    assert_eq!(s.stale_served, 1, "{s:?}");
}

macro_rules! on_every_backend {
    ($($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in tests::BACKENDS {
                super::$name(backend).await;
            }
        }
    )*};
}

mod every_backend {
    on_every_backend!(
        early_refresh_reloads_before_expiry,
        stale_while_revalidate_serves_old_values_but_never_invalidated_ones,
        stale_if_error_serves_only_on_error_within_the_window
    );
}
