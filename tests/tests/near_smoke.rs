//! The near cache's basic contract, quickly: hits are served from the
//! process, invalidations (local and from another handle) reach it, and it
//! stops serving when its channel dies. The attacker suite is `near_cache.rs`.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy, Ttl};
use tests::{shared_redis, unique_namespace};

async fn near(url: &str, ns: &str) -> Cache {
    Cache::builder()
        .namespace(ns)
        .redis(url)
        .near_cache(1 << 20)
        .near_cache_max_staleness(Duration::from_millis(50))
        .build()
        .await
        .expect("cache")
}

async fn live(cache: &Cache) {
    let until = Instant::now() + Duration::from_secs(5);
    while !cache.near_cache_live() {
        assert!(Instant::now() < until, "near tier never became live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn read(cache: &Cache, key: &str, v: u64) -> u64 {
    cache
        .get_or_load_cloned(key, Policy::ttl(Ttl::LONG).tags(["t"]), || async { Ok::<_, ()>(v) })
        .await
        .unwrap()
}

#[tokio::test]
async fn near_hits_and_invalidations() {
    let server = shared_redis();
    let ns = unique_namespace("near-smoke");
    let a = near(&server.url(), &ns).await;
    let b = near(&server.url(), &ns).await;
    live(&a).await;
    live(&b).await;
    assert_eq!(read(&a, "k", 1).await, 1); // miss, fill
    assert_eq!(read(&a, "k", 2).await, 1); // Redis hit, kept near
    assert_eq!(read(&a, "k", 3).await, 1); // near hit
    assert!(a.stats().total.near_hits >= 1, "{:?}", a.stats().total);
    assert_eq!(read(&b, "k", 4).await, 1);
    assert_eq!(read(&b, "k", 4).await, 1);
    // A tag invalidation in `a` is seen by `a` at once and by `b` within ε.
    a.invalidator().tag("t").await.unwrap();
    assert_eq!(read(&a, "k", 5).await, 5);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(read(&b, "k", 6).await, 5);
    // A key invalidation from `b`.
    b.invalidator().key("k").await.unwrap();
    assert_eq!(read(&b, "k", 7).await, 7);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(read(&a, "k", 8).await, 7);
    assert_eq!(read(&a, "k", 8).await, 7);
    assert!(b.stats().total.near_hits >= 1, "{:?}", b.stats().total);
}

/// `#[cached]` uses the near tier for a `Clone` value type, not with
/// `local = false`, and a generic value type still compiles (and reads
/// Redis).
mod through_the_macro {
    use std::sync::atomic::{AtomicU64, Ordering};

    use cache_runtime::{Cache, cached};
    use serde::{Serialize, de::DeserializeOwned};

    pub struct Repo {
        pub cache: Cache,
        pub loads: AtomicU64,
    }

    impl Repo {
        #[cached(key = "near:{id}", ttl = LONG, cache = self.cache)]
        pub async fn near(&self, id: u32) -> Result<String, String> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(format!("v{id}"))
        }

        #[cached(key = "far:{id}", ttl = LONG, cache = self.cache, local = false)]
        pub async fn far(&self, id: u32) -> Option<Vec<u32>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Some(vec![id])
        }

        #[cached(key = "generic:{id}", ttl = LONG, cache = self.cache)]
        pub async fn generic<T: Serialize + DeserializeOwned + Clone + Send + Sync + Default>(&self, id: u32) -> T {
            let _ = id;
            self.loads.fetch_add(1, Ordering::SeqCst);
            T::default()
        }
    }
}

#[tokio::test]
async fn the_macro_uses_the_near_tier_unless_told_not_to() {
    use std::sync::atomic::AtomicU64;
    let server = shared_redis();
    let ns = unique_namespace("near-macro");
    let repo = through_the_macro::Repo {
        cache: near(&server.url(), &ns).await,
        loads: AtomicU64::new(0),
    };
    live(&repo.cache).await;
    let per = |name: &str| {
        let stats = repo.cache.stats();
        let (_, f) = stats
            .per_function
            .iter()
            .find(|(k, _)| k.ends_with(name))
            .unwrap_or_else(|| panic!("no stats for {name}: {:?}", stats.per_function.keys()));
        *f
    };
    for _ in 0..5 {
        assert_eq!(repo.near(1).await.unwrap(), "v1");
        assert_eq!(repo.far(2).await, Some(vec![2]));
        assert_eq!(repo.generic::<u64>(3).await, 0);
    }
    assert!(per("near").near_hits >= 3, "{:?}", per("near"));
    assert_eq!(per("far").near_hits, 0, "{:?}", per("far"));
    assert!(per("far").hits >= 4, "{:?}", per("far"));
    assert_eq!(per("generic").near_hits, 0, "{:?}", per("generic"));
    assert!(per("generic").hits >= 4, "{:?}", per("generic"));
}

/// A `#[cached]` call site remembers its function's counters in the first
/// cache that counted a call from it (so that near hits skip the
/// per-function map): calls through other caches, including one built
/// after the first is dropped, must still be counted in their own cache
/// only. And a cache's total counts every near hit, named or not.
#[tokio::test]
async fn call_site_counters_stay_with_their_cache() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = shared_redis();
    let repo = |cache: Cache| through_the_macro::Repo {
        cache,
        loads: AtomicU64::new(0),
    };
    let per = |cache: &Cache| {
        let stats = cache.stats();
        stats
            .per_function
            .iter()
            .find(|(k, _)| k.ends_with("Repo::near"))
            .map(|(_, f)| *f)
            .unwrap_or_default()
    };
    let a = repo(near(&server.url(), &unique_namespace("site-a")).await);
    let b = repo(near(&server.url(), &unique_namespace("site-b")).await);
    live(&a.cache).await;
    live(&b.cache).await;
    for _ in 0..6 {
        assert_eq!(a.near(1).await.unwrap(), "v1");
    }
    for _ in 0..4 {
        assert_eq!(b.near(1).await.unwrap(), "v1");
    }
    let (fa, fb) = (per(&a.cache), per(&b.cache));
    assert_eq!((fa.misses, fa.hits), (1, 5), "{fa:?}");
    assert_eq!((fb.misses, fb.hits), (1, 3), "{fb:?}");
    assert_eq!(a.loads.load(Ordering::SeqCst), 1);
    assert_eq!(b.loads.load(Ordering::SeqCst), 1);
    assert!(fa.near_hits >= 3 && fb.near_hits >= 1, "{fa:?} {fb:?}");
    // Unnamed near hits beside the named ones: the total has both.
    for _ in 0..4 {
        assert_eq!(read(&a.cache, "plain", 9).await, 9);
    }
    let total = a.cache.stats().total;
    assert!(total.near_hits >= fa.near_hits + 2, "{total:?} {fa:?}");
    assert_eq!(total.hits, fa.hits + 3, "{total:?} {fa:?}");
    assert_eq!(total.misses, fa.misses + 1, "{total:?} {fa:?}");
    // The cache the site remembers goes away; a new one counts its own.
    drop(a);
    let c = repo(near(&server.url(), &unique_namespace("site-c")).await);
    live(&c.cache).await;
    for _ in 0..3 {
        assert_eq!(c.near(2).await.unwrap(), "v2");
    }
    let fc = per(&c.cache);
    assert_eq!((fc.misses, fc.hits), (1, 2), "{fc:?}");
    assert_eq!(per(&b.cache), fb, "b counted calls made through other caches");
}
