//! Fills a capacity-bounded tier well past its capacity and prints how much
//! the process's resident memory grew, for `tests/memory_capacity.rs` (a
//! process of its own, so nothing else moves its RSS).
//!
//! `rss_worker <capacity bytes> <value bytes>` fills a `Cache::memory()`;
//! `rss_worker <capacity bytes> <value bytes> <redis url>` fills the near
//! cache of a Redis cache (the values are written to Redis first, then each
//! is read once, which keeps it in the near tier). Prints `grew <bytes>`
//! (and, for the near cache, `near_hits <n>` from a second pass over the
//! newest third of the keys, to show the tier was filled).

use std::time::Duration;

use cache_runtime::{Cache, Policy, Ttl};
use futures::future::join_all;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn key(i: u64) -> String {
    format!("key:{i:012}")
}

/// Requests in flight at once on the cache's multiplexed connection.
const CONCURRENCY: u64 = 256;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, what: &str| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{what}: a number"))
    };
    let (capacity, value) = (number(0, "capacity"), number(1, "value size"));
    let url = args.get(2);
    let v = "x".repeat(value as usize);
    // Three times what would fit if entries cost only their bytes.
    let n = 3 * capacity / (value + 16);
    let Some(url) = url else {
        let before = rss_bytes();
        let cache = Cache::builder()
            .memory()
            .memory_capacity(capacity)
            .build()
            .await
            .expect("cache");
        for i in 0..n {
            cache.set(&key(i), &v, Ttl::DAY).await.expect("set");
        }
        println!("grew {}", rss_bytes().saturating_sub(before));
        return;
    };
    let cache = Cache::builder()
        .namespace("rss")
        .redis(url)
        .near_cache(capacity)
        .build()
        .await
        .expect("cache");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !cache.near_cache_live() {
        assert!(std::time::Instant::now() < until, "the near tier never became live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let chunks = || {
        (0..n)
            .step_by(CONCURRENCY as usize)
            .map(move |c| c..(c + CONCURRENCY).min(n))
    };
    for range in chunks() {
        let sets = range.map(|i| {
            let (cache, v) = (&cache, &v);
            async move { cache.set(&key(i), v, Ttl::DAY).await.expect("set") }
        });
        join_all(sets).await;
    }
    let read = |i: u64| {
        let cache = &cache;
        async move {
            let got: String = cache
                .get_or_load_cloned(&key(i), Policy::ttl(Ttl::DAY), || async {
                    Err::<String, &str>("every key was written")
                })
                .await
                .expect("a hit");
            got.len()
        }
    };
    // Wait for the channel to deliver the invalidations of those writes
    // (they would refuse the reads' inserts): they arrive in order, so once
    // the last key written can be kept and served near, all have arrived.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while cache.stats().total.near_hits == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the invalidations of the writes never all arrived"
        );
        read(n - 1).await;
        read(n - 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Measured from here: the near tier is all that grows (the connection's
    // buffers are already there from the writes).
    let before = rss_bytes();
    for range in chunks() {
        join_all(range.map(read)).await;
    }
    let grew = rss_bytes().saturating_sub(before);
    // Newest first: a pass in write order would evict each kept entry with
    // the misses before it.
    let near_before = cache.stats().total.near_hits;
    for i in (0..n).rev().take((n / 3) as usize) {
        read(i).await;
    }
    println!("grew {grew}");
    println!("near_hits {}", cache.stats().total.near_hits - near_before);
}
