//! A cache hit on a Redis Cluster through `get_or_load`, untagged and with
//! two tags, against a hand-written redis-rs `cluster_async` `GET` + decode
//! of the same ~1 KB value, in one run, on a private 6-node cluster started
//! here (3 primaries, 3 replicas, free loopback ports).
//!
//! `get_or_load_2_tags_near`: the same 2-tag hit on a cache with a near
//! tier (`near_cache`), through `get_or_load`, so the entry is read from the
//! cluster (one `GET`) and the tag versions come from the near tier.
//!
//! `cargo bench -p cache-runtime --features cluster --bench cluster_hit`

use cache_runtime::{Cache, Policy, Ttl};
use criterion::{Criterion, criterion_group, criterion_main};

mod common;

// The cluster harness finds `super::harness`: the one `common` includes.
use common::harness;

#[path = "../../tests/src/cluster.rs"]
#[allow(dead_code, unused_imports)]
mod cluster;

use common::{CourseDetails, course_details};

fn cluster_hit(c: &mut Criterion) {
    let nodes = cluster::RedisCluster::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (cache, near, raw, pending) = rt.block_on(async {
        let cache = Cache::builder()
            .namespace("bench")
            .redis_cluster(nodes.seed_urls())
            .build()
            .await
            .expect("cluster cache");
        let value = course_details(1);
        cache.set("course:1", &value, Ttl::LONG).await.expect("set");
        let tagged = Policy::ttl(Ttl::LONG)
            .tags(["courses", "teacher:17"])
            .early_refresh(0.0);
        cache
            .get_or_load("course:tagged", tagged, || async { Ok::<_, ()>(course_details(2)) })
            .await
            .expect("fill");
        let near = Cache::builder()
            .namespace("bench")
            .redis_cluster(nodes.seed_urls())
            .near_cache(16 << 20)
            .build()
            .await
            .expect("cluster cache with a near tier");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !near.near_cache_live() && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(near.near_cache_live(), "the near tier's channel never came up");
        let mut raw = nodes
            .client()
            .get_async_connection()
            .await
            .expect("raw cluster connection");
        let plain = rmp_serde::to_vec_named(&value).expect("encode");
        redis::cmd("SET")
            .arg("baseline:course:1")
            .arg(plain)
            .query_async::<()>(&mut raw)
            .await
            .expect("set");
        let pending = redis::cluster::ClusterClient::builder(nodes.seed_urls())
            .build()
            .unwrap()
            .get_pending_async_connection_with_config(
                redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(std::time::Duration::from_millis(250))
                    .set_response_timeout(std::time::Duration::from_millis(500)),
            );
        (cache, near, raw, pending)
    });

    let mut g = c.benchmark_group("cluster_hit");
    g.bench_function("raw_get_decode", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
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
    g.bench_function("raw_pending_get_decode", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = pending.clone();
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
    g.bench_function("get_or_load_2_tags", |b| {
        b.to_async(&rt).iter(|| async {
            cache
                .get_or_load(
                    "course:tagged",
                    Policy::ttl(Ttl::LONG)
                        .tags(["courses", "teacher:17"])
                        .early_refresh(0.0),
                    || async { Err::<CourseDetails, _>("cached") },
                )
                .await
                .expect("hit")
        })
    });
    g.bench_function("get_or_load_2_tags_near", |b| {
        b.to_async(&rt).iter(|| async {
            near.get_or_load(
                "course:tagged",
                Policy::ttl(Ttl::LONG)
                    .tags(["courses", "teacher:17"])
                    .early_refresh(0.0),
                || async { Err::<CourseDetails, _>("cached") },
            )
            .await
            .expect("hit")
        })
    });
    g.finish();
    assert!(
        near.stats().total.near_hits == 0,
        "get_or_load never takes an entry from the near tier"
    );
    drop(nodes);
}

criterion_group!(benches, cluster_hit);
criterion_main!(benches);
