//! A miss in two round trips (issue 12): a function whose recent calls
//! mostly missed makes its first read the read-or-lease script, so a miss is
//! `EVALSHA` (read-or-lease) and `EVALSHA` (store-if-leased) instead of a
//! `GET` and both; a function that mostly hits keeps the `GET`. Single-flight and
//! the fill lease must hold in that mode too. Every test that counts Redis
//! commands has its own private `redis-server` and counts them with `INFO
//! commandstats`, which counts the commands the scripts run too: an
//! untagged miss's two scripts run `GET` ×3, `SET` ×2 and `DEL` ×1, a hit's
//! read-or-lease one `GET`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy, Ttl};
use tests::RedisServer;

/// Data commands (`get`, `evalsha`, …) run by `f`, from `INFO commandstats`.
async fn commands<R>(server: &RedisServer, f: impl Future<Output = R>) -> (R, BTreeMap<String, u64>) {
    async fn snapshot(server: &RedisServer) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut server.raw().await)
            .await
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }
    let before = snapshot(server).await;
    let r = f.await;
    let after = snapshot(server).await;
    let delta = after
        .into_iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "ping" | "hello") && !name.starts_with("client"))
        .filter_map(|(name, n)| {
            let d = n - before.get(&name).copied().unwrap_or(0);
            (d > 0).then_some((name, d))
        })
        .collect();
    (r, delta)
}

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

async fn redis_cache(server: &RedisServer, ns: &str) -> Cache {
    let cache = Cache::builder()
        .namespace(ns)
        .redis(&server.url())
        .ttl_jitter(0.0)
        .build()
        .await
        .expect("cache");
    cache.set("warm-up", &0u8, Ttl::SHORT).await.expect("redis is up");
    // Loads the scripts (a first EVALSHA is refused, then loaded), under a
    // name of its own.
    let loaded = cache
        .get_or_load("scripts", Policy::ttl(Ttl::SHORT).name("scripts"), || async {
            Ok::<_, ()>(0u8)
        })
        .await;
    assert_eq!(loaded, Ok(0));
    cache
}

const POLICY: &str = "mostly_misses";

/// How long the tests' loaders take (which sets the fill-wait cap).
const LOAD: Duration = Duration::from_millis(20);

/// Makes `POLICY`'s recent calls misses (distinct keys).
async fn miss_many(cache: &Cache, prefix: &str) {
    for i in 0..100 {
        let v = cache
            .get_or_load(
                &format!("{prefix}{i}"),
                Policy::ttl(Ttl::SHORT).name(POLICY),
                || async {
                    tokio::time::sleep(LOAD).await;
                    Ok::<_, ()>(i)
                },
            )
            .await;
        assert_eq!(v, Ok(i));
    }
}

#[tokio::test]
async fn a_function_that_mostly_misses_misses_in_two_round_trips_and_back() {
    let server = RedisServer::start();
    let cache = redis_cache(&server, "rt2").await;
    let policy = || Policy::ttl(Ttl::SHORT).name(POLICY);

    // Mostly hits (a fresh function): a miss is GET + read-or-lease + store.
    let (v, run) = commands(&server, async {
        cache
            .get_or_load("first", policy(), || async { Ok::<_, ()>(1u32) })
            .await
    })
    .await;
    assert_eq!(v, Ok(1));
    let miss_in_three = calls(&[("get", 4), ("set", 2), ("del", 1), ("evalsha", 2)]);
    assert_eq!(
        run, miss_in_three,
        "a miss of a function that hits: GET, then both scripts"
    );

    miss_many(&cache, "warm").await;
    let (v, run) = commands(&server, async {
        cache.get_or_load("k", policy(), || async { Ok::<_, ()>(7u32) }).await
    })
    .await;
    assert_eq!(v, Ok(7));
    let miss_in_two = calls(&[("get", 3), ("set", 2), ("del", 1), ("evalsha", 2)]);
    assert_eq!(
        run, miss_in_two,
        "a miss of a function that mostly misses: both scripts only"
    );
    let (v, run) = commands(&server, async {
        cache.get_or_load("k", policy(), || async { Err::<u32, _>(()) }).await
    })
    .await;
    assert_eq!(v, Ok(7), "stored by the miss");
    assert_eq!(
        run,
        calls(&[("get", 1), ("evalsha", 1)]),
        "a hit while most calls miss: one script call"
    );

    // Once calls mostly hit again, hits are plain GETs.
    for _ in 0..100 {
        let v = cache.get_or_load("k", policy(), || async { Err::<u32, _>(()) }).await;
        assert_eq!(v, Ok(7));
    }
    let (v, run) = commands(&server, async {
        cache.get_or_load("k", policy(), || async { Err::<u32, _>(()) }).await
    })
    .await;
    assert_eq!(v, Ok(7));
    assert_eq!(run, calls(&[("get", 1)]), "a hit of a function that mostly hits");

    // Other functions keep their own mode.
    let (_, run) = commands(&server, async {
        cache
            .get_or_load("other", Policy::ttl(Ttl::SHORT).name("other"), || async {
                Ok::<_, ()>(1u8)
            })
            .await
    })
    .await;
    assert_eq!(run, miss_in_three);
}

/// Concurrent misses of one key in one process, each of whose first reads
/// may take the lease: the loader runs once, every caller gets its value,
/// no lease is left behind, and nobody waits for a lease to expire.
#[tokio::test]
async fn concurrent_first_reads_that_lease_still_load_once() {
    let server = RedisServer::start();
    let cache = redis_cache(&server, "rt2c").await;
    miss_many(&cache, "warm").await;
    for round in 0..20u32 {
        let loads = Arc::new(AtomicU64::new(0));
        let key = format!("hot{round}");
        let start = Instant::now();
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads, key) = (cache.clone(), loads.clone(), key.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(&key, Policy::ttl(Ttl::SHORT).name(POLICY), || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(LOAD).await;
                            Ok::<_, ()>(round)
                        })
                        .await
                })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), Ok(round));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "round {round}: one load");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "round {round}: took {:?} (a lease was waited out)",
            start.elapsed()
        );
        let leases: Vec<String> = redis::cmd("KEYS")
            .arg("*:lease")
            .query_async(&mut server.raw().await)
            .await
            .unwrap();
        assert!(leases.is_empty(), "round {round}: leases left: {leases:?}");
    }
}

/// Two processes (cache handles) missing one key, both in read-or-lease
/// mode: one loads, the other waits for its value behind the fill lease.
#[tokio::test]
async fn two_processes_that_lease_on_first_read_load_once() {
    let server = RedisServer::start();
    let (a, b) = (redis_cache(&server, "rt2p").await, redis_cache(&server, "rt2p").await);
    miss_many(&a, "warm-a").await;
    miss_many(&b, "warm-b").await;
    for round in 0..10u32 {
        let loads = Arc::new(AtomicU64::new(0));
        let key = format!("shared{round}");
        let calls: Vec<_> = [&a, &b]
            .into_iter()
            .flat_map(|c| std::iter::repeat_n(c.clone(), 4))
            .map(|cache| {
                let (loads, key) = (loads.clone(), key.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(&key, Policy::ttl(Ttl::SHORT).name(POLICY), || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(LOAD).await;
                            Ok::<_, ()>(round)
                        })
                        .await
                })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), Ok(round));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "round {round}: one load across both");
    }
}
