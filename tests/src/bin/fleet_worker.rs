//! One "process of the fleet" for the multi-process tests in
//! `tests/fleet_processes.rs`: builds its own `Cache` on the given Redis and
//! runs one workload, then prints one result line on stdout.
//!
//! ```text
//! fleet_worker soak <cache-url> <db-url> <namespace> <secs> <seed>
//! fleet_worker hot  <cache-url> <db-url> <namespace> <secs> <invalidate-ms|0>
//! fleet_worker hold <cache-url> <db-url> <namespace> <secs> 0
//! ```
//!
//! `hold` misses key `held` and loads it for `secs` (counting the load in
//! the database's `loads`): it holds the fill lease until it is killed.

use std::time::Duration;

use cache_runtime::Cache;
use tests::fleet::{SoakConfig, hot_key, soak};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: fleet_worker soak|hot|hold <cache-url> <db-url> <namespace> <secs> <seed|invalidate-ms>";
    if args.len() != 7 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let (mode, cache_url, db_url, ns) = (&args[1], &args[2], &args[3], &args[4]);
    let secs: u64 = args[5].parse().expect("secs");
    let last: u64 = args[6].parse().expect("seed or interval");
    let cache = Cache::builder()
        .namespace(ns)
        .redis(cache_url)
        .ttl_jitter(0.0)
        .build()
        .await
        .expect("cache");
    match mode.as_str() {
        "soak" => {
            let cfg = SoakConfig {
                keys: 1000,
                group_size: 10,
                tasks: 16,
                duration: Duration::from_secs(secs),
                writes_per_mille: 100,
                ttl: Duration::from_secs(60),
                seed: last,
                loader_delay: Duration::from_millis(20),
                near_settle: None,
            };
            let r = soak(&[cache], db_url, cfg).await;
            println!("{}", r.line());
        }
        "hot" => {
            let every = (last > 0).then(|| Duration::from_millis(last));
            let r = hot_key(
                cache,
                db_url,
                16,
                Duration::from_secs(1),
                Duration::from_secs(secs),
                every,
            )
            .await;
            let mut lat = r.latencies_us.clone();
            lat.sort_unstable();
            println!(
                "calls={} hits={} invalidations={} stale={} p50_us={} p99_us={} max_us={}",
                r.calls,
                r.hits,
                r.invalidations,
                r.stale,
                tests::fleet::quantile(&lat, 0.5),
                tests::fleet::quantile(&lat, 0.99),
                lat.last().copied().unwrap_or(0)
            );
        }
        "hold" => {
            let mut db = redis::Client::open(db_url.as_str())
                .expect("database url")
                .get_multiplexed_async_connection()
                .await
                .expect("database connection");
            let _ = cache
                .get_or_load("held", Duration::from_secs(60), || async move {
                    let _: i64 = redis::cmd("INCR").arg("loads").query_async(&mut db).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    Ok::<u64, std::convert::Infallible>(0)
                })
                .await;
            println!("released");
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
