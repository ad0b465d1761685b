//! Cache warming: run named loaders with bounded concurrency.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

type ProgressFn<'a> = Box<dyn FnMut(&WarmProgress<'_>) + Send + 'a>;
type Job<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Runs named warm-up jobs (typically `get_or_load` or `_refresh` calls) with
/// at most `concurrency` at a time, and reports what happened. Failures are
/// collected, never fatal.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use cache_runtime::{Cache, Ttl, Warmer};
/// let cache = Cache::memory();
/// let mut warmer = Warmer::new().concurrency(4);
/// for id in 0..10 {
///     let cache = &cache;
///     warmer = warmer.job(format!("course:{id}"), async move {
///         cache.get_or_load(&format!("course:{id}"), Ttl::LONG, || async { Ok::<_, String>(id) }).await
///     });
/// }
/// let report = warmer.run().await;
/// assert_eq!((report.succeeded, report.failed.len()), (10, 0));
/// assert!(cache.exists("course:9").await.unwrap());
/// # }
/// ```
#[must_use]
pub struct Warmer<'a> {
    concurrency: usize,
    jobs: Vec<(String, Job<'a>)>,
    progress: Option<ProgressFn<'a>>,
}

impl std::fmt::Debug for Warmer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warmer")
            .field("concurrency", &self.concurrency)
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

/// Progress of a running [`Warmer`], passed to its callback after each job.
#[derive(Debug)]
#[non_exhaustive]
pub struct WarmProgress<'r> {
    /// Jobs finished so far.
    pub done: usize,
    /// All jobs.
    pub total: usize,
    /// The job that just finished.
    pub name: &'r str,
    /// Whether it succeeded.
    pub ok: bool,
}

/// What a warm-up run did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WarmReport {
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs that failed: name and error message.
    pub failed: Vec<(String, String)>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Default for Warmer<'_> {
    fn default() -> Self {
        Warmer {
            concurrency: 8,
            jobs: Vec::new(),
            progress: None,
        }
    }
}

impl<'a> Warmer<'a> {
    /// An empty warmer with concurrency 8.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` jobs run at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Adds a named job. Its `Ok` value is discarded (it is in the cache).
    pub fn job<T, E, F>(mut self, name: impl Into<String>, job: F) -> Self
    where
        E: Display,
        F: Future<Output = Result<T, E>> + Send + 'a,
    {
        self.jobs.push((
            name.into(),
            Box::pin(async move { job.await.map(|_| ()).map_err(|e| e.to_string()) }),
        ));
        self
    }

    /// Called after every finished job, e.g. to draw a progress line.
    pub fn on_progress(mut self, f: impl FnMut(&WarmProgress<'_>) + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Runs every job and reports.
    pub async fn run(mut self) -> WarmReport {
        let start = Instant::now();
        let total = self.jobs.len();
        let mut report = WarmReport::default();
        let mut done = 0;
        let mut results = futures_util::stream::iter(self.jobs.into_iter().map(|(name, job)| async move {
            let r = job.await;
            (name, r)
        }))
        .buffer_unordered(self.concurrency);
        while let Some((name, r)) = results.next().await {
            done += 1;
            if let Some(p) = self.progress.as_mut() {
                p(&WarmProgress {
                    done,
                    total,
                    name: &name,
                    ok: r.is_ok(),
                });
            }
            match r {
                Ok(()) => report.succeeded += 1,
                Err(e) => {
                    tracing::warn!(target: "cache_runtime", job = %name, error = %e, "warm-up job failed");
                    report.failed.push((name, e));
                }
            }
        }
        report.elapsed = start.elapsed();
        report
    }
}
