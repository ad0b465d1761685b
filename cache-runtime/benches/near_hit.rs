//! A near-cache hit (issue 11) against its two yardsticks, in one run, on
//! the same ~1 KB value (a course-details page):
//!
//! - `near_hit/get_or_load_cloned`: a hit in the near tier of a cache on a
//!   private `redis-server` (started here on a free loopback port);
//! - `near_hit/cached_fn`: the same through a `#[cached]` method (which
//!   uses the near tier when its value type is `Clone + Send + Sync`);
//! - `near_hit/moka_get_clone`: a moka `sync::Cache` `get` (which clones);
//! - `near_hit/raw_get_decode`: a hand-written redis-rs `GET` + MessagePack
//!   decode of the same value on the same server.
//!
//! Targets: a near hit at most 1.5× moka's get + clone, and at least 30×
//! faster than the raw GET + decode (the ratios are printed at the end).
//! `near_hit_64_tasks/*` measures throughput: 64 tokio tasks on a two-worker
//! runtime sharing the gets, time per get.
//!
//! `cargo bench -p cache-runtime --bench near_hit`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy, Ttl, cached};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod common;

use common::{CourseDetails, course_details};

#[derive(Debug)]
struct DbError;

#[derive(Debug, Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "course:{id}", ttl = LONG, cache = self.cache)]
    async fn course(&self, id: i64) -> Result<CourseDetails, DbError> {
        Ok(course_details(id))
    }
}

const TASKS: u64 = 64;

/// Runs `iters` calls of `get` spread over 64 tasks; the elapsed time.
async fn spread<F, Fut>(iters: u64, get: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = iters.div_ceil(TASKS);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let get = get.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    get().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    start.elapsed()
}

fn near_hit(c: &mut Criterion) {
    let server = common::harness::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let value = course_details(1);
    let (near, raw_conn) = rt.block_on(async {
        let near = Cache::builder()
            .namespace("bench")
            .redis(&server.url())
            .near_cache(64 * 1024 * 1024)
            .build()
            .await
            .expect("near cache");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !near.near_cache_live() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !near.near_cache_live() {
            eprintln!("WARNING: the near tier is not live: `near_hit/*` measures Redis hits");
        }
        // The baseline's value: plain MessagePack with field names, no header.
        let client = redis::Client::open(server.url()).expect("url");
        let mut conn = redis::aio::ConnectionManager::new(client)
            .await
            .expect("baseline connection");
        let plain = rmp_serde::to_vec_named(&value).expect("encode");
        redis::cmd("SET")
            .arg("baseline:course:1")
            .arg(plain)
            .query_async::<()>(&mut conn)
            .await
            .expect("set");
        (near, conn)
    });
    let repo = Repo { cache: near.clone() };
    let moka: moka::sync::Cache<String, CourseDetails> = moka::sync::Cache::new(10_000);
    moka.insert("course:1".to_owned(), value.clone());

    let near_get = {
        let near = near.clone();
        move || {
            let near = near.clone();
            async move {
                let v: CourseDetails = near
                    .get_or_load_cloned("course:1", Policy::ttl(Ttl::LONG), || async {
                        Ok::<_, DbError>(course_details(1))
                    })
                    .await
                    .expect("hit");
                black_box(v);
            }
        }
    };
    // Warm: loaded once, then near hits.
    rt.block_on(async {
        near_get().await;
        near_get().await;
        repo.course(1).await.expect("warm");
        repo.course(1).await.expect("warm");
    });
    let near_hits_before = near.stats().total.near_hits;

    let mut g = c.benchmark_group("near_hit");
    g.bench_function("get_or_load_cloned", |b| {
        b.to_async(&rt).iter(|| async {
            let v: CourseDetails = near
                .get_or_load_cloned("course:1", Policy::ttl(Ttl::LONG), || async {
                    Ok::<_, DbError>(course_details(1))
                })
                .await
                .expect("hit");
            black_box(v)
        })
    });
    g.bench_function("cached_fn", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.course(black_box(1)).await.expect("hit")) })
    });
    g.bench_function("moka_get_clone", |b| {
        b.iter(|| black_box(moka.get(black_box("course:1")).expect("present")))
    });
    g.bench_function("raw_get_decode", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw_conn.clone();
            async move {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("baseline:course:1")
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                let v: CourseDetails = rmp_serde::from_slice(&bytes.expect("present")).expect("decode");
                black_box(v)
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("near_hit_64_tasks");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_or_load_cloned", |b| {
        b.iter_custom(|iters| rt.block_on(spread(iters, near_get.clone())))
    });
    let shared = Arc::new(moka.clone());
    g.bench_function("moka_get_clone", |b| {
        b.iter_custom(|iters| {
            let moka = shared.clone();
            rt.block_on(spread(iters, move || {
                let moka = moka.clone();
                async move {
                    black_box(moka.get("course:1").expect("present"));
                }
            }))
        })
    });
    g.finish();

    // The targets, from a quick measurement of its own (best of 5
    // runs per case) next to criterion's: per-call times and ratios.
    let best = |runs: u32, f: &mut dyn FnMut() -> Duration| (0..runs).map(|_| f()).min().unwrap_or_default();
    const N: u32 = 20_000;
    let near_ns = best(5, &mut || {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..N {
                let v: CourseDetails = near
                    .get_or_load_cloned("course:1", Policy::ttl(Ttl::LONG), || async {
                        Ok::<_, DbError>(course_details(1))
                    })
                    .await
                    .expect("hit");
                black_box(v);
            }
            t.elapsed()
        })
    })
    .as_nanos() as f64
        / f64::from(N);
    let moka_ns = best(5, &mut || {
        let t = Instant::now();
        for _ in 0..N {
            black_box(moka.get("course:1"));
        }
        t.elapsed()
    })
    .as_nanos() as f64
        / f64::from(N);
    const RAW_N: u32 = 2_000;
    let raw_ns = best(5, &mut || {
        rt.block_on(async {
            let mut conn = raw_conn.clone();
            let t = Instant::now();
            for _ in 0..RAW_N {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("baseline:course:1")
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                let v: CourseDetails = rmp_serde::from_slice(&bytes.expect("present")).expect("decode");
                black_box(v);
            }
            t.elapsed()
        })
    })
    .as_nanos() as f64
        / f64::from(RAW_N);
    eprintln!(
        "near hit {near_ns:.0} ns, moka get+clone {moka_ns:.0} ns, raw GET+decode {raw_ns:.0} ns: \
         near/moka {:.2} (target <= 1.5), raw/near {:.1} (target >= 30)",
        near_ns / moka_ns,
        raw_ns / near_ns
    );

    let s = near.stats().total;
    eprintln!(
        "near cache: {} hits, {} near hits ({} during the measurements), {} loads",
        s.hits,
        s.near_hits,
        s.near_hits - near_hits_before,
        s.loads
    );
    if s.near_hits == near_hits_before {
        eprintln!("WARNING: no near hit during the measurements: the numbers above are not near hits");
    }
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = near_hit
}
criterion_main!(benches);
