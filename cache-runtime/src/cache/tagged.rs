//! Result tags: tags computed from the loaded value, for entries whose
//! key does not name what they hold (an article read by slug carries
//! `article:{id}`, known only once it is loaded), so that an invalidation
//! by the id reaches them.
//!
//! The stale-set race is closed as for ordinary tags, with one more step
//! (see `load_leased` in `aside.rs`): ordinary tag versions are read before
//! the load, result tags cannot be. Every tag invalidation first changes
//! the namespace's tag epoch (`{ns#epoch}`, see `store/layout.rs`), then
//! the tags. A fill with result tags reads the epoch before the load; after
//! it, the result tags' versions and *then* the epoch. If the epoch moved, a
//! tag invalidation began while the value was loaded: it is not stored.
//! Otherwise the result tags go into the entry's tag section with the
//! versions just read, and store-if-leased checks them like the others; an
//! invalidation that begins after the epoch was read changes a version read
//! before, so the entry is refused or, stored, never served.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cache;
use crate::Policy;

/// What a fill keeps of a loaded value: for how long (`None`: not stored),
/// and the tags computed from it.
pub(crate) trait Keep<T> {
    fn ttl(&self, value: &T) -> Option<Duration>;

    /// Tags computed from the value (as given, without the namespace).
    fn result_tags(&self, _value: &T) -> Vec<String> {
        Vec::new()
    }
}

impl<T, F: Fn(&T) -> Option<Duration>> Keep<T> for F {
    fn ttl(&self, value: &T) -> Option<Duration> {
        self(value)
    }
}

/// A TTL rule and a function from the value to its tags.
pub(crate) struct Tagged<F, G> {
    pub(crate) ttl: F,
    pub(crate) tags: G,
}

impl<T, F, G> Keep<T> for Tagged<F, G>
where
    F: Fn(&T) -> Option<Duration>,
    G: Fn(&T) -> Vec<String>,
{
    fn ttl(&self, value: &T) -> Option<Duration> {
        (self.ttl)(value)
    }

    fn result_tags(&self, value: &T) -> Vec<String> {
        (self.tags)(value)
    }
}

/// `f`'s tags as strings.
fn strings<T, I>(f: impl Fn(&T) -> I) -> impl Fn(&T) -> Vec<String>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    move |v| f(v).into_iter().map(Into::into).collect()
}

impl Cache {
    /// [`get_or_load`](Self::get_or_load) whose entry also carries tags
    /// computed from the loaded value: `result_tags(&value)`, on top of the
    /// policy's tags. For an entry whose key does not name what it holds:
    /// an article read by its slug carries `article:{id}`, so that
    /// invalidating the tag `article:{id}` (after an update made by id)
    /// drops it too.
    ///
    /// The stale-set race is closed as for the policy's tags: a value loaded
    /// while any tag is invalidated is not stored (counted in
    /// `stale_sets_prevented`), and an entry whose result tag is invalidated
    /// later is never served again. Tags are written as they are; escape
    /// interpolated parts with [`keys::escape`](crate::keys::escape).
    ///
    /// Costs: a hit of such an entry reads the result tags' versions after
    /// the entry (one more round trip); a tag invalidation also changes the
    /// namespace's tag epoch (no extra round trip on standalone Redis, one
    /// on a cluster); a value loaded while *any* tag of the namespace is
    /// invalidated is returned but not stored.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use cache_runtime::{Cache, Policy, Ttl};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Article { id: u64, title: String }
    /// let cache = Cache::memory();
    /// let by_slug = |cache: Cache| async move {
    ///     cache
    ///         .get_or_load_tagged(
    ///             "article:by-slug:hello",
    ///             Policy::ttl(Ttl::LONG),
    ///             || async { Ok::<_, ()>(Article { id: 7, title: "Hello".into() }) },
    ///             |a: &Article| [format!("article:{}", a.id)],
    ///         )
    ///         .await
    /// };
    /// by_slug(cache.clone()).await.unwrap();
    /// assert!(cache.exists("article:by-slug:hello").await.unwrap());
    /// // An update made by id invalidates the slug-keyed entry too.
    /// cache.invalidator().tag("article:7").await.unwrap();
    /// assert_eq!(cache.get::<Article>("article:by-slug:hello").await.unwrap().map(|a| a.id), None);
    /// # }
    /// ```
    pub async fn get_or_load_tagged<T, E, F, Fut, G, I>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
        result_tags: G,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        G: Fn(&T) -> I,
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.read_tagged(key, policy.into(), loader, |_| false, strings(result_tags))
            .await
    }

    /// [`get_or_load_optional`](Self::get_or_load_optional) with tags
    /// computed from the loaded value, as
    /// [`get_or_load_tagged`](Self::get_or_load_tagged): `result_tags` sees
    /// the value inside `Some`; a `None` (cached with a
    /// [`negative_ttl`](Policy::negative_ttl)) carries the policy's tags
    /// only.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
    pub async fn get_or_load_optional_tagged<T, E, F, Fut, G, I>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
        result_tags: G,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        G: Fn(&T) -> I,
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.read_optional_tagged(key, policy.into(), loader, |_| false, strings(result_tags))
            .await
    }

    /// [`put_with`](Self::put_with) whose entry also carries tags computed
    /// from the value, as [`get_or_load_tagged`](Self::get_or_load_tagged).
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (nothing is stored). Store failures
    /// are logged, never returned.
    pub async fn put_with_tagged<T, E, F, Fut, G, I>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
        result_tags: G,
    ) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        G: Fn(&T) -> I,
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let value = loader().await?;
        let tags = strings(result_tags)(&value);
        self.put_with(key, policy.into().tags(tags), || async { Ok(value) })
            .await
    }

    /// Cache-aside with result tags, not storing values for which `unless`
    /// is true (the `#[cached]` expansion's entry point).
    pub(crate) async fn read_tagged<T, E, F, Fut>(
        &self,
        key: &str,
        mut policy: Policy,
        loader: F,
        unless: impl Fn(&T) -> bool,
        tags: impl Fn(&T) -> Vec<String>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        policy.result_tagged = true;
        let ttl = policy.ttl;
        let keep = Tagged {
            ttl: |v: &T| if unless(v) { None } else { Some(ttl) },
            tags,
        };
        self.load_scoped(key, policy, None, loader, keep).await
    }

    /// [`read_tagged`](Self::read_tagged) for `Option` values: `unless` sees
    /// the `Option`, `tags` the value inside `Some`.
    pub(crate) async fn read_optional_tagged<T, E, F, Fut>(
        &self,
        key: &str,
        mut policy: Policy,
        loader: F,
        unless: impl Fn(&Option<T>) -> bool,
        tags: impl Fn(&T) -> Vec<String>,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        policy.result_tagged = true;
        let rule = super::aside::optional(&policy);
        let keep = Tagged {
            ttl: |v: &Option<T>| if unless(v) { None } else { rule(v) },
            tags: |v: &Option<T>| v.as_ref().map(&tags).unwrap_or_default(),
        };
        self.load_scoped(key, policy, None, loader, keep).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Notify;

    use crate::store::Store;
    use crate::{Cache, Policy};

    const TTL: Duration = Duration::from_secs(60);

    fn tags(id: &u64) -> [String; 1] {
        [format!("article:{id}")]
    }

    #[tokio::test]
    async fn an_invalidation_by_a_result_tag_reaches_the_entry() {
        let cache = Cache::memory();
        let load = |v: u64| cache.get_or_load_tagged("by-slug:a", TTL, move || async move { Ok::<_, ()>(v) }, tags);
        assert_eq!(load(7).await, Ok(7));
        assert_eq!(load(8).await, Ok(7), "a hit");
        cache.invalidator().tag("article:8").await.unwrap();
        assert_eq!(load(8).await, Ok(7), "another id's tag leaves it");
        cache.invalidator().tag("article:7").await.unwrap();
        assert_eq!(load(8).await, Ok(8), "reloaded after its result tag was invalidated");
        assert_eq!(cache.stats().total.loads, 2);
    }

    /// A tag invalidated while the load runs (of any tag: the result's is not
    /// known yet) keeps the value from being stored.
    #[tokio::test]
    async fn an_invalidation_during_the_load_prevents_the_store() {
        let cache = Cache::memory();
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let slow = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                let loader = || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, ()>(1u64)
                };
                cache.get_or_load_tagged("by-slug:a", TTL, loader, tags).await
            })
        };
        started.notified().await;
        cache.invalidator().tag("article:1").await.unwrap();
        release.notify_one();
        assert_eq!(slow.await.unwrap(), Ok(1));
        assert!(!cache.exists("by-slug:a").await.unwrap(), "not stored");
        assert_eq!(cache.stats().total.stale_sets_prevented, 1);
    }

    /// The epoch lost during the load (evicted, flushed) never matches.
    #[tokio::test]
    async fn a_lost_epoch_prevents_the_store() {
        let cache = Cache::memory();
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let slow = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                let loader = || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, ()>(1u64)
                };
                cache.get_or_load_tagged("by-slug:a", TTL, loader, tags).await
            })
        };
        started.notified().await;
        let Store::Memory(m) = &cache.inner.store else {
            unreachable!("memory cache")
        };
        m.forget_tag(&cache.inner.layout.epoch());
        release.notify_one();
        assert_eq!(slow.await.unwrap(), Ok(1));
        assert!(!cache.exists("by-slug:a").await.unwrap(), "not stored");
    }

    #[tokio::test]
    async fn none_gets_no_result_tags() {
        let cache = Cache::memory();
        let policy = Policy::ttl(TTL).negative_ttl(TTL).tags(["articles"]);
        let load = |v: Option<u64>| {
            cache.get_or_load_optional_tagged("by-slug:x", policy.clone(), move || async move { Ok::<_, ()>(v) }, tags)
        };
        assert_eq!(load(None).await, Ok(None));
        cache.invalidator().tag("article:1").await.unwrap();
        assert_eq!(load(Some(1)).await, Ok(None), "None cached, untouched by result tags");
        cache.invalidator().tag("articles").await.unwrap();
        assert_eq!(load(Some(1)).await, Ok(Some(1)), "the policy's tags still apply");
        cache.invalidator().tag("article:1").await.unwrap();
        assert_eq!(load(Some(2)).await, Ok(Some(2)));
    }
}
