//! Fills an in-process cache well past its capacity and prints how much the
//! process's resident memory grew, for `tests/memory_capacity.rs` (a
//! process of its own, so nothing else moves its RSS).
//!
//! `rss_worker <capacity bytes> <value bytes>` prints `grew <bytes>`.

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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a number"));
    let (capacity, value) = (args.next().expect("capacity"), args.next().expect("value size"));
    let before = rss_bytes();
    let cache = cache_runtime::Cache::builder()
        .memory()
        .memory_capacity(capacity)
        .build()
        .await
        .expect("cache");
    let v = "x".repeat(value as usize);
    // Three times what would fit if entries cost only their bytes.
    let n = 3 * capacity / (value + 16);
    for i in 0..n {
        cache
            .set(&format!("key:{i:012}"), &v, std::time::Duration::from_secs(3600))
            .await
            .expect("set");
    }
    println!("grew {}", rss_bytes().saturating_sub(before));
}
