//! Durable invalidation (issue 10 item 5): with
//! `CacheBuilder::durable_invalidation`, an invalidation returns only once
//! enough replicas acknowledged it, and says so when they did not.

use std::time::Duration;

use cache_runtime::{Cache, CacheError};
use tests::{RedisServer, shared_cluster, unique_namespace};

async fn durable(builder: cache_runtime::CacheBuilder) -> Cache {
    builder
        .namespace(&unique_namespace("dur"))
        .durable_invalidation(1, Duration::from_millis(300))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_an_invalidation_is_reported_not_durable() {
    let server = RedisServer::start();
    let cache = durable(Cache::builder().redis(&server.url())).await;
    cache.set("k", &1u8, Duration::from_secs(60)).await.unwrap();
    match cache.invalidator().key("k").await {
        Err(CacheError::NotDurable {
            acked: 0, wanted: 1, ..
        }) => {}
        other => panic!("expected NotDurable, got {other:?}"),
    }
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        None,
        "applied on the primary all the same"
    );
    assert!(matches!(
        cache.invalidator().tag("t").await,
        Err(CacheError::NotDurable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_replica_invalidations_are_acknowledged() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    // Wait until the replica is linked.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut primary.raw().await)
            .await
            .unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica never linked: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cache = durable(Cache::builder().redis(&primary.url())).await;
    cache.set("k", &1u8, Duration::from_secs(60)).await.unwrap();
    assert_eq!(cache.invalidator().key("k").await.unwrap(), 1);
    assert_eq!(cache.invalidator().tags(["a", "b"]).await.unwrap(), 2);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_touched_shard_is_asked() {
    let cache = durable(Cache::builder().redis_cluster(shared_cluster().seed_urls())).await;
    for i in 0..20 {
        cache
            .set(&format!("k{i}"), &1u8, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    assert_eq!(cache.invalidator().keys(&keys).await.unwrap(), 20);
    assert_eq!(cache.invalidator().tags(["x", "y", "z"]).await.unwrap(), 3);
}
