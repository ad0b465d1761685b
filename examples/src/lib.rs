//! Shared pieces of the examples, the LMS application ([`lms`]), and the LMS
//! as an axum web service ([`web`], the `lms-web` binary).

pub mod lms;
pub mod web;

pub mod cache_log {
    //! The examples' `tracing` set-up: warnings on stderr, and every cache
    //! operation in the original's shape, `[Cache] GET courses:active: HIT
    //! (0.21ms)`, through the runtime's own layer
    //! ([`cache_runtime::log::layer`]).

    /// Installs the runtime's `[Cache]` layer when `CACHE_LOG=1` (or
    /// `RUST_LOG` mentions `cache_runtime`), and warnings of everything
    /// else. A no-op if a subscriber is already installed.
    pub fn init() {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::prelude::*;
        let on = std::env::var("CACHE_LOG").is_ok_and(|v| v == "1")
            || std::env::var("RUST_LOG").is_ok_and(|v| v.contains("cache_runtime"));
        // With the layer on, the runtime's warnings are its `[Cache] WARN` lines.
        let others = match on {
            true => Targets::new()
                .with_default(LevelFilter::WARN)
                .with_target("cache_runtime", LevelFilter::OFF),
            false => Targets::new().with_default(LevelFilter::WARN),
        };
        let _ = tracing_subscriber::registry()
            .with(on.then(cache_runtime::log::layer))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(others),
            )
            .try_init();
    }
}
