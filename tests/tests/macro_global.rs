//! `#[cached]` without `cache = ..`: the process-wide cache of
//! `cache_runtime::install` (issue 3). The only test binary that installs a
//! global cache, so its single test walks the states in order: nothing
//! installed (the body runs, nothing fails), then a Redis cache installed.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};

static RUNS: AtomicUsize = AtomicUsize::new(0);

fn runs() -> usize {
    RUNS.load(Ordering::SeqCst)
}

#[cached(key = "g:{id}", ttl = SHORT)]
pub async fn lookup(id: u32) -> Result<u32, String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(id * 10)
}

#[cached(invalidates = ["g:{id}"])]
pub async fn touch(id: u32) -> Result<(), String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = id;
    Ok(())
}

struct Svc;

impl Svc {
    #[cached]
    async fn plain(&self, n: u8) -> u8 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        n + 1
    }
}

#[tokio::test]
async fn uncached_until_installed_then_global() {
    // 1. Nothing installed: every call runs its body, no call fails.
    assert!(cache_runtime::global().is_none());
    assert_eq!(lookup(1).await, Ok(10));
    assert_eq!(lookup(1).await, Ok(10));
    assert_eq!(runs(), 2, "no cache: the body runs every time");
    assert_eq!(touch(1).await, Ok(()));
    assert_eq!(Svc.plain(1).await, 2);
    assert_eq!(lookup_invalidate(1).await.expect("no cache: nothing to drop"), 0);
    assert_eq!(runs(), 4);

    // 2. A Redis cache installed: hits skip the body.
    let cache = Cache::builder()
        .namespace(&tests::unique_namespace("global"))
        .redis(&tests::shared_redis().url())
        .build()
        .await
        .expect("redis cache");
    cache_runtime::install(cache.clone()).expect("first install");
    assert_eq!(lookup(2).await, Ok(20));
    assert_eq!(lookup(2).await, Ok(20));
    assert_eq!(runs(), 5);
    assert_eq!(cache.get::<u32>("g:2").await.expect("get"), Some(20));

    assert_eq!(Svc.plain(7).await, 8);
    assert_eq!(Svc.plain(7).await, 8);
    assert_eq!(runs(), 6);
    // The default key names the type and the method, then the arguments.
    let key = Svc::plain_key_for_test(7);
    assert_eq!(cache.get::<u8>(&key).await.expect("get"), Some(8), "{key}");

    assert_eq!(touch(2).await, Ok(()));
    assert_eq!(cache.get::<u32>("g:2").await.expect("get"), None, "invalidated");
    assert_eq!(lookup(2).await, Ok(20));
    assert_eq!(runs(), 8);

    let stats = cache.stats();
    assert!(
        stats.per_function.keys().any(|k| k.ends_with("::lookup")),
        "per-function stats under the function's path: {:?}",
        stats.per_function.keys().collect::<Vec<_>>()
    );
}

impl Svc {
    /// The documented default key of a method: `type_name::<Self>()::fn`,
    /// then `:`-separated escaped arguments.
    fn plain_key_for_test(n: u8) -> String {
        format!("{}::plain:{n}", std::any::type_name::<Self>())
    }
}
