//! Dropping entries by key, pattern, or the whole namespace.

use std::time::Instant;

use crate::cache::trace_op;
use crate::{Cache, CacheError};

/// Invalidation handle of a [`Cache`]: by key, tag, pattern, or the whole
/// namespace.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::{Cache, Ttl};
/// let cache = Cache::memory();
/// cache.set("course:1", &1, Ttl::LONG).await?;
/// cache.set("course:2", &2, Ttl::LONG).await?;
/// cache.set("student:1", &3, Ttl::LONG).await?;
/// let inv = cache.invalidator();
/// assert_eq!(inv.key("course:1").await?, 1);
/// assert_eq!(inv.pattern("course:*").await?, 1);
/// assert_eq!(inv.all().await?, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Invalidator {
    cache: Cache,
    /// The function invalidating (a `#[cached]` mutation), for its events.
    function: Option<&'static str>,
}

impl Invalidator {
    pub(crate) fn new(cache: Cache) -> Self {
        Invalidator { cache, function: None }
    }

    /// The same, its events naming `function`.
    pub(crate) fn named(self, function: &'static str) -> Self {
        Invalidator {
            function: Some(function),
            ..self
        }
    }

    /// Drops one key; returns how many entries were dropped (0 or 1).
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn key(&self, key: &str) -> Result<u64, CacheError> {
        self.keys([key]).await
    }

    /// Drops several keys in one round trip.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn keys<I, S>(&self, keys: I) -> Result<u64, CacheError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let start = Instant::now();
        let names: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        let label = names.join(" ");
        let r = self.cache.drop_keys(&label, &names).await;
        if r.is_ok() {
            crate::metrics::invalidation("key");
        }
        trace_op(self.cache.origin(self.function), "DEL", &label, outcome(&r), start);
        r
    }

    /// Drops every entry stored with this tag (see [`Policy::tags`](crate::Policy::tags)),
    /// in one round trip whatever their number: the tag gets a new version,
    /// and entries stored under an older one are never served again (they
    /// expire with their TTL). Returns the number of tags invalidated.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn tag(&self, tag: &str) -> Result<u64, CacheError> {
        self.tags([tag]).await
    }

    /// Drops every entry carrying any of these tags, in one round trip (two
    /// on a cluster, where the namespace's tag epoch is changed first, see
    /// [`Cache::get_or_load_tagged`](crate::Cache::get_or_load_tagged)).
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn tags<I, S>(&self, tags: I) -> Result<u64, CacheError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let start = Instant::now();
        let names: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
        let label = names.iter().map(|t| format!("tag:{t}")).collect::<Vec<_>>().join(" ");
        let r = self.cache.drop_tags(&label, &names).await;
        if r.is_ok() {
            crate::metrics::invalidation("tag");
        }
        trace_op(
            self.cache.origin(self.function),
            "INVALIDATE",
            &label,
            outcome(&r),
            start,
        );
        r.map(|()| names.len() as u64)
    }

    /// Drops every key of the namespace matching a Redis glob, with `SCAN` +
    /// `UNLINK` in batches.
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::Config`] for a malformed glob, or a backend
    /// failure ([`CacheError::Backend`], [`CacheError::Timeout`],
    /// [`CacheError::Unavailable`]: see [`CacheError::is_backend`]).
    pub async fn pattern(&self, glob: &str) -> Result<u64, CacheError> {
        let start = Instant::now();
        let r = self.cache.drop_pattern(glob).await;
        if r.is_ok() {
            crate::metrics::invalidation("pattern");
        }
        trace_op(
            self.cache.origin(self.function),
            "DEL_PATTERN",
            glob,
            outcome(&r),
            start,
        );
        r
    }

    /// Drops every key of this cache's namespace, and nothing else: never
    /// `FLUSHDB`.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn all(&self) -> Result<u64, CacheError> {
        let start = Instant::now();
        let r = self.cache.drop_all().await;
        if r.is_ok() {
            crate::metrics::invalidation("all");
        }
        trace_op(
            self.cache.origin(self.function),
            "CLEAR",
            self.cache.namespace(),
            outcome(&r),
            start,
        );
        r
    }
}

fn outcome<T>(r: &Result<T, CacheError>) -> &'static str {
    if r.is_ok() { "ok" } else { "error" }
}
