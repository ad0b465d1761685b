//! Redis is optional at every moment (DESIGN §5.3, issue 5): each test owns
//! a real `redis-server` that it keeps away, kills, restarts or freezes.
//! Every loop is bounded in count and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, CacheError, Policy};
use serde::{Deserialize, Serialize};
use tests::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(200);

/// These tests bound latencies; run them one at a time so that one test's
/// load (32 busy tasks) does not slow another's timers on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cache_on(server: &RedisServer) -> Cache {
    Cache::builder()
        .namespace("faults")
        .redis(&server.url())
        .operation_timeout(TIMEOUT)
        .circuit_breaker(3, Duration::from_millis(300))
        .build()
        .await
        .expect("building never waits for Redis")
}

/// The value the "database" holds for a key: lets every caller check it got
/// the right one.
fn truth(i: u64) -> String {
    format!("value-{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_absent_at_start_then_appearing() {
    let _serial = SERIAL.lock().await;
    let mut server = RedisServer::stopped();
    let cache = cache_on(&server).await;

    // 1,000 calls with nothing listening: all answered by the loader.
    let start = Instant::now();
    let loads = AtomicUsize::new(0);
    for i in 0..1000u64 {
        let v = cache
            .get_or_load(&format!("k:{}", i % 50), Duration::from_secs(60), || async {
                loads.fetch_add(1, Ordering::Relaxed);
                Ok::<_, ()>(truth(i % 50))
            })
            .await;
        assert_eq!(v, Ok(truth(i % 50)));
    }
    let added = start.elapsed();
    assert_eq!(loads.load(Ordering::Relaxed), 1000, "every call went to its loader");
    // The loader costs nothing here, so this is the cache's whole overhead
    // for 1,000 calls: refused connections fail fast, then the breaker
    // answers at once. One timeout plus a generous margin.
    assert!(
        added < TIMEOUT + Duration::from_secs(2),
        "1,000 calls took {added:?} with Redis absent"
    );
    let stats = cache.stats();
    assert!(stats.total.bypassed > 900, "breaker skipped the backend: {stats:?}");
    assert_eq!(
        stats.breaker_opened, 1,
        "the state change is counted once, not per call"
    );
    assert!(cache.is_degraded());

    // The explicit API shows the failure, with the key.
    let err = cache.get::<String>("k:1").await.unwrap_err();
    assert!(err.is_backend() && err.key() == Some("k:1"), "{err:?}");

    // Redis appears: within a few seconds, values are stored and hits resume.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hit = false;
    while Instant::now() < deadline && !hit {
        let before = cache.stats().total.hits;
        let _ = cache
            .get_or_load("k:1", Duration::from_secs(60), || async { Ok::<_, ()>(truth(1)) })
            .await;
        let _ = cache
            .get_or_load("k:1", Duration::from_secs(60), || async { Ok::<_, ()>(truth(1)) })
            .await;
        hit = cache.stats().total.hits > before;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hit, "no cache hit within 10 s of Redis starting");
    assert!(!cache.is_degraded());
    assert_eq!(cache.stats().breaker_closed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_concurrent_load_and_restarted() {
    let _serial = SERIAL.lock().await;
    let mut server = RedisServer::start();
    let cache = cache_on(&server).await;
    let errors = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(4);

    let workers: Vec<_> = (0..32u64)
        .map(|w| {
            let (cache, errors, calls) = (cache.clone(), errors.clone(), calls.clone());
            tokio::spawn(async move {
                let mut i = w;
                let mut worst = Duration::ZERO;
                while Instant::now() < stop_at {
                    let key = i % 64;
                    let t = Instant::now();
                    let v = cache
                        .get_or_load(&format!("item:{key}"), Duration::from_secs(60), || async move {
                            tokio::time::sleep(Duration::from_millis(2)).await; // the "query"
                            Ok::<_, ()>(truth(key))
                        })
                        .await;
                    worst = worst.max(t.elapsed());
                    if v != Ok(truth(key)) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
                worst
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let hits_before_kill = cache.stats().total.hits;
    assert!(hits_before_kill > 0, "warm cache before the outage");
    let outage = tokio::task::spawn_blocking(move || {
        server.kill();
        std::thread::sleep(Duration::from_millis(1200));
        server.restart();
        server
    });
    let mut worst = Duration::ZERO;
    for w in workers {
        worst = worst.max(w.await.expect("worker"));
    }
    let _server = outage.await.expect("outage script"); // kept alive until the end
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "a wrong value or an error reached a caller"
    );
    assert!(calls.load(Ordering::Relaxed) > 1000);
    // A call costs at most its loader plus about one timeout (scheduling on
    // two cores adds a little).
    assert!(
        worst < TIMEOUT * 2 + Duration::from_millis(500),
        "slowest call {worst:?}"
    );
    let stats = cache.stats();
    assert!(stats.breaker_opened >= 1, "{stats:?}");

    // After the restart the hit rate recovers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut recovered = false;
    while Instant::now() < deadline && !recovered {
        let before = cache.stats().total;
        for key in 0..64u64 {
            let _ = cache
                .get_or_load(&format!("item:{key}"), Duration::from_secs(60), || async move {
                    Ok::<_, ()>(truth(key))
                })
                .await;
        }
        let after = cache.stats().total;
        let (h, m) = (after.hits - before.hits, after.misses - before.misses);
        recovered = h * 10 >= (h + m) * 9;

        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "hit rate did not recover to 90 % within 10 s of the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_calls_are_bounded_and_the_breaker_opens() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    let cache = cache_on(&server).await;
    cache
        .get_or_load("k", Duration::from_secs(60), || async { Ok::<_, ()>(1) })
        .await
        .unwrap();
    server.pause();
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        let v = cache
            .get_or_load("k", Duration::from_secs(60), || async { Ok::<_, ()>(1) })
            .await;
        worst = worst.max(t.elapsed());
        assert_eq!(v, Ok(1));
    }
    let total = start.elapsed();
    let stats = cache.stats();
    server.resume();
    // Each call waits at most one timeout; after 3 failures the breaker
    // answers at once, and probes cost one timeout each per cool-down.
    assert!(worst < TIMEOUT + Duration::from_millis(300), "slowest call {worst:?}");
    assert!(total < TIMEOUT * 8 + Duration::from_secs(1), "50 calls took {total:?}");
    assert_eq!(stats.breaker_opened, 1, "{stats:?}");
    assert!(stats.total.bypassed >= 40, "{stats:?}");

    // The explicit API reports a timeout with the key while frozen.
    server.pause();
    tokio::time::sleep(Duration::from_millis(350)).await; // let a probe through
    let t = Instant::now();
    let err = cache.get::<i32>("k").await.unwrap_err();
    assert!(t.elapsed() < TIMEOUT + Duration::from_millis(300));
    assert!(
        matches!(err, CacheError::Timeout { .. } | CacheError::Unavailable { .. }),
        "{err:?}"
    );
    assert_eq!(err.key(), Some("k"));
    server.resume();

    // Thawed: the cache works again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.get::<i32>("k").await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Blob(Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_size_limit_are_returned_but_not_stored() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    for cache in [
        Cache::builder()
            .namespace("big")
            .redis(&server.url())
            .max_value_bytes(1024)
            .build()
            .await
            .unwrap(),
        Cache::builder()
            .namespace("big")
            .memory()
            .max_value_bytes(1024)
            .build()
            .await
            .unwrap(),
    ] {
        let v = cache
            .get_or_load("big", Duration::from_secs(60), || async {
                Ok::<_, ()>(Blob(vec![7; 4096]))
            })
            .await;
        assert_eq!(v, Ok(Blob(vec![7; 4096])));
        assert!(!cache.exists("big").await.unwrap(), "not stored");
        let small = cache.get_or_load("small", Duration::from_secs(60), || async {
            Ok::<_, ()>(Blob(vec![7; 16]))
        });
        assert!(small.await.is_ok());
        assert!(cache.exists("small").await.unwrap());
        let stats = cache.stats();
        assert_eq!(stats.total.oversized, 1);
        let err = cache
            .set("big", &Blob(vec![0; 4096]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CacheError::TooLarge { size, limit: 1024, .. } if size > 4096),
            "{err:?}"
        );
    }
}

/// A value whose serialization fails.
#[derive(Debug, PartialEq, Deserialize)]
struct Unserializable(u8);

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this type refuses to serialize"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_fail_to_encode_are_returned_but_not_stored() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("enc")
        .redis(&server.url())
        .build()
        .await
        .unwrap();
    for _ in 0..2 {
        let v = cache.get_or_load("u", Policy::ttl(Duration::from_secs(60)), || async {
            Ok::<_, ()>(Unserializable(3))
        });
        assert_eq!(v.await, Ok(Unserializable(3)));
    }
    assert!(!cache.exists("u").await.unwrap());
    assert_eq!(cache.stats().total.encode_errors, 2);
    let err = cache
        .set("u", &Unserializable(1), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Encode { .. }) && err.to_string().contains("`u`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_is_the_only_construction_error() {
    let _serial = SERIAL.lock().await;
    let err = Cache::redis("not a url").await.unwrap_err();
    assert!(matches!(err, CacheError::InvalidUrl { .. }), "{err:?}");
    let err = Cache::redis("redis://user:hunter2@127.0.0.1:notaport/")
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("hunter2"),
        "password leaked into the error: {err}"
    );
    // A well-formed URL with nothing behind it builds fine.
    let port = tests::free_port();
    assert!(Cache::redis(&format!("redis://127.0.0.1:{port}/")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_before_the_first_connection() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    server.pause(); // the kernel still accepts the TCP connection; nothing answers
    let cache = cache_on(&server).await;
    let start = Instant::now();
    for i in 0..20u32 {
        let t = Instant::now();
        let v = cache
            .get_or_load("k", Duration::from_secs(60), || async move { Ok::<_, ()>(i) })
            .await;
        assert_eq!(v, Ok(i), "each call answered by its loader");
        assert!(
            t.elapsed() < TIMEOUT + Duration::from_millis(300),
            "call {i} took {:?}",
            t.elapsed()
        );
    }
    assert!(
        start.elapsed() < TIMEOUT * 4 + Duration::from_secs(1),
        "20 calls took {:?}",
        start.elapsed()
    );
    assert_eq!(cache.stats().breaker_opened, 1);
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.set("k", &1u32, Duration::from_secs(60)).await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cache.get::<u32>("k").await.expect("connected after the thaw"), Some(1));
}
