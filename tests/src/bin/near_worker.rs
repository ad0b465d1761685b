//! One process of the near-cache fleet test (`tests/near_cache.rs`): builds
//! its own `Cache` with a near cache on the given Redis, reads and updates a
//! key set shared with the other processes, and prints one result line.
//!
//! ```text
//! near_worker <redis-url> <namespace> <secs> <index> <processes> <eps-ms>
//! ```
//!
//! The "database" lives in the same Redis under keys outside the cache's
//! namespace: `nearver:{ns}:{k}` is row `k`'s version (INCR), and
//! `nearret:{ns}:{k}:{v}` the wall-clock time (µs since the epoch, one clock
//! for every process of the machine) at which the invalidation that made
//! version `v` current returned. Process `index` writes the keys
//! `k % processes == index`, one write at a time, so the return times of a
//! key's versions grow with the version. A read that started at `s` and
//! returned version `g` is stale when the invalidation of version `g + 1`
//! had returned at `t` with `s >= t + eps`.
//!
//! Writes are by key, by tag (all of the process's keys), by pattern and
//! by `Cache::del`; each is followed by a read in the writing process, which
//! must see it at once.
//!
//! Output: `reads= stale= own_stale= writes= near_hits= hits= live= late_max_us=`
//! where `own_stale` counts this process's reads right after its own
//! invalidation that did not see it, and `late_max_us` is the longest time
//! from an invalidation's return to the start of a read that still saw the
//! old value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_runtime::{Cache, Policy};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tests::fleet::Rng;

const KEYS: u64 = 60;
const READERS: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    key: u64,
    version: u64,
    note: String,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn db_get(db: &mut MultiplexedConnection, key: &str) -> Option<u64> {
    redis::cmd("GET").arg(key).query_async(db).await.expect("database GET")
}

fn policy(k: u64, processes: u64) -> Policy {
    Policy::ttl(Duration::from_secs(60))
        .tags([format!("owner:{}", k % processes)])
        .name("near")
}

async fn read(cache: &Cache, db: &MultiplexedConnection, ns: &str, k: u64, processes: u64) -> Row {
    let mut db = db.clone();
    let ns = ns.to_owned();
    cache
        .get_or_load_cloned(&format!("row:{k}"), policy(k, processes), || async move {
            let version = db_get(&mut db, &format!("nearver:{ns}:{k}")).await.unwrap_or(0);
            // The window in which an invalidation can overtake this load.
            tokio::time::sleep(Duration::from_micros(200)).await;
            Ok::<_, std::convert::Infallible>(Row {
                key: k,
                version,
                note: format!("row {k} at version {version}"),
            })
        })
        .await
        .unwrap_or_else(|e| match e {})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: near_worker <redis-url> <namespace> <secs> <index> <processes> <eps-ms>";
    if args.len() != 7 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let (url, ns) = (args[1].clone(), args[2].clone());
    let parse = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    let (secs, index, processes, eps_ms) = (parse(3), parse(4), parse(5), parse(6));
    if processes == 0 || index >= processes || secs == 0 || secs > 60 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let eps = Duration::from_millis(eps_ms);
    let cache = Cache::builder()
        .namespace(&ns)
        .redis(&url)
        .ttl_jitter(0.0)
        .near_cache(32 * 1024 * 1024)
        .near_cache_max_staleness(eps)
        .build()
        .await
        .expect("cache");
    let db = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("database connection");

    // Reported, not required: the parent asserts near hits.
    let live_by = Instant::now() + Duration::from_secs(5);
    while !cache.near_cache_live() && Instant::now() < live_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = cache.near_cache_live();

    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = Arc::new(AtomicBool::new(false));
    let (reads, stale, late_max) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut readers = Vec::new();
    for r in 0..READERS {
        let (cache, db, ns, done) = (cache.clone(), db.clone(), ns.clone(), done.clone());
        let (reads, stale, late_max) = (reads.clone(), stale.clone(), late_max.clone());
        readers.push(tokio::spawn(async move {
            let mut rng = Rng::new(1 + index * 100 + r as u64);
            let mut check = db.clone();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) && n < 2_000_000 {
                n += 1;
                let k = rng.below(KEYS);
                let s = now_us();
                let got = read(&cache, &db, &ns, k, processes).await;
                assert_eq!(got.key, k, "a row of another key");
                reads.fetch_add(1, Ordering::Relaxed);
                let next = format!("nearret:{ns}:{k}:{}", got.version + 1);
                if let Some(t) = db_get(&mut check, &next).await
                    && s > t
                {
                    late_max.fetch_max(s - t, Ordering::Relaxed);
                    if s >= t + eps.as_micros() as u64 {
                        let c = stale.fetch_add(1, Ordering::Relaxed);
                        if c < 3 {
                            eprintln!(
                                "stale read: row:{k} gave version {} in process {index}, a read that started {} µs after the invalidation of version {} returned",
                                got.version,
                                s - t,
                                got.version + 1
                            );
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }

    // This process's writer: its own keys, one write at a time.
    let mut rng = Rng::new(7 + index);
    let mut wdb = db.clone();
    let inv = cache.invalidator();
    let (mut writes, mut own_stale) = (0u64, 0u64);
    let mine: Vec<u64> = (0..KEYS).filter(|k| k % processes == index).collect();
    while Instant::now() < deadline && writes < 100_000 {
        let op = rng.below(10);
        let changed: Vec<u64> = if op < 2 {
            mine.clone()
        } else {
            vec![mine[rng.below(mine.len() as u64) as usize]]
        };
        // Put the old rows in this process's near tier first (a row enters
        // it on a Redis hit: the second read of a just-loaded row).
        for _ in 0..2 {
            for &k in &changed {
                read(&cache, &db, &ns, k, processes).await;
            }
        }
        let mut pipe = redis::pipe();
        for k in &changed {
            pipe.cmd("INCR").arg(format!("nearver:{ns}:{k}"));
        }
        let versions: Vec<u64> = pipe.query_async(&mut wdb).await.expect("INCR");
        let ok = match op {
            0 | 1 => inv.tag(&format!("owner:{index}")).await.is_ok(),
            2 => inv.pattern(&format!("row:{}", changed[0])).await.is_ok(),
            3 => cache.del(&format!("row:{}", changed[0])).await.is_ok(),
            _ => inv.key(&format!("row:{}", changed[0])).await.is_ok(),
        };
        if !ok {
            eprintln!("an invalidation failed in process {index}");
            std::process::exit(1);
        }
        let t = now_us();
        writes += 1;
        // Its own invalidation is seen at once.
        for (&k, &v) in changed.iter().zip(&versions) {
            let got = read(&cache, &db, &ns, k, processes).await;
            if got.version < v {
                own_stale += 1;
                if own_stale <= 3 {
                    eprintln!(
                        "own invalidation not seen: row:{k} gave {} right after version {v}'s invalidation returned in process {index}",
                        got.version
                    );
                }
            }
        }
        // Then publish the return time: the own read comes first, before
        // Redis's push is likely to have reached this process's tier.
        let mut pipe = redis::pipe();
        for (k, v) in changed.iter().zip(&versions) {
            pipe.cmd("SET")
                .arg(format!("nearret:{ns}:{k}:{v}"))
                .arg(t)
                .arg("EX")
                .arg(120)
                .ignore();
        }
        let () = pipe.query_async(&mut wdb).await.expect("SET return times");
        tokio::time::sleep(Duration::from_micros(500 + rng.below(2500))).await;
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        if r.await.is_err() {
            eprintln!("a reader panicked in process {index}");
            std::process::exit(1);
        }
    }
    let stats = cache.stats().total;
    println!(
        "reads={} stale={} own_stale={} writes={writes} near_hits={} hits={} live={} late_max_us={}",
        reads.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed),
        own_stale,
        stats.near_hits,
        stats.hits,
        u64::from(live),
        late_max.load(Ordering::Relaxed),
    );
}
