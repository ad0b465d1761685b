//! Prometheus-style metrics through the `metrics` facade (feature
//! `metrics`), so any exporter works. Labels are bounded: function names
//! (from `#[cached]` or `Policy::name`, `unnamed` otherwise), outcomes, op
//! names and error kinds; never keys. Without the feature every function
//! here is an empty inline function.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `cache_requests_total` | counter | `function`, `outcome` (hit, miss, stale, undecodable, error, bypass, expired, early; scope_hit: answered by the request scope; near_hit: by the near cache) |
//! | `cache_loads_total` | counter | `function`, `result` (ok, error) |
//! | `cache_load_duration_seconds` | histogram | `function` |
//! | `cache_operation_duration_seconds` | histogram | `op` (GET, SET, DEL, INVALIDATE, DEL_PATTERN, CLEAR, LOAD) |
//! | `cache_backend_errors_total` | counter | `kind` (timeout, unavailable, backend, decode, …) |
//! | `cache_breaker_open` | gauge | `namespace`: circuit breakers open now |
//! | `cache_invalidations_total` | counter | `kind` (key, tag, pattern, all) |

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::time::Duration;

#[cfg(feature = "metrics")]
fn function(name: Option<&'static str>) -> &'static str {
    name.unwrap_or("unnamed")
}

/// One `get_or_load` answered (`hit`) or missed (the miss's reason).
#[inline]
pub(crate) fn request(name: Option<&'static str>, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cache_requests_total", "function" => function(name), "outcome" => outcome).increment(1);
}

/// One loader run and how long it took.
#[inline]
pub(crate) fn load(name: Option<&'static str>, ok: bool, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let result = if ok { "ok" } else { "error" };
        metrics::counter!("cache_loads_total", "function" => function(name), "result" => result).increment(1);
        metrics::histogram!("cache_load_duration_seconds", "function" => function(name)).record(took.as_secs_f64());
    }
}

/// One traced operation and how long it took.
#[inline]
pub(crate) fn operation(op: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("cache_operation_duration_seconds", "op" => op).record(took.as_secs_f64());
}

/// One failed backend call.
#[inline]
pub(crate) fn backend_error(kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cache_backend_errors_total", "kind" => kind).increment(1);
}

/// The number of open circuit breakers of a cache.
#[inline]
pub(crate) fn breakers_open(namespace: &str, open: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("cache_breaker_open", "namespace" => namespace.to_owned()).set(open as f64);
}

/// A new cache's series that may stay at zero for long (no invalidation,
/// no error, the breaker closed), recorded as zero so that they exist from
/// the start (dashboards and `rate()` need a first sample). Labels are the
/// fixed lists above.
#[inline]
pub(crate) fn register(namespace: &str) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("cache_breaker_open", "namespace" => namespace.to_owned()).set(0.0);
        for kind in ["key", "tag", "pattern", "all"] {
            metrics::counter!("cache_invalidations_total", "kind" => kind).increment(0);
        }
        for kind in ["timeout", "unavailable", "backend"] {
            metrics::counter!("cache_backend_errors_total", "kind" => kind).increment(0);
        }
    }
}

/// One invalidation that returned.
#[inline]
pub(crate) fn invalidation(kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cache_invalidations_total", "kind" => kind).increment(1);
}
