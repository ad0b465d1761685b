//! What the service tells about itself: the Prometheus recorder behind
//! `/metrics`, HTTP request metrics per route, the cache's [`Stats`] as
//! `lms_cache_*` metrics, and a `tracing` layer that turns the runtime's
//! per-operation events into latency histograms for the `/cache` dashboard.
//!
//! Every label is bounded: routes are the router's templates
//! (`/student/{id}/dashboard`, never `/student/42/dashboard`), cached
//! functions are the `#[cached]` methods, operations and outcomes come from
//! fixed lists. Cache keys are never recorded, as labels or otherwise.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use cache_runtime::{Cache, Stats};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use super::hist::{Histogram, Snapshot};

/// Buckets (seconds) of the HTTP latency histogram: 50 µs to 5 s.
const HTTP_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's Prometheus recorder, installed as the global `metrics`
/// recorder on first use (so the runtime's own `cache_*` metrics land in the
/// same `/metrics`), and its handle. Every server of the process renders
/// from it. Call it before building a cache, so the series a cache
/// registers at zero (invalidations, backend errors, its breaker) are
/// recorded.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), HTTP_BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (an embedding application's) is
        // fine: this handle then renders what reaches it, the cache's stats.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Middleware: counts each request by route template, method and status,
/// and records its duration.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method: &'static str = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    };
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("lms_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("lms_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `examples::lms::repos::CourseRepository::course_details` →
/// `CourseRepository::course_details`.
pub fn short_function_name(name: &str) -> String {
    let mut parts = name.rsplit("::");
    match (parts.next(), parts.next()) {
        (Some(f), Some(t)) => format!("{t}::{f}"),
        (Some(f), None) => f.to_owned(),
        _ => name.to_owned(),
    }
}

/// Publishes what `cache`'s [`Stats`] add to the runtime's own `cache_*`
/// metrics (DESIGN §14, its `metrics` feature: requests by outcome, loads,
/// latencies, backend errors, the breaker gauge, invalidations), labelled
/// with the cache's namespace (the runtime's counters are per process):
/// the hit rate per `#[cached]` function and in total, request-scope hits
/// included (`lms_cache_function_hit_rate{namespace,function}`,
/// `lms_cache_hit_rate{namespace}`), the callers that waited for another's
/// load (`lms_cache_coalesced_waits_total`), and how often the breaker
/// opened (`lms_cache_breaker_opened_total`; `cache_breaker_open` is its
/// state now). Counters are set to the runtime's absolute values, so
/// Prometheus' `rate()` works on them.
pub fn export_cache_stats(cache: &Cache) {
    let stats: Stats = cache.stats();
    let ns = cache.namespace().to_owned();
    for (name, f) in &stats.per_function {
        let function = short_function_name(name);
        let labels = [("namespace", ns.clone()), ("function", function)];
        metrics::gauge!("lms_cache_function_hit_rate", &labels).set(f.hit_rate());
    }
    let labels = [("namespace", ns)];
    metrics::counter!("lms_cache_coalesced_waits_total", &labels).absolute(stats.total.coalesced_waits);
    metrics::counter!("lms_cache_breaker_opened_total", &labels).absolute(stats.breaker_opened);
    metrics::gauge!("lms_cache_hit_rate", &labels).set(stats.hit_rate());
}

/// `/metrics`: the cache's stats published, then everything rendered in
/// Prometheus' text format.
pub fn render_metrics(cache: &Cache) -> String {
    let handle = prometheus();
    export_cache_stats(cache);
    handle.run_upkeep();
    handle.render()
}

// ------------------------------------------------------------------ latency

/// The operations of the runtime's `debug` events, and their outcomes.
const OPS: [&str; 7] = ["GET", "LOAD", "SET", "DEL", "DEL_PATTERN", "INVALIDATE", "CLEAR"];
const OUTCOMES: [&str; 8] = ["hit", "miss", "stale", "undecodable", "error", "bypass", "ok", "other"];

/// Latency histograms per (operation, outcome) of the runtime's events,
/// for the whole process (every cache in it).
#[derive(Debug)]
pub struct CacheLatencies {
    series: Vec<Histogram>,
}

/// One (operation, outcome) pair's latencies.
#[derive(Debug, Clone)]
pub struct LatencySeries {
    /// `GET`, `LOAD`, `SET`, …
    pub op: &'static str,
    /// `hit`, `miss`, `ok`, …
    pub outcome: &'static str,
    /// The counts.
    pub snapshot: Snapshot,
}

impl CacheLatencies {
    /// The process's histograms, fed by [`CacheLatencyLayer`].
    pub fn global() -> &'static CacheLatencies {
        static GLOBAL: OnceLock<CacheLatencies> = OnceLock::new();
        GLOBAL.get_or_init(|| CacheLatencies {
            series: (0..OPS.len() * OUTCOMES.len()).map(|_| Histogram::new()).collect(),
        })
    }

    /// Records one event; unknown operations are ignored, unknown outcomes
    /// count as `other`.
    pub fn record(&self, op: &str, outcome: &str, elapsed_us: u64) {
        let Some(o) = OPS.iter().position(|x| *x == op) else {
            return;
        };
        let r = OUTCOMES
            .iter()
            .position(|x| *x == outcome)
            .unwrap_or(OUTCOMES.len() - 1);
        self.series[o * OUTCOMES.len() + r].record(elapsed_us);
    }

    /// The pairs that saw at least one event.
    pub fn snapshot(&self) -> Vec<LatencySeries> {
        let mut out = Vec::new();
        for (o, op) in OPS.iter().enumerate() {
            for (r, outcome) in OUTCOMES.iter().enumerate() {
                let snapshot = self.series[o * OUTCOMES.len() + r].snapshot();
                if snapshot.count > 0 {
                    out.push(LatencySeries { op, outcome, snapshot });
                }
            }
        }
        out
    }
}

/// A `tracing` layer that reads the runtime's per-operation `debug` events
/// (target `cache_runtime`; fields `op`, `outcome`, `elapsed_us`) into
/// [`CacheLatencies::global`]. It never reads the `key` field.
#[derive(Debug, Default)]
pub struct CacheLatencyLayer;

#[derive(Default)]
struct OpFields {
    op: Option<&'static str>,
    outcome: Option<&'static str>,
    other_outcome: bool,
    elapsed_us: Option<u64>,
}

impl Visit for OpFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "op" => self.op = OPS.iter().find(|x| **x == value).copied(),
            "outcome" => {
                self.outcome = OUTCOMES.iter().find(|x| **x == value).copied();
                self.other_outcome = self.outcome.is_none();
            }
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "elapsed_us" {
            self.elapsed_us = Some(value);
        }
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for CacheLatencyLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "cache_runtime" {
            return;
        }
        let mut f = OpFields::default();
        event.record(&mut f);
        if let (Some(op), Some(us)) = (f.op, f.elapsed_us) {
            let outcome = f.outcome.unwrap_or(if f.other_outcome { "other" } else { "ok" });
            CacheLatencies::global().record(op, outcome, us);
        }
    }
}

/// The process's `tracing` subscriber for `lms-web`: warnings to stderr,
/// the runtime's `debug` events into [`CacheLatencyLayer`], and with
/// `CACHE_LOG=1` every cache operation printed in the original's shape
/// (`[Cache] GET courses:active: HIT (0.21ms)`) by the runtime's layer
/// ([`cache_runtime::log::layer`]). A no-op if a subscriber is already
/// installed (tests start several servers in one process).
pub fn init_tracing() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let cache_events = || Targets::new().with_target("cache_runtime", tracing::Level::DEBUG);
    let log = std::env::var("CACHE_LOG").is_ok_and(|v| v == "1");
    let _ = tracing_subscriber::registry()
        .with(CacheLatencyLayer.with_filter(cache_events()))
        .with(log.then(cache_runtime::log::layer))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(match log {
                    // The runtime's warnings are then its `[Cache] WARN` lines.
                    true => Targets::new()
                        .with_default(LevelFilter::WARN)
                        .with_target("cache_runtime", LevelFilter::OFF),
                    false => Targets::new().with_default(LevelFilter::WARN),
                }),
        )
        .try_init();
}
