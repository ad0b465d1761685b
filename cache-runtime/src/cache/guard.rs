//! The guard around every backend call: the per-call time budget, the
//! circuit breaker, error mapping and tracing, in one place.

use std::future::Future;
use std::time::{Duration, Instant};

use super::Cache;
use crate::CacheError;
use crate::breaker::{Admit, Breaker, Change};
use crate::store::StoreError;

/// The backend time one call may still spend. `get_or_load` makes several
/// round trips (read, lease, store); a hung backend must cost it at most one
/// operation timeout in total, so they share one budget. Once a round trip
/// times out the budget is spent and the rest of the call skips the backend.
#[derive(Debug)]
pub(crate) struct Budget {
    left: Duration,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Self {
        Budget { left: total }
    }
}

/// Reports an abandoned probe if the probing call is dropped before its
/// answer (a cancelled request), so the breaker never waits on it.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.probe_abandoned();
        }
    }
}

impl Cache {
    /// Runs one backend call with its own budget of one operation timeout.
    pub(crate) async fn call<R>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<R, StoreError>>,
    ) -> Result<R, CacheError> {
        let mut budget = Budget::new(self.inner.op_timeout);
        self.call_in(&mut budget, key, fut).await
    }

    /// Runs one backend call under the breaker and what is left of `budget`,
    /// mapping failures to `CacheError` with the key.
    pub(crate) async fn call_in<R>(
        &self,
        budget: &mut Budget,
        key: &str,
        fut: impl Future<Output = Result<R, StoreError>>,
    ) -> Result<R, CacheError> {
        if budget.left.is_zero() {
            return Err(self.timeout(key));
        }
        let start = Instant::now();
        let r = self.guarded(key, fut, Some(budget.left)).await;
        if let Err(e) = &r {
            crate::metrics::backend_error(error_kind(e));
        }
        budget.left = match &r {
            Err(CacheError::Timeout { .. }) => Duration::ZERO,
            _ => budget.left.saturating_sub(start.elapsed()),
        };
        r
    }

    /// Like [`call`](Self::call) without the timeout, for walks of the key
    /// space (`SCAN` loops) that take many round trips; each round trip is
    /// still bounded by the connection's response timeout (twice the
    /// operation timeout).
    pub(crate) async fn call_unbounded<R>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<R, StoreError>>,
    ) -> Result<R, CacheError> {
        self.guarded(key, fut, None).await
    }

    fn timeout(&self, key: &str) -> CacheError {
        CacheError::Timeout {
            key: key.to_owned(),
            timeout: self.inner.op_timeout,
        }
    }

    async fn guarded<R>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<R, StoreError>>,
        limit: Option<Duration>,
    ) -> Result<R, CacheError> {
        let inner = &*self.inner;
        if inner.store.is_memory() {
            return fut.await.map_err(|e| self.map_err(key, e));
        }
        let breaker = match inner.breakers.len() {
            1 => &inner.breakers[0],
            _ => &inner.breakers[inner.store.shard_of(&inner.layout.entry(key))],
        };
        let admit = breaker.allow();
        if admit == Admit::No {
            return Err(CacheError::Unavailable { key: key.to_owned() });
        }
        let mut probe = ProbeGuard {
            breaker,
            armed: admit == Admit::Probe,
        };
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, fut).await {
                Ok(result) => result,
                Err(_) => {
                    probe.armed = false;
                    self.breaker_change(breaker.on_failure());
                    inner.store.after_timeout(&inner.layout.entry(key));
                    return Err(self.timeout(key));
                }
            },
            None => fut.await,
        };
        probe.armed = false;
        match result {
            Ok(v) => {
                self.breaker_change(breaker.on_success());
                Ok(v)
            }
            Err(e) => {
                // A refused command (WRONGTYPE, NOSCRIPT…) is an answer: the
                // server is alive, and a probe that gets one closes the circuit.
                self.breaker_change(if e.is_outage() {
                    breaker.on_failure()
                } else {
                    breaker.on_success()
                });
                Err(self.map_err(key, e))
            }
        }
    }

    fn map_err(&self, key: &str, e: StoreError) -> CacheError {
        match e {
            // The connection's own response timeout (of a SCAN round trip).
            #[cfg(feature = "redis")]
            StoreError::Redis(source) if source.is_timeout() => self.timeout(key),
            #[cfg(feature = "redis")]
            StoreError::Redis(source) => CacheError::Backend {
                key: key.to_owned(),
                source: Box::new(source),
            },
            StoreError::NotAnInteger => CacheError::NotAnInteger { key: key.to_owned() },
        }
    }

    fn breaker_change(&self, change: Change) {
        use std::sync::atomic::Ordering::Relaxed;
        let ns = self.namespace();
        if change != Change::None {
            let open = self.inner.breakers.iter().filter(|b| b.is_open()).count();
            crate::metrics::breakers_open(ns, open);
        }
        match change {
            Change::None => {}
            Change::Opened => {
                self.inner.stats.breaker_opened.fetch_add(1, Relaxed);
                tracing::warn!(target: "cache_runtime", namespace = %ns,
                    "cache backend failing: circuit opened, calls go straight to their loaders");
            }
            Change::Closed => {
                self.inner.stats.breaker_closed.fetch_add(1, Relaxed);
                tracing::info!(target: "cache_runtime", namespace = %ns,
                    "cache backend answering again: circuit closed");
            }
        }
    }
}

/// Where an operation's event comes from: the cache (its namespace and
/// whether it prints operations itself, `CACHE_LOG`), the cached function
/// when known, and the TTL a `SET` stored with.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    cache: &'a Cache,
    function: Option<&'static str>,
    ttl: Option<Duration>,
}

impl Cache {
    /// The origin of this cache's events for `function`.
    pub(crate) fn origin(&self, function: Option<&'static str>) -> Origin<'_> {
        Origin {
            cache: self,
            function,
            ttl: None,
        }
    }
}

impl Origin<'_> {
    /// With the TTL an entry was stored for.
    pub(crate) fn ttl(self, ttl: Duration) -> Self {
        Origin { ttl: Some(ttl), ..self }
    }
}

/// One `debug` event per operation: namespace, function (when known), key,
/// outcome, elapsed time and, for a store, its TTL; never the value. Printed
/// in the original's shape too when the cache logs operations (`CACHE_LOG`).
impl Cache {
    /// Whether an operation has anyone to report to: a `tracing` subscriber
    /// at debug for this crate, `CACHE_LOG`, or metrics. Paths measured in
    /// nanoseconds (near hits) skip `trace_op` otherwise.
    pub(crate) fn traced(&self) -> bool {
        cfg!(feature = "metrics") || self.inner.log || tracing::enabled!(target: "cache_runtime", tracing::Level::DEBUG)
    }
}

pub(crate) fn trace_op(at: Origin<'_>, op: &'static str, key: &str, outcome: &'static str, start: Instant) {
    let took = start.elapsed();
    crate::metrics::operation(op, took);
    let namespace = at.cache.namespace();
    let elapsed_us = took.as_micros() as u64;
    let ttl_s = at.ttl.map(|t| t.as_secs());
    tracing::debug!(
        target: "cache_runtime",
        op,
        key,
        outcome,
        elapsed_us,
        ttl_s,
        namespace,
        function = at.function,
    );
    if at.cache.inner.log && crate::log::prints_directly() {
        let line = crate::log::Line {
            op,
            key,
            outcome,
            elapsed_us,
            ttl_s,
            namespace,
            function: at.function,
        };
        eprintln!("{line}");
    }
}

/// The metrics label of an error.
pub(crate) fn error_kind(e: &CacheError) -> &'static str {
    match e {
        CacheError::Timeout { .. } => "timeout",
        CacheError::Unavailable { .. } => "unavailable",
        CacheError::Backend { .. } => "backend",
        CacheError::Decode { .. } => "decode",
        CacheError::Encode { .. } => "encode",
        CacheError::TooLarge { .. } => "too_large",
        CacheError::NotAnInteger { .. } => "not_an_integer",
        _ => "other",
    }
}
