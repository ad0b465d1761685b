//! The `metrics` feature (issue 13 item 1, DESIGN §14): a Prometheus
//! recorder installed in this test binary reads back what a scripted
//! sequence of hits, misses, loads, errors, invalidations and an outage
//! recorded; label sets are bounded (no key appears anywhere).

use std::time::Duration;

use cache_runtime::{Cache, Policy};
use metrics_exporter_prometheus::PrometheusBuilder;
use tests::{RedisServer, shared_redis, unique_namespace};

/// `name{labels} value` lines whose name and labels contain all `parts`.
fn value(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_scripted_sequence() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("one recorder per test binary");

    let cache = Cache::builder()
        .namespace(&unique_namespace("metrics"))
        .redis(&shared_redis().url())
        .build()
        .await
        .unwrap();
    let policy = || {
        Policy::ttl(Duration::from_secs(60))
            .tags(["courses"])
            .name("courses::by_id")
    };
    let secret_key = "course:SECRET-KEY-42";
    // 1 miss + load, 2 hits.
    for _ in 0..3 {
        let v = cache
            .get_or_load(secret_key, policy(), || async { Ok::<_, ()>(1u32) })
            .await;
        assert_eq!(v, Ok(1));
    }
    // A failing load: a miss, a load error.
    let e = cache
        .get_or_load("course:err", policy(), || async { Err::<u32, _>("db down") })
        .await;
    assert!(e.is_err());
    // Invalidations: key, tag, pattern, all.
    cache.invalidator().key(secret_key).await.unwrap();
    cache.invalidator().tag("courses").await.unwrap();
    cache.invalidator().pattern("course:*").await.unwrap();
    cache.invalidator().all().await.unwrap();
    // An outage: refused connections open the breaker.
    let down = RedisServer::stopped();
    let broken = Cache::builder()
        .namespace("metricsdown")
        .redis(&down.url())
        .circuit_breaker(2, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    for _ in 0..4 {
        let v = broken
            .get_or_load("k", Duration::from_secs(1), || async { Ok::<_, ()>(7u8) })
            .await;
        assert_eq!(v, Ok(7));
    }
    assert!(broken.is_degraded());

    let text = handle.render();
    let f = "function=\"courses::by_id\"";
    assert_eq!(
        value(&text, "cache_requests_total", &[f, "outcome=\"hit\""]),
        2.0,
        "{text}"
    );
    assert_eq!(value(&text, "cache_requests_total", &[f, "outcome=\"miss\""]), 2.0);
    assert_eq!(value(&text, "cache_loads_total", &[f, "result=\"ok\""]), 1.0);
    assert_eq!(value(&text, "cache_loads_total", &[f, "result=\"error\""]), 1.0);
    assert_eq!(value(&text, "cache_load_duration_seconds_count", &[f]), 2.0);
    assert!(value(&text, "cache_operation_duration_seconds_count", &["op=\"GET\""]) >= 4.0);
    for kind in ["key", "tag", "pattern", "all"] {
        assert_eq!(
            value(&text, "cache_invalidations_total", &[&format!("kind=\"{kind}\"")]),
            1.0,
            "{kind}"
        );
    }
    assert!(value(&text, "cache_backend_errors_total", &[]) >= 2.0, "{text}");
    assert!(value(&text, "cache_backend_errors_total", &["kind=\"unavailable\""]) >= 1.0);
    assert_eq!(value(&text, "cache_breaker_open", &["namespace=\"metricsdown\""]), 1.0);
    assert_eq!(
        value(
            &text,
            "cache_requests_total",
            &["function=\"unnamed\"", "outcome=\"bypass\""]
        ),
        2.0
    );
    // Bounded labels: no key, and only the documented label names.
    assert!(!text.contains("SECRET-KEY"), "a key reached the metrics");
    for line in text.lines().filter(|l| !l.starts_with('#') && l.contains('{')) {
        let labels = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
        for pair in labels.split("\",") {
            let name = pair.split('=').next().unwrap().trim();
            assert!(
                [
                    "function",
                    "outcome",
                    "result",
                    "op",
                    "kind",
                    "namespace",
                    "quantile",
                    "le"
                ]
                .contains(&name),
                "unexpected label {name} in {line}"
            );
        }
    }
}
