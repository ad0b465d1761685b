//! Redis Cluster and Sentinel under failure (issue 10): a private 6-node
//! cluster (or a Sentinel set-up) per test, failed over or killed while the
//! cache is under load. One test at a time: they share two cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};
use tests::fleet::{SoakConfig, soak};
use tests::{RedisCluster, RedisServer, SentinelSetup, key_slot, unique_namespace};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TIMEOUT: Duration = Duration::from_millis(250);

async fn cluster_cache(cluster: &RedisCluster, ns: &str) -> Cache {
    Cache::builder()
        .namespace(ns)
        .redis_cluster(cluster.seed_urls())
        .operation_timeout(TIMEOUT)
        .ttl_jitter(0.0)
        .build()
        .await
        .expect("cluster cache")
}

fn config(seconds: u64) -> SoakConfig {
    SoakConfig {
        keys: 1000,
        group_size: 10,
        tasks: 16,
        duration: Duration::from_secs(seconds),
        writes_per_mille: 100,
        ttl: Duration::from_secs(60),
        seed: 5,
        loader_delay: Duration::from_millis(5),
        near_settle: None,
    }
}

/// `CLUSTER FAILOVER` of every shard, one after the other, while 2 handles ×
/// 16 tasks read and invalidate: no read that started after an invalidation
/// returned sees an older value, and every read is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_under_load_serves_nothing_stale() {
    let _serial = SERIAL.lock().await;
    let cluster = Arc::new(RedisCluster::start());
    let db = RedisServer::start();
    let ns = unique_namespace("cfo");
    let caches = vec![cluster_cache(&cluster, &ns).await, cluster_cache(&cluster, &ns).await];
    let failovers = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(2));
            cluster.fail_over_every_shard()
        })
    };
    let r = soak(&caches, &db.url(), config(12)).await;
    let done = failovers.await.unwrap();
    println!("cluster failover under load: {done} failovers, {}", r.line());
    assert!(done >= 3, "every shard failed over once ({done})");
    assert!(r.reads > 2_000 && r.tag_invalidations > 50, "{r:?}");
    assert_eq!(r.stale, 0, "{r:?}");
    let s = caches[0].stats().total;
    assert!(s.hits > 0, "{s:?}");
}

/// `kill -9` of a primary: calls on its slots are answered by their loaders
/// within one timeout, keys of other shards keep hitting, and the killed
/// shard caches again soon after its replica took over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_bypasses_only_its_slots() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    let cache = cluster_cache(&cluster, &unique_namespace("ckill")).await;
    // A key in the middle of the first shard's first range, another in the
    // middle of a different shard's: away from breaker-group boundaries.
    let shards = cluster.shards();
    let pick = |shard: &tests::cluster::Shard| -> String {
        let (lo, hi) = shard.slots[0];
        let mid = (u32::from(lo) + u32::from(hi)) / 2;
        (0..200_000u32)
            .map(|i| format!("k{i}"))
            .find(|k| {
                let s = u32::from(key_slot(cache_runtime::__private::full_key(&cache, k)));
                s.abs_diff(mid) < 200
            })
            .expect("a key near the middle of the range")
    };
    let (dead_key, live_key) = (pick(&shards[0]), pick(&shards[1]));
    let loads = Arc::new(AtomicU64::new(0));
    let get = |key: String, name: &'static str| {
        let (cache, loads) = (cache.clone(), loads.clone());
        async move {
            let start = Instant::now();
            let len = key.len();
            let v = cache
                .get_or_load(&key, Policy::ttl(Duration::from_secs(60)).name(name), || async move {
                    loads.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, ()>(len)
                })
                .await;
            (v, start.elapsed())
        }
    };
    assert!(get(dead_key.clone(), "dead").await.0.is_ok());
    assert!(get(live_key.clone(), "live").await.0.is_ok());
    let killed = cluster.kill_primary_of_slot(key_slot(cache_runtime::__private::full_key(&cache, &dead_key)));
    let killed_at = Instant::now();
    let mut worst = Duration::ZERO;
    let mut cached_again = None;
    let deadline = killed_at + cluster.node_timeout() + Duration::from_secs(8);
    while Instant::now() < deadline && cached_again.is_none() {
        let ((d, dt), (l, lt)) = tokio::join!(get(dead_key.clone(), "dead"), get(live_key.clone(), "live"));
        assert_eq!(d, Ok(dead_key.len()), "no error reaches the caller");
        assert_eq!(l, Ok(live_key.len()));
        worst = worst.max(dt).max(lt);
        if cache.get::<usize>(&dead_key).await.ok().flatten().is_some()
            && killed_at.elapsed() > Duration::from_millis(100)
        {
            cached_again = Some(killed_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = cache.stats();
    let (dead, live) = (&stats.per_function["dead"], &stats.per_function["live"]);
    println!(
        "killed primary {killed}: worst call {worst:?}; dead shard {dead:?}; live shard {live:?}; cached again after {cached_again:?}"
    );
    assert!(
        worst < TIMEOUT * 2 + Duration::from_millis(100),
        "a call took {worst:?}"
    );
    assert_eq!(live.misses, 1, "the other shard kept hitting: {live:?}");
    assert!(dead.bypassed > 0, "the dead shard's breaker opened: {dead:?}");
    assert_eq!(
        live.bypassed + live.backend_errors,
        0,
        "the other shard was never bypassed: {live:?}"
    );
    let back = cached_again.expect("the killed shard never cached again");
    assert!(
        back <= cluster.node_timeout() + Duration::from_secs(4),
        "caching came back after {back:?} (node timeout {:?})",
        cluster.node_timeout()
    );
}

/// `SENTINEL FAILOVER` under load: every call answered, nothing stale, and
/// the cache writes to the new primary afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_under_load() {
    let _serial = SERIAL.lock().await;
    let setup = Arc::new(SentinelSetup::start());
    let db = RedisServer::start();
    let ns = unique_namespace("sfo");
    let cache = Cache::builder()
        .namespace(&ns)
        .redis_sentinel(setup.sentinel_urls(), setup.master_name())
        .operation_timeout(TIMEOUT)
        .build()
        .await
        .expect("sentinel cache");
    let old = setup.primary_port();
    let failover = {
        let setup = setup.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(2));
            setup.failover()
        })
    };
    let cfg = SoakConfig {
        keys: 200,
        ..config(10)
    };
    let r = soak(std::slice::from_ref(&cache), &db.url(), cfg).await;
    let new = failover.await.unwrap();
    println!("sentinel failover {old} -> {new} under load: {}", r.line());
    assert_ne!(old, new);
    assert_eq!(r.stale, 0, "{r:?}");
    // Caching resumed on the new primary.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut on_new = false;
    while Instant::now() < deadline && !on_new {
        let _ = cache.set("probe", &1u8, Duration::from_secs(60)).await;
        let mut raw = redis::Client::open(format!("redis://127.0.0.1:{new}/"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let exists: bool = redis::cmd("EXISTS")
            .arg(cache_runtime::__private::full_key(&cache, "probe"))
            .query_async(&mut raw)
            .await
            .unwrap();
        on_new = exists;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(on_new, "the cache never wrote to the new primary {new}");
}

/// A frozen primary (SIGSTOP, like a partition): calls on its slots cost at
/// most one timeout, and once its replica took over the cache finds the new
/// primary within seconds (redis-rs alone keeps retrying the frozen
/// connection for tens of seconds; the cache provokes a slot-map refresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_is_left_behind_soon_after_its_failover() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    let cache = cluster_cache(&cluster, &unique_namespace("cfrz")).await;
    let key = "frozen:1";
    let load = || cache.get_or_load(key, Duration::from_secs(60), || async { Ok::<_, ()>(1u8) });
    assert_eq!(load().await, Ok(1));
    cluster.wait_replicated(Duration::from_secs(5));
    let port = cluster.primary_of_slot(key_slot(cache_runtime::__private::full_key(&cache, key)));
    cluster.pause(port);
    let frozen_at = Instant::now();
    let mut worst = Duration::ZERO;
    let mut back = None;
    let deadline = frozen_at + cluster.node_timeout() + Duration::from_secs(10);
    while Instant::now() < deadline && back.is_none() {
        let t = Instant::now();
        assert_eq!(load().await, Ok(1), "no error reaches the caller");
        worst = worst.max(t.elapsed());
        if frozen_at.elapsed() > Duration::from_millis(300) && cache.get::<u8>(key).await.ok().flatten().is_some() {
            back = Some(frozen_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.resume(port);
    println!("frozen primary {port}: worst call {worst:?}, caching back after {back:?}");
    assert!(
        worst < TIMEOUT * 2 + Duration::from_millis(150),
        "a call took {worst:?}"
    );
    let back = back.expect("the frozen shard never cached again");
    assert!(
        back < cluster.node_timeout() + Duration::from_secs(6),
        "back after {back:?}"
    );
}
