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
