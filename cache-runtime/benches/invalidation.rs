//! Tag invalidation for 10, 1,000 and 100,000 tagged entries, against the
//! usual alternative (a Redis set per tag: `SMEMBERS` + `UNLINK` in batches),
//! and the cost of a tagged hit against an untagged one, all on one private
//! `redis-server` in one run.
//!
//! `cargo bench -p cache-runtime --bench invalidation`

use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy, Ttl};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;

use common::{CourseDetails, course_details};

const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// Fills `n` entries tagged `tag` through `get_or_load`, 64 at a time.
async fn fill(cache: &Cache, tag: &str, n: usize) {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .for_each_concurrent(64, |i| async move {
            let policy = Policy::ttl(Ttl::LONG).tags([tag]);
            let _ = cache
                .get_or_load(&format!("{tag}:item:{i}"), policy, || async { Ok::<_, ()>(i as u64) })
                .await;
        })
        .await;
}

/// The set-per-tag design: every entry's key is added to `set`; invalidation
/// reads the members and unlinks them.
async fn fill_set_index(conn: &mut redis::aio::ConnectionManager, set: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            let key = format!("{set}:item:{i}");
            p.cmd("SET").arg(&key).arg(*i).ignore();
            p.cmd("SADD").arg(set).arg(&key).ignore();
        }
        p.query_async::<()>(conn).await.expect("fill set index");
    }
}

async fn invalidate_set_index(conn: &mut redis::aio::ConnectionManager, set: &str) {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(set)
        .query_async(conn)
        .await
        .expect("smembers");
    for chunk in members.chunks(1000) {
        redis::cmd("UNLINK")
            .arg(chunk)
            .query_async::<()>(conn)
            .await
            .expect("unlink");
    }
    redis::cmd("UNLINK")
        .arg(set)
        .query_async::<()>(conn)
        .await
        .expect("unlink set");
}

fn invalidation(c: &mut Criterion) {
    let common::RedisBench { server, rt, cache } = common::redis_bench();
    let client = redis::Client::open(server.url()).expect("url");
    let conn = rt.block_on(redis::aio::ConnectionManager::new(client)).expect("conn");

    let mut g = c.benchmark_group("tag_invalidation");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let tag = format!("t{n}");
        let started = Instant::now();
        rt.block_on(fill(&cache, &tag, n));
        eprintln!("filled {n} tagged entries in {:.2?}", started.elapsed());
        g.bench_with_input(BenchmarkId::new("generation_counter", n), &n, |b, _| {
            b.to_async(&rt)
                .iter(|| async { cache.invalidator().tag(&tag).await.expect("invalidate") })
        });
    }
    for n in SIZES {
        let set = format!("set{n}");
        g.bench_with_input(BenchmarkId::new("set_index_smembers_unlink", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| {
                let mut conn = conn.clone();
                let set = set.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        fill_set_index(&mut conn, &set, n).await; // not timed
                        let t = Instant::now();
                        invalidate_set_index(&mut conn, &set).await;
                        total += t.elapsed();
                    }
                    total
                }
            })
        });
    }
    g.finish();

    // A tagged hit reads the entry and its tags' versions in one MGET.
    let mut g = c.benchmark_group("tagged_hit");
    let untagged = Policy::ttl(Ttl::LONG);
    let one = Policy::ttl(Ttl::LONG).tags(["courses"]);
    let three = Policy::ttl(Ttl::LONG).tags(["courses", "teacher:17", "catalog"]);
    for (name, policy) in [("untagged", untagged), ("one_tag", one), ("three_tags", three)] {
        let key = format!("hit:{name}");
        rt.block_on(async {
            let _ = cache
                .get_or_load(&key, policy.clone(), || async { Ok::<_, ()>(course_details(1)) })
                .await;
        });
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                cache
                    .get_or_load(&key, policy.clone(), || async { Err::<CourseDetails, _>("must hit") })
                    .await
                    .expect("hit")
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = invalidation
}
criterion_main!(benches);
