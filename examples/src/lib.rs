//! Shared pieces of the examples, the LMS application ([`lms`]), and the LMS
//! as an axum web service ([`web`], the `lms-web` binary).

pub mod lms;
pub mod web;

pub mod cache_log {
    //! Prints the runtime's `tracing` events in the original's shape:
    //! `[Cache] GET courses:active: HIT (0.21ms)`.

    use std::fmt::Write as _;

    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::Context;

    /// A layer that prints one line per cache operation to stderr.
    #[derive(Debug, Default)]
    pub struct CacheLogLayer;

    #[derive(Default)]
    struct Fields {
        op: String,
        key: String,
        outcome: String,
        elapsed_us: Option<u64>,
        message: String,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "op" => self.op = value.to_owned(),
                "key" => self.key = value.to_owned(),
                "outcome" => self.outcome = value.to_owned(),
                _ => {}
            }
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            if field.name() == "elapsed_us" {
                self.elapsed_us = Some(value);
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => {
                    let _ = write!(self.message, "{value:?}");
                }
                "key" => self.key = format!("{value:?}").trim_matches('"').to_owned(),
                _ => {}
            }
        }
    }

    impl<S: Subscriber> Layer<S> for CacheLogLayer {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            if event.metadata().target() != "cache_runtime" {
                return;
            }
            let mut f = Fields::default();
            event.record(&mut f);
            if f.op.is_empty() {
                if !f.message.is_empty() {
                    eprintln!("[Cache] {}", f.message);
                }
                return;
            }
            let ms = f.elapsed_us.unwrap_or(0) as f64 / 1000.0;
            let flash = if f.outcome == "hit" { " ⚡" } else { "" };
            eprintln!(
                "[Cache] {} {}: {} ({ms:.2}ms){flash}",
                f.op,
                f.key,
                f.outcome.to_uppercase()
            );
        }
    }

    /// Installs the layer when `CACHE_LOG=1` (or `RUST_LOG` mentions
    /// `cache_runtime`), plus warnings from everything else.
    pub fn init() {
        use tracing_subscriber::prelude::*;
        let on = std::env::var("CACHE_LOG").is_ok_and(|v| v == "1")
            || std::env::var("RUST_LOG").is_ok_and(|v| v.contains("cache_runtime"));
        let filter = if on { "warn,cache_runtime=debug" } else { "warn" };
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(filter))
            .with(on.then_some(CacheLogLayer))
            .with((!on).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr)))
            .try_init();
    }
}
