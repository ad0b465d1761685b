//! A cache hit through `get_or_load` against a hand-written redis-rs `GET` +
//! decode of the same ~1 KB value, both over a multiplexed connection to the
//! same private `redis-server` (started here on a free loopback port), in
//! one run. The in-process hit is measured alongside for scale.
//!
//! `cargo bench -p cache-runtime --bench hit_path`

use std::time::Duration;

use cache_runtime::{Cache, Policy, Ttl};
use criterion::{Criterion, criterion_group, criterion_main};

mod common;

use common::{CourseDetails, course_details};

fn hit_path(c: &mut Criterion) {
    let common::RedisBench { server, rt, cache } = common::redis_bench();
    let (raw_conn, memory) = rt.block_on(async {
        let value = course_details(1);
        cache
            .set("course:1", &value, Ttl::LONG)
            .await
            .expect("set through the cache");
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
        let memory = Cache::memory();
        memory.set("course:1", &value, Ttl::LONG).await.expect("set");
        (conn, memory)
    });
    let encoded_len = rmp_serde::to_vec_named(&course_details(1))
        .map(|v| v.len())
        .unwrap_or(0);
    eprintln!("value: {encoded_len} bytes of MessagePack");

    let mut g = c.benchmark_group("redis_hit");
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
                v
            }
        })
    });
    g.bench_function("get_or_load", |b| {
        b.to_async(&rt).iter(|| async {
            cache
                .get_or_load("course:1", Policy::ttl(Ttl::LONG), || async {
                    Err::<CourseDetails, _>("the value is cached: the loader must not run")
                })
                .await
                .expect("hit")
        })
    });
    g.bench_function("get_or_load_tagged", |b| {
        b.to_async(&rt).iter(|| async {
            cache
                .get_or_load(
                    "course:tagged",
                    Policy::ttl(Ttl::LONG).tags(["courses", "teacher:17"]),
                    || async { Ok::<_, ()>(course_details(2)) },
                )
                .await
                .expect("hit")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("memory_hit");
    g.bench_function("get_or_load", |b| {
        b.to_async(&rt).iter(|| async {
            memory
                .get_or_load("course:1", Policy::ttl(Ttl::LONG), || async {
                    Err::<CourseDetails, _>("must hit")
                })
                .await
                .expect("hit")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = hit_path
}
criterion_main!(benches);
