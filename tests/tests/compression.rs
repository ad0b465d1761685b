//! Compression of large values (issue 14 item 8): recorded in the value
//! header, so a reader with compression off reads what a writer with it on
//! stored; small values stay uncompressed.

use std::time::Duration;

use cache_runtime::Cache;
use tests::{shared_redis, unique_namespace};

async fn cache(ns: &str, compress_above: Option<usize>) -> Cache {
    Cache::builder()
        .namespace(ns)
        .redis(&shared_redis().url())
        .compress_above(compress_above)
        .build()
        .await
        .unwrap()
}

async fn stored_len(cache: &Cache, key: &str) -> usize {
    let mut raw = shared_redis().raw().await;
    redis::cmd("STRLEN")
        .arg(cache_runtime::__private::full_key(cache, key))
        .query_async(&mut raw)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_are_compressed_and_read_by_any_reader() {
    let ns = unique_namespace("lz4");
    let writer = cache(&ns, Some(1024)).await;
    let plain = cache(&ns, None).await;
    let big: Vec<String> = (0..2000)
        .map(|i| format!("course row {i} with a repetitive title"))
        .collect();
    writer.set("big", &big, Duration::from_secs(60)).await.unwrap();
    plain.set("big-plain", &big, Duration::from_secs(60)).await.unwrap();
    let (compressed, uncompressed) = (stored_len(&writer, "big").await, stored_len(&plain, "big-plain").await);
    assert!(
        compressed * 3 < uncompressed,
        "compressed {compressed} B vs {uncompressed} B"
    );
    assert_eq!(
        plain.get::<Vec<String>>("big").await.unwrap(),
        Some(big.clone()),
        "a reader with compression off"
    );
    assert_eq!(writer.get::<Vec<String>>("big-plain").await.unwrap(), Some(big.clone()));
    // Through cache-aside too, and below the threshold nothing changes.
    let v = writer
        .get_or_load("aside", Duration::from_secs(60), || async { Ok::<_, ()>(big.clone()) })
        .await
        .unwrap();
    assert_eq!(v, big);
    assert!(stored_len(&writer, "aside").await * 3 < uncompressed);
    writer.set("small", &"tiny", Duration::from_secs(60)).await.unwrap();
    plain
        .set("small-plain", &"tiny", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        stored_len(&writer, "small").await,
        stored_len(&plain, "small-plain").await
    );
}
