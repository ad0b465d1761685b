//! `Cache::disabled()` and `CACHE_DISABLED=1`: every call runs its loader,
//! nothing is stored, the explicit operations succeed without effect.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cache_runtime::{BackendKind, Cache, KeyTtl, Policy, Ttl};

#[tokio::test]
async fn every_call_runs_its_loader_even_concurrently() {
    let cache = Cache::disabled();
    assert_eq!(cache.backend(), BackendKind::Disabled);
    let loads = AtomicU32::new(0);
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        // Long enough that the calls overlap: a real cache would coalesce them.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, std::io::Error>(7u32)
    };
    let calls = (0..8).map(|_| cache.get_or_load("k", Policy::ttl(Ttl::LONG).tags(["t"]), load));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap(), 7);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 8);
    let opt = cache
        .get_or_load_optional("o", Policy::ttl(Ttl::LONG).negative_ttl(Ttl::LONG), || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<u32>, std::io::Error>(None)
        })
        .await
        .unwrap();
    assert_eq!((opt, loads.load(Ordering::SeqCst)), (None, 9));
    let stats = cache.stats();
    assert_eq!((stats.total.hits, stats.total.loads), (0, 9), "{stats:?}");
}

#[tokio::test]
async fn explicit_operations_succeed_and_store_nothing() {
    let cache = Cache::disabled();
    cache.set("k", &"v", Ttl::LONG).await.unwrap();
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
    assert!(!cache.exists("k").await.unwrap());
    assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Missing);
    assert!(!cache.del("k").await.unwrap());
    assert!(!cache.expire("k", Ttl::SHORT).await.unwrap());
    assert_eq!(cache.incr_by("n", 5).await.unwrap(), 5);
    assert_eq!(cache.incr("n").await.unwrap(), 1);
    assert_eq!(cache.del_pattern("k*").await.unwrap(), 0);
    let inv = cache.invalidator();
    inv.tag("t").await.unwrap();
    assert_eq!(inv.all().await.unwrap(), 0);
    // A malformed glob is still reported: the code under test has a bug.
    assert!(cache.del_pattern("[a").await.unwrap_err().is_config());
    // Write-through runs its body and stores nothing.
    let v = cache
        .put_with("p", Ttl::LONG, || async { Ok::<_, ()>(3) })
        .await
        .unwrap();
    assert_eq!((v, cache.get::<i32>("p").await.unwrap()), (3, None));
}

#[cfg(feature = "macros")]
#[tokio::test]
async fn cached_methods_run_their_body_every_time() {
    use cache_runtime::cached;
    struct Repo {
        cache: Cache,
        queries: AtomicU32,
    }
    impl Repo {
        #[cached(key = "course:{id}", ttl = LONG, cache = self.cache)]
        async fn course(&self, id: u32) -> Result<u32, std::io::Error> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            Ok(id)
        }
    }
    let repo = Repo {
        cache: Cache::disabled(),
        queries: AtomicU32::new(0),
    };
    for _ in 0..3 {
        assert_eq!(repo.course(4).await.unwrap(), 4);
    }
    assert_eq!(repo.queries.load(Ordering::SeqCst), 3);
}

/// `Cache::from_env()` with `CACHE_DISABLED=1`, in a child process (the
/// environment of this one is left alone): disabled even with a
/// `REDIS_URL` set, and loaders run on every call.
#[test]
fn from_env_honours_cache_disabled() {
    const CHILD: &str = "CACHE_RUNTIME_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cache = Cache::from_env().await.expect("from_env");
            assert_eq!(cache.backend(), BackendKind::Disabled);
            assert_eq!(cache.namespace(), "child");
            let loads = AtomicU32::new(0);
            for _ in 0..2 {
                let load = || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(1)
                };
                cache.get_or_load("k", Ttl::LONG, load).await.unwrap();
            }
            assert_eq!(loads.load(Ordering::SeqCst), 2);
        });
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "from_env_honours_cache_disabled",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("CACHE_DISABLED", "1")
        .env("CACHE_NAMESPACE", "child")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("REDIS_SENTINEL_URLS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
