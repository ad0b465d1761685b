//! Correct across a fleet (issue 9, DESIGN §10): several cache handles (each
//! standing for a process) on one real redis-server that evicts, forgets and
//! stalls. Each test names the item of issue 9 it guards. Multi-process
//! versions are in `fleet_processes.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, CacheError, Policy};
use tests::fleet::{SoakConfig, soak};
use tests::{RedisServer, cache_for, shared_redis, unique_namespace};
use tokio::sync::Notify;

async fn handle(url: &str, ns: &str) -> Cache {
    Cache::builder()
        .namespace(ns)
        .redis(url)
        .ttl_jitter(0.0)
        .build()
        .await
        .expect("cache")
}

/// Deletes every key of the namespace whose name contains `part` (the
/// test's stand-in for Redis evicting them), whatever the key layout.
async fn forget_keys(server: &RedisServer, ns: &str, part: &str) -> usize {
    let mut raw = server.raw().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{ns}*{part}*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    for k in &keys {
        let _: i64 = redis::cmd("DEL").arg(k).query_async(&mut raw).await.unwrap();
    }
    keys.len()
}

/// Issue 9 item 1: a tag version that Redis loses (evicted, expired,
/// deleted) must not bring back values stored before the tag was
/// invalidated. (On the old layout a missing version read as 0, the version
/// entries were stored under before any invalidation.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tag_version_is_a_miss_not_a_resurrection() {
    let server = shared_redis();
    let ns = unique_namespace("evict");
    let cache = handle(&server.url(), &ns).await;
    let source = AtomicU64::new(1);
    let read = || {
        cache.get_or_load(
            "course:1",
            Policy::ttl(Duration::from_secs(60)).tags(["courses"]),
            || async { Ok::<_, ()>(source.load(Ordering::SeqCst)) },
        )
    };
    assert_eq!(read().await, Ok(1));
    source.store(2, Ordering::SeqCst);
    cache.invalidator().tag("courses").await.unwrap();
    assert!(forget_keys(server, &ns, "tag").await > 0, "the tag version exists");
    assert_eq!(read().await, Ok(2), "served a value loaded before the invalidation");
    // And once more with the version lost before any read after it.
    source.store(3, Ordering::SeqCst);
    cache.invalidator().tag("courses").await.unwrap();
    forget_keys(server, &ns, "tag").await;
    forget_keys(server, &ns, "tag").await;
    assert_eq!(read().await, Ok(3));
}

/// Issue 9 item 2: handle A is loading `k` (the old row); handle B updates
/// the row and invalidates `k` (or its tag). A request on A that starts
/// after B's invalidation returned must not join A's older load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_a_remote_invalidation_does_not_join_an_older_load() {
    for by_tag in [false, true] {
        let ns = unique_namespace("join");
        let a = handle(&shared_redis().url(), &ns).await;
        let b = handle(&shared_redis().url(), &ns).await;
        let row = Arc::new(AtomicU64::new(1));
        let (loading, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let policy = Policy::ttl(Duration::from_secs(60)).tags(["courses"]);
        let first = {
            let (a, row, loading, release, policy) =
                (a.clone(), row.clone(), loading.clone(), release.clone(), policy.clone());
            tokio::spawn(async move {
                a.get_or_load("k", policy, || async move {
                    let v = row.load(Ordering::SeqCst);
                    loading.notify_one();
                    release.notified().await;
                    Ok::<_, ()>(v)
                })
                .await
            })
        };
        loading.notified().await; // A has read row = 1 and is still loading
        row.store(2, Ordering::SeqCst);
        if by_tag {
            b.invalidator().tag("courses").await.unwrap();
        } else {
            b.invalidator().key("k").await.unwrap();
        }
        // Starts after the invalidation returned.
        let second = {
            let (a, row, policy) = (a.clone(), row.clone(), policy.clone());
            tokio::spawn(async move {
                a.get_or_load("k", policy, || async move { Ok::<_, ()>(row.load(Ordering::SeqCst)) })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await; // let it join, if it would
        release.notify_one();
        assert_eq!(
            first.await.unwrap(),
            Ok(1),
            "the first caller started before the update"
        );
        assert_eq!(
            second.await.unwrap(),
            Ok(2),
            "by_tag={by_tag}: got the value of a load that began before the invalidation"
        );
        assert_eq!(
            b.get::<u64>("k").await.unwrap(),
            Some(2),
            "by_tag={by_tag}: the old value was stored"
        );
    }
}

/// Issue 9 item 3: the breaker always finds its way back, whatever happens
/// to the probe: cancelled by a request timeout, or answered with an error
/// of the command (WRONGTYPE) rather than of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_recovers_from_cancelled_and_refused_probes() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("breaker")
        .redis(&server.url())
        .operation_timeout(Duration::from_millis(150))
        .circuit_breaker(1, Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let load = |k: &'static str| cache.get_or_load(k, Duration::from_secs(60), || async { Ok::<_, ()>(7u32) });

    // 1. A cancelled probe.
    server.pause();
    assert_eq!(load("a").await, Ok(7));
    assert!(cache.is_degraded(), "one timeout opens the circuit");
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The probe hangs on the frozen server and its caller gives up first.
    assert!(
        tokio::time::timeout(Duration::from_millis(30), load("b"))
            .await
            .is_err()
    );
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(3);
    while cache.is_degraded() && Instant::now() < deadline {
        let _ = load("c").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!cache.is_degraded(), "a cancelled probe left the circuit open");
    assert_eq!(cache.get::<u32>("c").await.unwrap(), Some(7), "caching resumed");

    // 2. A probe answered with WRONGTYPE.
    let mut raw = server.raw().await;
    let _: i64 = redis::cmd("RPUSH")
        .arg(cache_runtime::__private::full_key(&cache, "list"))
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    server.restart(); // drops every key and the connection
    let _: i64 = redis::cmd("RPUSH")
        .arg(cache_runtime::__private::full_key(&cache, "list"))
        .arg("x")
        .query_async(&mut server.raw().await)
        .await
        .unwrap();
    server.kill();
    for _ in 0..3 {
        let _ = load("d").await;
    }
    assert!(cache.is_degraded());
    server.restart();
    let _: i64 = redis::cmd("RPUSH")
        .arg(cache_runtime::__private::full_key(&cache, "list"))
        .arg("x")
        .query_async(&mut server.raw().await)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    // The first call after the cool-down is the probe, and it reads a list.
    while cache.get::<u32>("list").await.is_err_and(|e| e.is_backend()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cache.get::<u32>("list").await.is_err(),
        "WRONGTYPE is still an error to the explicit API"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while cache.is_degraded() && Instant::now() < deadline {
        let _ = load("e").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!cache.is_degraded(), "a WRONGTYPE probe left the circuit open");
}

/// Issue 9 item 4: a hung Redis costs a `get_or_load` at most one operation
/// timeout, although a miss makes several round trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_one_timeout_per_call() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(250);
    let cache = Cache::builder()
        .namespace("hung")
        .redis(&server.url())
        .operation_timeout(timeout)
        .circuit_breaker(100, Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    // Connect first, so the freeze hits an established connection.
    assert!(cache.set("warm", &1u8, Duration::from_secs(5)).await.is_ok());
    server.pause();
    for i in 0..3 {
        let start = Instant::now();
        let v = cache
            .get_or_load(
                &format!("k{i}"),
                Policy::ttl(Duration::from_secs(5)).tags(["t"]),
                || async { Ok::<_, ()>(1u8) },
            )
            .await;
        let took = start.elapsed();
        assert_eq!(v, Ok(1));
        assert!(
            took < timeout + timeout / 2,
            "call {i} took {took:?}: more than one {timeout:?} timeout"
        );
    }
    server.resume();
}

/// Issue 9 item 5: no key, however spelled, reaches the cache's bookkeeping.
/// Keys that spell the old layout's tag and lease keys, and the new one's,
/// are written and deleted through every explicit operation; a tagged entry
/// invalidated before must stay invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_cannot_reach_bookkeeping() {
    for backend in tests::BACKENDS {
        let cache = cache_for(backend).await;
        let source = AtomicU64::new(1);
        let policy = Policy::ttl(Duration::from_secs(60)).tags(["courses"]);
        let read = || {
            cache.get_or_load("course:1", policy.clone(), || async {
                Ok::<_, ()>(source.load(Ordering::SeqCst))
            })
        };
        assert_eq!(read().await, Ok(1));
        source.store(2, Ordering::SeqCst);
        cache.invalidator().tag("courses").await.unwrap();
        let forged = [
            "__tag:courses",
            "__lease:course:1",
            "#tag:courses",
            "}#tag:courses",
            "course:1}:lease",
        ];
        for k in forged {
            let _ = cache.set(k, &0u64, Duration::from_secs(60)).await;
            let _ = cache.incr(k).await;
            let _ = cache.del(k).await;
            let _ = cache.expire(k, Duration::from_millis(1)).await;
        }
        let _ = cache.del_pattern("*tag*").await;
        let _ = cache.del_pattern("__*").await;
        assert_eq!(
            read().await,
            Ok(2),
            "{backend:?}: a forged key resurrected a stale entry"
        );
    }
}

/// Issue 9 item 8: one miss, one load per process, also for callers that
/// read before the leader stored and join after its flight ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_load_per_miss_in_bursts() {
    for backend in tests::BACKENDS {
        let cache = cache_for(backend).await;
        let loads = Arc::new(AtomicU64::new(0));
        let mut twice = 0;
        for round in 0..200u64 {
            let per_key = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (cache, loads, per_key) = (cache.clone(), loads.clone(), per_key.clone());
                tasks.push(tokio::spawn(async move {
                    cache
                        .get_or_load(&format!("cold:{round}"), Duration::from_secs(60), || async move {
                            loads.fetch_add(1, Ordering::Relaxed);
                            per_key.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                            Ok::<_, ()>(round)
                        })
                        .await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap(), Ok(round));
            }
            if per_key.load(Ordering::Relaxed) > 1 {
                twice += 1;
            }
        }
        assert_eq!(
            twice, 0,
            "{backend:?}: {twice} of 200 cold keys were loaded more than once"
        );
        assert_eq!(loads.load(Ordering::Relaxed), 200);
    }
}

/// Issue 9 item 9: every setting is checked at `build()`: a bad one is a
/// `Config` error naming it, never a panic later; extreme TTLs behave alike
/// on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_checked_and_extremes_agree_across_backends() {
    let bad = [
        ("lease_ttl", Cache::builder().lease_ttl(Duration::MAX)),
        ("lease_ttl", Cache::builder().lease_ttl(Duration::ZERO)),
        ("operation_timeout", Cache::builder().operation_timeout(Duration::MAX)),
        ("operation_timeout", Cache::builder().operation_timeout(Duration::ZERO)),
        ("circuit_breaker", Cache::builder().circuit_breaker(3, Duration::MAX)),
        (
            "circuit_breaker",
            Cache::builder().circuit_breaker(0, Duration::from_secs(1)),
        ),
        ("ttl_jitter", Cache::builder().ttl_jitter(f64::NAN)),
        ("scan_batch", Cache::builder().scan_batch(0)),
        ("max_value_bytes", Cache::builder().max_value_bytes(0)),
        ("namespace", Cache::builder().namespace("a#b")),
    ];
    for (setting, builder) in bad {
        match builder.build().await {
            Err(CacheError::Config(msg)) => assert!(msg.contains(setting), "{msg} does not name {setting}"),
            other => panic!("{setting}: expected a Config error, got {other:?}"),
        }
    }
    for backend in tests::BACKENDS {
        let cache = cache_for(backend).await;
        cache.set("forever", &1u8, Duration::MAX).await.unwrap();
        assert_eq!(cache.get::<u8>("forever").await.unwrap(), Some(1), "{backend:?}");
        let v = cache
            .get_or_load("forever2", Duration::MAX, || async { Ok::<_, ()>(2u8) })
            .await;
        assert_eq!(v, Ok(2));
        assert_eq!(
            cache.get::<u8>("forever2").await.unwrap(),
            Some(2),
            "{backend:?}: Duration::MAX not stored"
        );
        let v = cache
            .get_or_load("never", Duration::ZERO, || async { Ok::<_, ()>(3u8) })
            .await;
        assert_eq!(v, Ok(3));
    }
}

/// Issue 9 item 12 (in one process, several handles): leases exclude and
/// never overwrite, so a hot key under constant misses from many handles is
/// stored again right after every invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_is_stored_again_after_every_invalidation() {
    let ns = unique_namespace("hot");
    let url = shared_redis().url();
    let mut handles = Vec::new();
    for _ in 0..8 {
        handles.push(handle(&url, &ns).await);
    }
    let loads = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for h in &handles {
        for _ in 0..4 {
            let (h, loads) = (h.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    h.get_or_load("hot", Duration::from_secs(60), || async {
                        loads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Ok::<_, ()>(1u8)
                    })
                    .await
                    .unwrap();
                }
            }));
        }
    }
    let mut invalidations = 0u64;
    while Instant::now() + Duration::from_millis(200) < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        handles[0].invalidator().key("hot").await.unwrap();
        invalidations += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loads = loads.load(Ordering::Relaxed);
    let (hits, misses) = handles.iter().fold((0, 0), |(h, m), c| {
        let s = c.stats().total;
        (h + s.hits, m + s.misses)
    });
    println!(
        "hot key, 8 handles x 4 tasks, {invalidations} invalidations: {loads} loads, hit ratio {:.3}",
        hits as f64 / (hits + misses) as f64
    );
    assert!(
        loads <= 2 * (invalidations + 1),
        "{loads} loads for {invalidations} invalidations: leases overwrite each other"
    );
}

fn soak_config(seconds: u64) -> SoakConfig {
    SoakConfig {
        keys: 1000,
        group_size: 10,
        tasks: 16,
        duration: Duration::from_secs(seconds),
        writes_per_mille: 100,
        ttl: Duration::from_secs(60),
        seed: 9,
        loader_delay: Duration::from_millis(2),
        near_settle: None,
    }
}

/// Issue 9 items 2 and 12: the multi-handle soak. 4 handles × 16 tasks, 1,000 keys, reads
/// and key/tag invalidations for 10 s against a versioned source of truth:
/// no read that starts after an invalidation returned sees an older value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_handle_soak_has_no_stale_reads() {
    let cache_server = RedisServer::start();
    let db = RedisServer::start();
    let ns = unique_namespace("soak");
    let mut caches = Vec::new();
    for _ in 0..4 {
        caches.push(handle(&cache_server.url(), &ns).await);
    }
    let cfg = SoakConfig {
        loader_delay: Duration::from_millis(20),
        ..soak_config(10)
    };
    let r = soak(&caches, &db.url(), cfg).await;
    println!("multi-handle soak: {}", r.line());
    assert!(
        r.reads > 10_000 && r.key_invalidations > 100 && r.tag_invalidations > 100,
        "{r:?}"
    );
    assert_eq!(r.stale, 0, "{r:?}");
}

/// Issue 9 item 1 under real eviction: `maxmemory` of a few MB with
/// `allkeys-lru` and with `allkeys-random`, tagged reads, tag and key
/// invalidations and filler writes for 10 s each: 0 stale reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_soak_has_no_stale_reads() {
    for policy in ["allkeys-lru", "allkeys-random"] {
        let cache_server = RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", policy]);
        let db = RedisServer::start();
        let ns = unique_namespace("evict");
        let caches = vec![
            handle(&cache_server.url(), &ns).await,
            handle(&cache_server.url(), &ns).await,
        ];
        let filler = {
            let cache = caches[0].clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let blob = vec![7u8; 8 * 1024];
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let _ = cache.set(&format!("filler:{i}"), &blob, Duration::from_secs(60)).await;
                    i += 1;
                    if i.is_multiple_of(64) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                i
            })
        };
        let cfg = SoakConfig {
            tasks: 8,
            ..soak_config(10)
        };
        let r = soak(&caches, &db.url(), cfg).await;
        let fillers = filler.await.unwrap();
        let evicted = cache_server.evicted_keys().await;
        println!(
            "eviction soak, {policy}: {}, {fillers} filler writes, {evicted} keys evicted",
            r.line()
        );
        assert!(
            evicted > 1000,
            "{policy}: the soak must make Redis evict ({evicted} evicted)"
        );
        assert!(r.reads > 5_000 && r.tag_invalidations > 50, "{r:?}");
        assert_eq!(r.stale, 0, "{policy}: {r:?}");
    }
}

/// Issue 15 item 7: tag versions expire a little after the longest entry
/// stored under them, so distinct tags (`article:{uuid}`, …) do not pile up
/// in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_versions_do_not_accumulate() {
    let server = shared_redis();
    let ns = unique_namespace("tagttl");
    let cache = Cache::builder()
        .namespace(&ns)
        .redis(&server.url())
        .lease_ttl(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    for i in 0..200 {
        let policy = Policy::ttl(Duration::from_millis(200)).tags([format!("article:{i}")]);
        let v = cache
            .get_or_load(&format!("a:{i}"), policy, || async { Ok::<_, ()>(i) })
            .await;
        assert_eq!(v, Ok(i));
    }
    let count = |server: &'static RedisServer| {
        let pattern = format!("{{{ns}#tag:*");
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut server.raw().await)
                .await
                .unwrap();
            keys.len()
        }
    };
    assert_eq!(count(server).await, 200, "one version per distinct tag");
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        count(server).await,
        0,
        "tag versions outlived every entry stored under them by far"
    );
}
