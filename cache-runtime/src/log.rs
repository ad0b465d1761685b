//! Cache operations printed in the original's shape:
//!
//! ```text
//! [Cache] GET course:7: MISS (0.42ms)
//! [Cache] LOAD course:7: OK (12.06ms)
//! [Cache] SET course:7: 1800s TTL (0.35ms)
//! [Cache] GET course:7: HIT (0.21ms) ⚡
//! [Cache] DEL course:7: OK (0.18ms)
//! [Cache] INVALIDATE tag:courses: OK (0.20ms)
//! ```
//!
//! Keys are shown as the application wrote them (without the namespace);
//! values never are. Two ways to turn the lines on, in any host:
//!
//! * **`CACHE_LOG=1`** (or `true`) in the environment of a process whose
//!   cache is built with [`Cache::from_env`](crate::Cache::from_env) (or a
//!   builder's [`from_env`](crate::CacheBuilder::from_env) step), or
//!   [`CacheBuilder::log(true)`](crate::CacheBuilder::log) in code: that
//!   cache prints one line per operation to stderr itself. Nothing is
//!   installed globally, so it works with or without a `tracing`
//!   subscriber, and never conflicts with the one the application sets up
//!   (before or after). A setting in code wins over the variable.
//! * **[`layer()`]** (feature `log-layer`): a `tracing-subscriber` layer
//!   that prints the same lines from the runtime's `debug` events (target
//!   `cache_runtime`), through your subscriber: your writer, your
//!   filtering, beside your other layers. Once a process creates one, caches
//!   stop printing by themselves (so `CACHE_LOG=1` and the layer never print
//!   a line twice); make the layer conditional on `CACHE_LOG` if you want
//!   the variable to decide.
//!
//! Every operation event carries `op`, `key`, `outcome`, `elapsed_us`,
//! `namespace`, `function` (the `#[cached]` function or `Policy::name`,
//! when known) and, for a store, `ttl_s`; any `tracing` subscriber sees
//! them (e.g. as JSON).
//!
//! ```
//! # #[cfg(feature = "log-layer")] {
//! use tracing_subscriber::prelude::*;
//! tracing_subscriber::registry()
//!     .with(cache_runtime::log::layer()) // [Cache] lines on stderr
//!     .init();
//! # }
//! ```

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a [`layer()`] exists in the process: caches then leave the
/// printing to it.
static LAYER_CREATED: AtomicBool = AtomicBool::new(false);

/// Whether caches with logging on print lines themselves.
pub(crate) fn prints_directly() -> bool {
    !LAYER_CREATED.load(Ordering::Relaxed)
}

/// One operation, as the events carry it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) op: &'a str,
    pub(crate) key: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) elapsed_us: u64,
    pub(crate) ttl_s: Option<u64>,
    pub(crate) namespace: &'a str,
    pub(crate) function: Option<&'a str>,
}

impl Line<'_> {
    /// `[Cache] GET course:7: HIT (0.21ms) ⚡`, then `[ns · Type::method]`
    /// when asked for and known.
    pub(crate) fn render(&self, namespace: bool, function: bool) -> String {
        let mut out = String::with_capacity(64);
        let _ = write!(out, "[Cache] {} {}: ", self.op, self.key);
        match (self.op, self.outcome, self.ttl_s) {
            ("SET", "ok", Some(ttl)) => {
                let _ = write!(out, "{ttl}s TTL");
            }
            _ => out.extend(self.outcome.chars().map(|c| c.to_ascii_uppercase())),
        }
        let _ = write!(out, " ({:.2}ms)", self.elapsed_us as f64 / 1000.0);
        if matches!(self.outcome, "hit" | "scope_hit" | "near_hit") {
            out.push_str(" ⚡");
        }
        let ns = Some(self.namespace).filter(|n| namespace && !n.is_empty());
        let f = self.function.filter(|_| function).map(short_name);
        match (ns, f) {
            (Some(ns), Some(f)) => {
                let _ = write!(out, " [{ns} · {f}]");
            }
            (Some(x), None) | (None, Some(x)) => {
                let _ = write!(out, " [{x}]");
            }
            (None, None) => {}
        }
        out
    }
}

/// `examples::lms::repos::CourseRepository::course_details` →
/// `CourseRepository::course_details`.
fn short_name(name: &str) -> &str {
    match name.rmatch_indices("::").nth(1) {
        Some((i, _)) => &name[i + 2..],
        None => name,
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false, false))
    }
}

#[cfg(feature = "log-layer")]
pub use self::layer::{CacheLogLayer, layer, targets};

#[cfg(feature = "log-layer")]
mod layer {
    use std::fmt;
    use std::io::Write as _;

    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::filter::{Filtered, Targets};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    use super::Line;

    /// The runtime's events (target `cache_runtime`) down to `debug`, for
    /// filtering a [`CacheLogLayer`] of your own:
    /// `CacheLogLayer::new().with_writer(w).with_filter(log::targets())`.
    pub fn targets() -> Targets {
        Targets::new().with_target("cache_runtime", Level::DEBUG)
    }

    /// A layer printing every cache operation in the original's shape to
    /// stderr, filtered to the runtime's events (its own per-layer filter:
    /// other layers of the subscriber are not affected).
    pub fn layer<S>() -> Filtered<CacheLogLayer, Targets, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        CacheLogLayer::new().with_filter(targets())
    }

    /// Prints the runtime's events as `[Cache] …` lines (see the [module
    /// docs](crate::log)): operations in the original's shape, other events
    /// (warnings, the breaker opening) as `[Cache] WARN message: error`.
    /// Ignores every other target. Unfiltered: it prints what the
    /// subscriber lets through, so give it [`targets()`] (or use
    /// [`layer()`]).
    pub struct CacheLogLayer<W = fn() -> std::io::Stderr> {
        writer: W,
        namespace: bool,
        function: bool,
    }

    impl fmt::Debug for CacheLogLayer<fn() -> std::io::Stderr> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CacheLogLayer")
                .field("namespace", &self.namespace)
                .field("function", &self.function)
                .finish_non_exhaustive()
        }
    }

    impl Default for CacheLogLayer {
        fn default() -> Self {
            CacheLogLayer::new()
        }
    }

    impl CacheLogLayer {
        /// Lines to stderr, in the original's shape exactly.
        pub fn new() -> Self {
            super::LAYER_CREATED.store(true, std::sync::atomic::Ordering::Relaxed);
            CacheLogLayer {
                writer: std::io::stderr,
                namespace: false,
                function: false,
            }
        }
    }

    impl<W> CacheLogLayer<W> {
        /// Lines to another writer (anything `tracing_subscriber::fmt`
        /// takes: a `fn() -> impl Write`, `std::io::stdout`, a test's
        /// buffer).
        pub fn with_writer<W2: for<'w> MakeWriter<'w>>(self, writer: W2) -> CacheLogLayer<W2> {
            CacheLogLayer {
                writer,
                namespace: self.namespace,
                function: self.function,
            }
        }

        /// Ends each line with the cache's namespace: `[lms]`.
        pub fn with_namespace(mut self, on: bool) -> Self {
            self.namespace = on;
            self
        }

        /// Ends each line with the cached function, when known:
        /// `[CourseRepository::course_details]` (with the namespace:
        /// `[lms · CourseRepository::course_details]`).
        pub fn with_function(mut self, on: bool) -> Self {
            self.function = on;
            self
        }
    }

    #[derive(Default)]
    struct Fields {
        op: String,
        key: String,
        outcome: String,
        namespace: String,
        function: Option<String>,
        elapsed_us: u64,
        ttl_s: Option<u64>,
        message: String,
        error: Option<String>,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "op" => value.clone_into(&mut self.op),
                "key" => value.clone_into(&mut self.key),
                "outcome" => value.clone_into(&mut self.outcome),
                "namespace" => value.clone_into(&mut self.namespace),
                "function" => self.function = Some(value.to_owned()),
                _ => {}
            }
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            match field.name() {
                "elapsed_us" => self.elapsed_us = value,
                "ttl_s" => self.ttl_s = Some(value),
                _ => {}
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            match field.name() {
                "message" => self.message = format!("{value:?}"),
                "error" => self.error = Some(format!("{value:?}")),
                // `%display` fields arrive here.
                "namespace" => self.namespace = format!("{value:?}"),
                "key" => self.key = format!("{value:?}"),
                _ => {}
            }
        }
    }

    impl<S, W> Layer<S> for CacheLogLayer<W>
    where
        S: Subscriber,
        W: for<'w> MakeWriter<'w> + 'static,
    {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            let meta = event.metadata();
            if meta.target() != "cache_runtime" {
                return;
            }
            let mut f = Fields::default();
            event.record(&mut f);
            let line = if f.op.is_empty() {
                let mut line = format!("[Cache] {}: {}", meta.level(), f.message);
                if let Some(e) = &f.error {
                    line.push_str(": ");
                    line.push_str(e);
                }
                if self.namespace && !f.namespace.is_empty() {
                    line.push_str(&format!(" [{}]", f.namespace));
                }
                line
            } else {
                Line {
                    op: &f.op,
                    key: &f.key,
                    outcome: &f.outcome,
                    elapsed_us: f.elapsed_us,
                    ttl_s: f.ttl_s,
                    namespace: &f.namespace,
                    function: f.function.as_deref(),
                }
                .render(self.namespace, self.function)
            };
            let mut w = self.writer.make_writer_for(meta);
            let _ = writeln!(w, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Line;

    fn line(op: &'static str, outcome: &'static str, ttl_s: Option<u64>) -> Line<'static> {
        Line {
            op,
            key: "course:7",
            outcome,
            elapsed_us: 210,
            ttl_s,
            namespace: "lms",
            function: Some("examples::lms::repos::CourseRepository::course_details"),
        }
    }

    #[test]
    fn lines_have_the_original_shape() {
        assert_eq!(
            line("GET", "hit", None).to_string(),
            "[Cache] GET course:7: HIT (0.21ms) ⚡"
        );
        assert_eq!(
            line("GET", "miss", None).to_string(),
            "[Cache] GET course:7: MISS (0.21ms)"
        );
        assert_eq!(
            line("SET", "ok", Some(300)).to_string(),
            "[Cache] SET course:7: 300s TTL (0.21ms)"
        );
        assert_eq!(
            line("SET", "stale", Some(300)).to_string(),
            "[Cache] SET course:7: STALE (0.21ms)"
        );
        assert_eq!(
            line("GET", "hit", None).render(true, true),
            "[Cache] GET course:7: HIT (0.21ms) ⚡ [lms · CourseRepository::course_details]"
        );
        assert_eq!(
            line("GET", "hit", None).render(false, true),
            "[Cache] GET course:7: HIT (0.21ms) ⚡ [CourseRepository::course_details]"
        );
        let mut l = line("DEL", "ok", None);
        l.function = None;
        assert_eq!(l.render(true, true), "[Cache] DEL course:7: OK (0.21ms) [lms]");
        assert_eq!(super::short_name("f"), "f");
        assert_eq!(super::short_name("a::f"), "a::f");
    }
}
