//! Cache-aside for async Rust, on Redis or in process.
//!
//! * [`Cache`]: one cheap-to-clone handle over Redis (one multiplexed,
//!   self-reconnecting connection; Sentinel and Cluster too) or an
//!   in-process [moka] cache, with the explicit operations (`get`, `set`,
//!   `del`, `del_pattern`, `exists`, `ttl`, `incr`, `expire`) and
//!   cache-aside ([`Cache::get_or_load`]).
//! * [`Ttl`] constants, [`Policy`] (TTL, tags, negative TTL), [`keys`]
//!   (escaping of interpolated values), [`Invalidator`], [`Warmer`],
//!   [`Stats`].
//! * [`cached`] (feature `macros`, on by default) turns async methods into
//!   cache-aside code that calls this API.
//!
//! ```toml
//! [dependencies]
//! cache-runtime = "0.1"
//! ```
//!
//! # Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cache_runtime::{Cache, Policy, Ttl};
//!
//! // REDIS_URL set → Redis, otherwise in-process.
//! let cache = Cache::from_env().await?;
//! let course = cache
//!     .get_or_load("course:42", Policy::ttl(Ttl::LONG), || async {
//!         // the database query; only runs on a miss
//!         Ok::<_, std::io::Error>(String::from("Rust 101"))
//!     })
//!     .await?;
//! assert_eq!(course, "Rust 101");
//! # Ok(()) }
//! ```
//!
//! # Cookbook
//!
//! ## A repository struct
//!
//! The common shape: the repository holds its cache (`cache = self.cache`)
//! or uses the one [`install`]ed for the process (no `cache = …`).
//!
//! ```
//! # #[cfg(feature = "macros")] mod m {
//! use cache_runtime::{Cache, cached};
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! pub struct CourseRepository { pub cache: Cache, pub queries: AtomicU32 }
//!
//! impl CourseRepository {
//!     #[cached(key = "course:{id}:title", ttl = LONG, tags = ["courses"], cache = self.cache)]
//!     pub async fn title(&self, id: i64) -> Result<String, std::io::Error> {
//!         self.queries.fetch_add(1, Ordering::Relaxed); // the database query
//!         Ok(format!("Course {id}"))
//!     }
//!
//!     #[cached(invalidates = ["course:{id}:title"], cache = self.cache)]
//!     pub async fn rename(&self, id: i64, title: &str) -> Result<(), std::io::Error> {
//!         Ok(()) // the UPDATE
//!     }
//! }
//!
//! # pub async fn run() -> Result<(), std::io::Error> {
//! let repo = CourseRepository { cache: Cache::memory(), queries: AtomicU32::new(0) };
//! assert_eq!(repo.title(7).await?, "Course 7");
//! assert_eq!(repo.title(7).await?, "Course 7"); // a hit: no query
//! assert_eq!(repo.queries.load(Ordering::Relaxed), 1);
//! repo.rename(7, "Rust").await?;                // drops course:7:title
//! repo.title(7).await?;
//! assert_eq!(repo.queries.load(Ordering::Relaxed), 2);
//! assert_eq!(CourseRepository::title_key(7), "course:7:title");
//! # Ok(()) }
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # #[cfg(feature = "macros")] m::run().await.unwrap();
//! # }
//! ```
//!
//! A key that does not cover every parameter does not compile: two calls
//! differing only in `tenant` would share one entry.
//!
//! ```compile_fail
//! use cache_runtime::cached;
//! #[cached(key = "dashboard:{user}")]
//! async fn dashboard(tenant: u64, user: u64) -> u64 { tenant + user }
//! ```
//!
//! ## An axum handler
//!
//! Build the cache once, install it (or put it in the state), and call the
//! cached repositories from handlers as before. `Cache` is a cheap `Clone`
//! and `get_or_load` futures are `Send`, so both work in axum as they are; a
//! Redis outage becomes loader calls, never a 500.
//!
//! ```ignore
//! use axum::{Json, Router, extract::{Path, State}, routing::get};
//! use std::sync::Arc;
//!
//! async fn course(State(repo): State<Arc<CourseRepository>>, Path(id): Path<i64>)
//!     -> Result<Json<Course>, AppError>
//! {
//!     Ok(Json(repo.course(id).await?)) // a #[cached] method
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let cache = cache_runtime::Cache::builder().namespace("courses-api").env_overrides().build().await?;
//!     cache_runtime::install(cache.clone())?; // for #[cached] without `cache = …`
//!     let repo = Arc::new(CourseRepository::new(pool, cache));
//!     let app = Router::new().route("/courses/{id}", get(course)).with_state(repo);
//!     axum::serve(tokio::net::TcpListener::bind("0.0.0.0:3000").await?, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Switching Redis on by environment
//!
//! [`Cache::from_env`] (or [`CacheBuilder::env_overrides`] after your own
//! defaults) reads the deployment's choice, so the same binary runs with
//! an in-process cache on a laptop and on Redis in production:
//!
//! | variable | effect |
//! | --- | --- |
//! | `REDIS_URL` | Redis at that URL (`redis://`, `rediss://` with `tls`) |
//! | `REDIS_SENTINEL_URLS`, `REDIS_SENTINEL_MASTER` | the primary these sentinels name |
//! | `REDIS_CLUSTER_URLS` | a Redis Cluster (feature `cluster`) |
//! | `CACHE_NAMESPACE` | the key prefix |
//! | `CACHE_DISABLED=1` | no caching at all: every call runs its loader |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
//! let cache = cache_runtime::Cache::builder()
//!     .namespace("lms")        // the application's default…
//!     .env_overrides()         // …which CACHE_NAMESPACE, REDIS_URL, … override
//!     .build()
//!     .await?;
//! println!("caching in {}", cache.backend());
//! # Ok(()) }
//! ```
//!
//! ## Invalidation on write
//!
//! A mutation names what it makes stale; the entries are dropped after its
//! body succeeds. By key (`"course:{course.id}"`), by tag (every entry
//! stored with that tag, in one round trip) or by pattern. By hand, the
//! same through an [`Invalidator`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
//! use cache_runtime::{Cache, Policy, Ttl};
//! let cache = Cache::memory();
//! let load = || async { Ok::<_, std::io::Error>(vec!["Rust 101".to_owned()]) };
//! let policy = Policy::ttl(Ttl::LONG).tags(["courses"]);
//! cache.get_or_load("courses:active", policy.clone(), load).await.unwrap();
//! // … the UPDATE succeeded:
//! cache.invalidator().tag("courses").await?;
//! assert!(cache.get::<Vec<String>>("courses:active").await?.is_none());
//! # Ok(()) }
//! ```
//!
//! When the key does not name what the entry holds (an article read by its
//! slug, invalidated by its id), tag it from the loaded value:
//! [`Cache::get_or_load_tagged`], or `tags = ["article:{result.id}"]` in
//! `#[cached]`.
//!
//! ## Tests
//!
//! Give the code under test [`Cache::disabled()`] to see every call reach
//! the database (nothing is stored, every loader runs), or
//! [`Cache::memory()`] for a private, empty cache per test; no Redis
//! needed. A whole test run can turn caching off with `CACHE_DISABLED=1`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cache_runtime::{Cache, Ttl};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! let queries = AtomicU32::new(0);
//! let cache = Cache::disabled();
//! for _ in 0..2 {
//!     cache.get_or_load("k", Ttl::LONG, || async {
//!         queries.fetch_add(1, Ordering::Relaxed);
//!         Ok::<_, std::io::Error>(1)
//!     }).await.unwrap();
//! }
//! assert_eq!(queries.load(Ordering::Relaxed), 2);
//! # }
//! ```
//!
//! # Failure model
//!
//! The explicit operations return [`CacheError`], with the key in the
//! message. The cache-aside path never fails because of the cache: every
//! backend call has a timeout (builder: `operation_timeout`, default 250 ms),
//! repeated failures open a circuit breaker (`circuit_breaker`, default 5
//! failures, 1 s cool-down, then one probe), and a read that fails, times
//! out, or finds bytes that do not decode is a miss, answered by the loader.
//! Values that fail to encode or exceed `max_value_bytes` are returned but
//! not stored. `Cache::redis` connects lazily, so it succeeds while Redis is
//! down, and the connection reconnects by itself.
//!
//! The Redis backend needs a Tokio runtime with timers enabled (the default
//! of `#[tokio::main]`).
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `macros` | yes | the [`cached`] attribute |
//! | `redis` | yes | the Redis backends (standalone and Sentinel); without it the cache is in-process only and redis-rs is not compiled |
//! | `msgpack` | yes | [`Codec::MessagePack`], then the default codec |
//! | `json` | no | states the JSON codec explicitly; [`Codec::Json`] is always compiled |
//! | `tls` | no | `rediss://` URLs (rustls) |
//! | `cluster` | no | Redis Cluster ([`CacheBuilder::redis_cluster`]) |
//! | `metrics` | no | counters and histograms through the `metrics` facade |
//!
//! [moka]: https://docs.rs/moka

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod cache;
mod codec;
mod error;
mod flight;
mod glob;
mod global;
mod invalidate;
pub mod keys;
pub mod log;
mod metrics;
mod near;
mod policy;
#[cfg(feature = "redis")]
mod redact;
mod scope;
mod stats;
mod store;
mod ttl;
mod warm;

pub use cache::{BackendKind, Cache, CacheBuilder, DEFAULT_NAMESPACE};
pub use codec::Codec;
pub use error::CacheError;
pub use global::{global, install};
pub use invalidate::Invalidator;
pub use policy::Policy;
pub use scope::{MAX_SCOPE_BYTES, RequestScope, scope};
#[cfg(feature = "tower")]
pub use scope::{ScopeLayer, ScopeService};
pub use stats::{FunctionStats, Stats};
pub use store::KeyTtl;
pub use ttl::Ttl;
pub use warm::{WarmProgress, WarmReport, Warmer};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
pub use cache_macros::cached;

/// Support for code generated by `#[cached]`. Not a public API.
#[doc(hidden)]
pub mod __private;
