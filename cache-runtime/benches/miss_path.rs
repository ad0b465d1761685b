//! A cache miss through `get_or_load` (untagged, and with 2 tags) against a
//! hand-written redis-rs miss (`GET` that returns nil, encode, `SET … PX` of
//! the same value), and a hit through `EVALSHA` of the read-or-lease script
//! against a plain `GET`, all on one private `redis-server` (started here on
//! a free loopback port), in one run.
//!
//! Every miss iteration uses a key never used before, so it is a genuine
//! miss (entries are stored with a 60 s TTL; a run leaves a few tens of MB).
//!
//! Criterion measures each benchmark for seconds, one after the other, so
//! load from other processes that comes and goes skews the ratios. After
//! criterion, the same operations are measured interleaved (each round runs
//! every variant once, in a rotating order) and the per-call medians are
//! printed with their ratios: those ratios hold up on a busy machine.
//!
//! `cargo bench -p cache-runtime --bench miss_path`

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy, Ttl};
use criterion::{Criterion, criterion_group, criterion_main};
use redis::aio::ConnectionManager;

mod common;

use common::{CourseDetails, course_details};

/// The read-or-lease script of `store/redis.rs`. Only its first read matters
/// here: on a hit without `force`, it returns the entry without taking the
/// lease.
const ACQUIRE: &str = cache_runtime::__private::ACQUIRE_LUA;

/// Entry lifetime of the misses' stores.
const MISS_TTL: Duration = Duration::from_secs(60);

/// The hand-written miss: `GET` (nil), encode, `SET … PX`.
async fn raw_miss(mut conn: ConnectionManager, key: String, value: &CourseDetails) -> CourseDetails {
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.expect("get");
    assert!(bytes.is_none(), "a fresh key");
    let v = value.clone();
    let plain = rmp_serde::to_vec_named(&v).expect("encode");
    redis::cmd("SET")
        .arg(&key)
        .arg(plain)
        .arg("PX")
        .arg(MISS_TTL.as_millis() as u64)
        .query_async::<()>(&mut conn)
        .await
        .expect("set");
    v
}

/// A miss through the cache, with `tags`.
async fn cached_miss(cache: &Cache, key: String, value: &CourseDetails, tags: &[&str]) -> CourseDetails {
    cache
        .get_or_load(&key, Policy::ttl(MISS_TTL).tags(tags.iter().copied()), || async {
            Ok::<_, ()>(value.clone())
        })
        .await
        .expect("loaded")
}

/// The hand-written hit: `GET` + decode.
async fn raw_hit(mut conn: ConnectionManager) -> CourseDetails {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg("baseline:course:1")
        .query_async(&mut conn)
        .await
        .expect("get");
    rmp_serde::from_slice(&bytes.expect("present")).expect("decode")
}

/// A hit through `EVALSHA` of the read-or-lease script + decode.
async fn script_hit(mut conn: ConnectionManager, script: &redis::Script) -> CourseDetails {
    let reply: redis::Value = script
        .key("baseline:course:1")
        .key("baseline:course:1#lease")
        .arg("12345")
        .arg(5_000)
        .arg(60_000)
        .arg("0")
        .arg("")
        .invoke_async(&mut conn)
        .await
        .expect("evalsha");
    let redis::Value::Array(mut parts) = reply else {
        panic!("an array")
    };
    let redis::Value::BulkString(bytes) = std::mem::take(&mut parts[0]) else {
        panic!("the entry")
    };
    rmp_serde::from_slice(&bytes).expect("decode")
}

/// A hit through the cache.
async fn cached_hit(cache: &Cache) -> CourseDetails {
    cache
        .get_or_load("course:1", Policy::ttl(Ttl::LONG), || async {
            Err::<CourseDetails, _>("the value is cached: the loader must not run")
        })
        .await
        .expect("hit")
}

type Op<'a> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = CourseDetails> + 'a>> + 'a>;

/// Runs every op once per round, in a rotating order, and prints each op's
/// median call time and its ratio to the first op's.
fn interleaved(rt: &tokio::runtime::Runtime, group: &str, rounds: usize, ops: &[(&str, Op<'_>)]) {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); ops.len()];
    rt.block_on(async {
        for _ in 0..rounds / 10 {
            for (_, op) in ops {
                std::hint::black_box(op().await);
            }
        }
        for round in 0..rounds {
            for k in 0..ops.len() {
                let i = (round + k) % ops.len();
                let t = Instant::now();
                std::hint::black_box(ops[i].1().await);
                samples[i].push(t.elapsed());
            }
        }
    });
    let medians: Vec<Duration> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            s[s.len() / 2]
        })
        .collect();
    println!("{group} (interleaved, {rounds} rounds)");
    for ((name, _), m) in ops.iter().zip(&medians) {
        println!(
            "  {name:<40} median {:10.3} µs   ratio {:6.3}",
            m.as_secs_f64() * 1e6,
            m.as_secs_f64() / medians[0].as_secs_f64()
        );
    }
}

fn miss_path(c: &mut Criterion) {
    let common::RedisBench { server, rt, cache } = common::redis_bench();
    let value = course_details(1);
    let script = redis::Script::new(ACQUIRE);
    let raw_conn = rt.block_on(async {
        let client = redis::Client::open(server.url()).expect("url");
        let mut conn = ConnectionManager::new(client).await.expect("baseline connection");
        let plain = rmp_serde::to_vec_named(&value).expect("encode");
        redis::cmd("SET")
            .arg("baseline:course:1")
            .arg(plain)
            .query_async::<()>(&mut conn)
            .await
            .expect("set");
        script
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .expect("SCRIPT LOAD");
        cache.set("course:1", &value, Ttl::LONG).await.expect("set");
        conn
    });
    // A fresh key per iteration, across every benchmark of the run.
    let next = AtomicU64::new(0);
    let fresh = |prefix: &str| format!("{prefix}:{}", next.fetch_add(1, Ordering::Relaxed));
    const TAGS: [&str; 2] = ["courses", "teacher:17"];

    let mut g = c.benchmark_group("redis_miss");
    g.bench_function("raw_get_set", |b| {
        b.to_async(&rt)
            .iter(|| raw_miss(raw_conn.clone(), fresh("baseline:miss"), &value))
    });
    g.bench_function("get_or_load", |b| {
        b.to_async(&rt).iter(|| cached_miss(&cache, fresh("miss"), &value, &[]))
    });
    g.bench_function("get_or_load_tagged", |b| {
        b.to_async(&rt)
            .iter(|| cached_miss(&cache, fresh("miss:tagged"), &value, &TAGS))
    });
    g.finish();

    // What a read-or-lease script as the first read would cost on a hit.
    let mut g = c.benchmark_group("redis_hit_script");
    g.bench_function("raw_get_decode", |b| b.to_async(&rt).iter(|| raw_hit(raw_conn.clone())));
    g.bench_function("evalsha_read_or_lease_decode", |b| {
        b.to_async(&rt).iter(|| script_hit(raw_conn.clone(), &script))
    });
    g.bench_function("get_or_load", |b| b.to_async(&rt).iter(|| cached_hit(&cache)));
    g.finish();

    let (cache, value, script, raw_conn, fresh) = (&cache, &value, &script, &raw_conn, &fresh);
    interleaved(
        &rt,
        "redis_miss",
        3_000,
        &[
            (
                "raw_get_set",
                Box::new(move || Box::pin(raw_miss(raw_conn.clone(), fresh("baseline:miss"), value))),
            ),
            (
                "get_or_load",
                Box::new(move || Box::pin(cached_miss(cache, fresh("miss"), value, &[]))),
            ),
            (
                "get_or_load_tagged",
                Box::new(move || Box::pin(cached_miss(cache, fresh("miss:tagged"), value, &TAGS))),
            ),
        ],
    );
    interleaved(
        &rt,
        "redis_hit_script",
        5_000,
        &[
            ("raw_get_decode", Box::new(move || Box::pin(raw_hit(raw_conn.clone())))),
            (
                "evalsha_read_or_lease_decode",
                Box::new(move || Box::pin(script_hit(raw_conn.clone(), script))),
            ),
            ("get_or_load", Box::new(move || Box::pin(cached_hit(cache)))),
        ],
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = miss_path
}
criterion_main!(benches);
