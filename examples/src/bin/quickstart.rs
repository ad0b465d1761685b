//! The smallest tour: cache-aside by hand over a slow "database", tags,
//! invalidation and stats. In-process by default; Redis when `REDIS_URL` is
//! set. `CACHE_LOG=1` prints every cache operation.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy, Ttl, keys};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Course {
    id: i64,
    title: String,
    teacher_id: i64,
}

/// Stands in for a query that costs real time.
async fn query_course(id: i64) -> Result<Course, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(40)).await;
    Ok(Course {
        id,
        title: format!("Course {id}"),
        teacher_id: id % 3,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::cache_log::init();
    let cache = Cache::from_env().await?;
    let backend = if cache.backend().is_redis() {
        "Redis (REDIS_URL)"
    } else {
        "in-process (set REDIS_URL for Redis)"
    };
    println!("cache: {backend}, namespace `{}`", cache.namespace());
    cache.invalidator().all().await.ok(); // start from a clean namespace

    let get_course = |id: i64| {
        let cache = cache.clone();
        async move {
            let key = format!("course:{}", keys::escape(&id));
            let policy = Policy::ttl(Ttl::LONG).tags(["courses"]);
            cache.get_or_load(&key, policy, || query_course(id)).await
        }
    };

    let t = Instant::now();
    let first = get_course(7).await?;
    let miss = t.elapsed();
    let t = Instant::now();
    let second = get_course(7).await?;
    let hit = t.elapsed();
    assert_eq!(first, second);
    println!(
        "course 7: miss {miss:.2?}, hit {hit:.2?} ({:.0}x faster)",
        miss.as_secs_f64() / hit.as_secs_f64()
    );

    // 100 concurrent requests for a cold key run the query once.
    let t = Instant::now();
    let all = futures_join_all((0..100).map(|_| get_course(8))).await;
    println!(
        "100 concurrent cold reads of course 8: {:.2?}, all ok: {}",
        t.elapsed(),
        all.iter().all(|r| r.is_ok())
    );

    // An update invalidates by tag; the next read is fresh.
    cache.invalidator().tag("courses").await?;
    let t = Instant::now();
    get_course(7).await?;
    println!("after invalidating tag `courses`: reload {:.2?}", t.elapsed());

    let stats = cache.stats();
    println!(
        "stats: {} hits, {} misses, {} loads, {} coalesced waits, hit rate {:.0}%",
        stats.total.hits,
        stats.total.misses,
        stats.total.loads,
        stats.total.coalesced_waits,
        stats.hit_rate() * 100.0
    );
    Ok(())
}

/// Awaits every future (a tiny join_all over tokio tasks).
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task panicked"));
    }
    out
}
