//! The process-wide default cache used by `#[cached]`.

use std::sync::OnceLock;

use crate::{Cache, CacheError};

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Installs the default cache for `#[cached]` methods (once per process).
///
/// # Errors
///
/// Returns [`CacheError::AlreadyInstalled`] when a cache is already installed
/// (the first one stays).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_runtime::Cache::memory();
/// cache_runtime::install(cache.clone()).unwrap();
/// assert!(cache_runtime::install(cache).is_err(), "only once");
/// assert!(cache_runtime::global().is_some());
/// # }
/// ```
pub fn install(cache: Cache) -> Result<(), CacheError> {
    GLOBAL.set(cache).map_err(|_| CacheError::AlreadyInstalled)
}

/// The installed default cache, if any.
pub fn global() -> Option<&'static Cache> {
    GLOBAL.get()
}
