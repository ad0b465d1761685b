//! Conditional caching: the cache-aside calls with an `unless` predicate
//! over the loaded value (Spring's `unless`, cashews' `condition`). A value
//! for which it returns `true` is returned to the caller and not stored.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cache;
use crate::Policy;

impl Cache {
    /// [`get_or_load`](Self::get_or_load) that does not store the loaded
    /// value when `unless(&value)` is `true` (an empty list that should be
    /// retried soon, a partial result, a value flagged as not cacheable).
    /// The value is returned either way; a cached value is returned without
    /// asking `unless` (it passed it when it was stored).
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory();
    /// let empty = |v: &Vec<u32>| v.is_empty();
    /// let r = cache.get_or_load_unless("list", Ttl::LONG, || async { Ok::<_, ()>(vec![]) }, empty).await;
    /// assert_eq!(r, Ok(vec![]));
    /// assert!(!cache.exists("list").await.unwrap()); // not stored
    /// let r = cache.get_or_load_unless("list", Ttl::LONG, || async { Ok::<_, ()>(vec![1]) }, empty).await;
    /// assert!(cache.exists("list").await.unwrap());
    /// # }
    /// ```
    pub async fn get_or_load_unless<T, E, F, Fut, U>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
        unless: U,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        U: Fn(&T) -> bool,
    {
        let policy = policy.into();
        let keep = super::aside::refusing(super::aside::always(&policy), unless);
        self.load_scoped(key, policy, None, loader, keep).await
    }

    /// [`get_or_load_optional`](Self::get_or_load_optional) that does not
    /// store the loaded value when `unless(&value)` is `true`; `unless` sees
    /// the `Option`, so it can refuse `None` and `Some` alike.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (it is not cached). Cache failures
    /// never make an error here.
    pub async fn get_or_load_optional_unless<T, E, F, Fut, U>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
        unless: U,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        U: Fn(&Option<T>) -> bool,
    {
        let policy = policy.into();
        let keep = super::aside::refusing(super::aside::optional(&policy), unless);
        self.load_scoped(key, policy, None, loader, keep).await
    }

    /// [`put_with`](Self::put_with) that does not store the value when
    /// `unless(&value)` is `true`. The key is then dropped instead, so that
    /// readers do not keep an older value that this write replaced.
    ///
    /// # Errors
    ///
    /// Returns the loader's error, as is (nothing is stored or dropped).
    /// Store failures are logged, never returned.
    pub async fn put_with_unless<T, E, F, Fut, U>(
        &self,
        key: &str,
        policy: impl Into<Policy>,
        loader: F,
        unless: U,
    ) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        U: Fn(&T) -> bool,
    {
        let value = loader().await?;
        if unless(&value) {
            if let Err(error) = self.del(key).await {
                tracing::debug!(target: "cache_runtime", key, %error, "dropping a key after an `unless` put failed");
            }
            return Ok(value);
        }
        self.put_with(key, policy, || async { Ok(value) }).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::{Cache, Policy, Ttl};

    #[tokio::test]
    async fn refused_values_are_returned_not_stored() {
        let cache = Cache::memory();
        let loads = AtomicU32::new(0);
        let load = |v: i32| {
            let loads = &loads;
            move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(v)
            }
        };
        let negative = |v: &i32| *v < 0;
        for _ in 0..2 {
            assert_eq!(
                cache.get_or_load_unless("k", Ttl::LONG, load(-1), negative).await,
                Ok(-1)
            );
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2, "a refused value is not cached");
        for _ in 0..2 {
            assert_eq!(cache.get_or_load_unless("k", Ttl::LONG, load(5), negative).await, Ok(5));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3, "an accepted value is cached");
        assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(5));
    }

    #[tokio::test]
    async fn optional_unless_sees_the_option() {
        let cache = Cache::memory();
        let policy = Policy::ttl(Ttl::LONG).negative_ttl(Ttl::LONG);
        let none = |v: &Option<u8>| v.is_none();
        let r = cache
            .get_or_load_optional_unless("n", policy.clone(), || async { Ok::<_, ()>(None) }, none)
            .await;
        assert_eq!(r, Ok(None));
        assert!(!cache.exists("n").await.unwrap(), "None refused despite negative_ttl");
        let r = cache
            .get_or_load_optional_unless("n", policy, || async { Ok::<_, ()>(Some(3)) }, none)
            .await;
        assert_eq!(r, Ok(Some(3)));
        assert_eq!(cache.get::<Option<u8>>("n").await.unwrap(), Some(Some(3)));
    }

    #[tokio::test]
    async fn a_refused_put_drops_the_old_value() {
        let cache = Cache::memory();
        cache.set("p", &1, Ttl::LONG).await.unwrap();
        let big = |v: &i32| *v > 100;
        let r = cache
            .put_with_unless("p", Ttl::LONG, || async { Ok::<_, ()>(500) }, big)
            .await;
        assert_eq!(r, Ok(500));
        assert_eq!(cache.get::<i32>("p").await.unwrap(), None);
        let r = cache
            .put_with_unless("p", Ttl::LONG, || async { Ok::<_, ()>(7) }, big)
            .await;
        assert_eq!(r, Ok(7));
        assert_eq!(cache.get::<i32>("p").await.unwrap(), Some(7));
        // A failing loader stores and drops nothing.
        let r = cache
            .put_with_unless("p", Ttl::LONG, || async { Err::<i32, _>("db down") }, big)
            .await;
        assert_eq!(r, Err("db down"));
        assert_eq!(cache.get::<i32>("p").await.unwrap(), Some(7));
    }
}
