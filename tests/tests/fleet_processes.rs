//! The fleet as real OS processes (issue 9): the `fleet_worker` binary of
//! this crate, started several times against one private redis-server, each
//! with its own `Cache`. One test at a time: they measure a fleet's
//! behaviour and share two cores.

use std::process::{Command, Output};

use std::time::Duration;

use cache_runtime::Cache;
use tests::fleet::SoakReport;
use tests::{RedisServer, unique_namespace};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `n` workers with these arguments (after the mode) and returns
/// their stdout lines; a failing worker fails the test with its stderr.
fn run_workers(n: usize, args: impl Fn(usize) -> Vec<String>) -> Vec<String> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_fleet_worker"))
                .args(args(i))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start fleet_worker")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let Output { status, stdout, stderr } = c.wait_with_output().expect("wait for fleet_worker");
            let err = String::from_utf8_lossy(&stderr);
            assert!(status.success(), "fleet_worker failed: {err}");
            if !err.trim().is_empty() {
                eprintln!("{err}");
            }
            String::from_utf8_lossy(&stdout).trim().to_owned()
        })
        .collect()
}

/// Issue 9 items 1–2 across processes: 3 processes × 16 tasks, 1,000 keys,
/// reads and key/tag invalidations for 10 s against a versioned source of
/// truth: no read that starts after an invalidation returned (in any
/// process) sees an older value.
#[test]
fn three_processes_have_no_stale_reads() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cache = RedisServer::start();
    let db = RedisServer::start();
    let ns = unique_namespace("procs");
    let lines = run_workers(3, |i| {
        ["soak", &cache.url(), &db.url(), &ns, "10", &(i + 1).to_string()]
            .map(str::to_owned)
            .to_vec()
    });
    let mut total = SoakReport::default();
    for l in &lines {
        total.add(&SoakReport::parse(l).unwrap_or_else(|| panic!("worker said {l:?}")));
    }
    println!("3 processes: {}", total.line());
    assert!(
        total.reads > 5_000 && total.key_invalidations > 100 && total.tag_invalidations > 100,
        "{total:?}"
    );
    assert_eq!(total.stale, 0, "{total:?}");
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// Issue 9 item 12: 8 processes × 16 tasks on one hot key (TTL 1 s, no
/// jitter, 50 ms loader) for 10 s, without and with an invalidation every
/// 200 ms: leases exclude instead of overwriting each other, so the key is
/// stored again after every expiry and invalidation.
#[test]
fn eight_processes_keep_a_hot_key_cached() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // HOT_KEY_PROCESSES=1,2,4,8 measures several fleet sizes (BENCHMARKS.md).
    let sizes: Vec<usize> = std::env::var("HOT_KEY_PROCESSES")
        .ok()
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![8]);
    for (processes, invalidate_ms) in sizes.iter().flat_map(|&p| [(p, 0u64), (p, 200)]) {
        let cache = RedisServer::start();
        let db = RedisServer::start();
        let ns = unique_namespace("hotp");
        let secs = 10u64;
        let lines = run_workers(processes, |i| {
            // One process invalidates (when asked).
            let every = if i == 0 { invalidate_ms } else { 0 };
            [
                "hot",
                &cache.url(),
                &db.url(),
                &ns,
                &secs.to_string(),
                &every.to_string(),
            ]
            .map(str::to_owned)
            .to_vec()
        });
        let mut raw = redis::Client::open(db.url()).unwrap().get_connection().unwrap();
        let loads: u64 = redis::cmd("GET").arg("loads").query(&mut raw).unwrap();
        let (calls, hits, stale, invalidations) = lines.iter().fold((0, 0, 0, 0), |(c, h, s, i), l| {
            (
                c + field(l, "calls"),
                h + field(l, "hits"),
                s + field(l, "stale"),
                i + field(l, "invalidations"),
            )
        });
        let p99 = lines.iter().map(|l| field(l, "p99_us")).max().unwrap_or(0);
        let p50 = lines.iter().map(|l| field(l, "p50_us")).max().unwrap_or(0);
        let max = lines.iter().map(|l| field(l, "max_us")).max().unwrap_or(0);
        println!(
            "  worst process p50 {:.2} ms, max {:.1} ms",
            p50 as f64 / 1000.0,
            max as f64 / 1000.0
        );
        let expiries = secs; // TTL 1 s
        let events = expiries + invalidations;
        println!(
            "{processes} processes x 16 tasks, invalidation every {invalidate_ms} ms: {calls} calls, {loads} loads for {expiries} expiries + {invalidations} invalidations ({:.2} loads per event), hit ratio {:.3}, worst process p99 {:.1} ms, {stale} stale",
            loads as f64 / events as f64,
            hits as f64 / calls as f64,
            p99 as f64 / 1000.0
        );
        assert_eq!(stale, 0, "a value older than a returned invalidation was served");
        assert!(
            loads <= 2 * (events + 1),
            "{loads} loads for {events} expiries and invalidations: the key is not kept cached"
        );
        assert!(hits as f64 >= 0.5 * calls as f64, "hit ratio {hits}/{calls}");
    }
}

#[test]
fn the_worker_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_fleet_worker"))
        .arg("nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

/// Issue 12: `kill -9` of the process holding a key's fill lease. The other
/// processes' callers wait at most the fill-wait cap, then one takes the
/// lease over and stores: at most 2 loads in all (the dead one and one),
/// and nobody waits for the lease to expire (30 s).
#[test]
fn a_killed_lease_holder_costs_a_bounded_wait() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cache_server = RedisServer::start();
    let db = RedisServer::start();
    let ns = unique_namespace("hold");
    let mut holder = Command::new(env!("CARGO_BIN_EXE_fleet_worker"))
        .args(["hold", &cache_server.url(), &db.url(), &ns, "60", "0"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start fleet_worker hold");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let caches = [
            Cache::builder()
                .namespace(&ns)
                .redis(&cache_server.url())
                .build()
                .await
                .unwrap(),
            Cache::builder()
                .namespace(&ns)
                .redis(&cache_server.url())
                .build()
                .await
                .unwrap(),
        ];
        let mut raw = cache_server.raw().await;
        let lease = format!("{}:lease", cache_runtime::__private::full_key(&caches[0], "held"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !redis::cmd("EXISTS")
            .arg(&lease)
            .query_async::<bool>(&mut raw)
            .await
            .unwrap()
        {
            assert!(std::time::Instant::now() < deadline, "the holder never took the lease");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        holder.kill().expect("kill -9 the holder");
        holder.wait().unwrap();
        let db_url = db.url();
        let start = std::time::Instant::now();
        let calls: Vec<_> = caches
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.clone(), 4))
            .map(|cache| {
                let db_url = db_url.clone();
                tokio::spawn(async move {
                    let t = std::time::Instant::now();
                    let v = cache
                        .get_or_load("held", Duration::from_secs(60), || async move {
                            let mut db = redis::Client::open(db_url.as_str())
                                .unwrap()
                                .get_multiplexed_async_connection()
                                .await
                                .unwrap();
                            let _: i64 = redis::cmd("INCR").arg("loads").query_async(&mut db).await.unwrap();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<u64, ()>(7)
                        })
                        .await;
                    (v, t.elapsed())
                })
            })
            .collect();
        let mut worst = Duration::ZERO;
        for c in calls {
            let (v, took) = c.await.unwrap();
            assert_eq!(v, Ok(7));
            worst = worst.max(took);
        }
        let mut dbc = redis::Client::open(db.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let loads: u64 = redis::cmd("GET").arg("loads").query_async(&mut dbc).await.unwrap();
        println!(
            "killed lease holder: 8 callers done in {:?} (worst {worst:?}), {loads} loads in all",
            start.elapsed()
        );
        assert!(
            worst < Duration::from_secs(2),
            "waited {worst:?}: the dead holder's lease was waited out"
        );
        assert!(loads <= 2, "{loads} loads: the dead holder's and one more at most");
        assert_eq!(
            caches[0].get::<u64>("held").await.unwrap(),
            Some(7),
            "stored by the taker"
        );
    });
}
