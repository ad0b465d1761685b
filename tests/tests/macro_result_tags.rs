//! Tags from the loaded value (issue 15 item 2): "key by slug, invalidate
//! by id". A slug-keyed article carries `article:{result.id}`, so that a
//! mutation made by id (`favorite_article(article_id)`) or one whose result
//! names the article (`invalidates = [tag("article:{result.id}")]`) drops
//! it. `Option` results: `None` gets no result tags. On every backend.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    pub id: u64,
    pub slug: String,
    pub favorites: u32,
}

struct Repo {
    cache: Cache,
    /// The "database": id → article.
    db: Mutex<BTreeMap<u64, Article>>,
    runs: AtomicUsize,
}

impl Repo {
    fn new(cache: Cache) -> Self {
        let db = [(1, "hello"), (2, "world")]
            .into_iter()
            .map(|(id, slug)| {
                (
                    id,
                    Article {
                        id,
                        slug: slug.to_owned(),
                        favorites: 0,
                    },
                )
            })
            .collect();
        Repo {
            cache,
            db: Mutex::new(db),
            runs: AtomicUsize::new(0),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn find(&self, slug: &str) -> Option<Article> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.db.lock().unwrap().values().find(|a| a.slug == slug).cloned()
    }

    /// Keyed by slug; the id is known only after the load.
    #[cached(key = "article:{slug}", tags = ["articles", "article:{result.id}"], cache = self.cache)]
    pub async fn by_slug(&self, slug: &str) -> Result<Option<Article>, String> {
        Ok(self.find(slug))
    }

    /// A plain (non-`Option`) result, a whole-value placeholder among them.
    #[cached(key = "favorites:{slug}", tags = ["article:{result.0}", "count:{result.1}"], cache = self.cache)]
    pub async fn favorites(&self, slug: &str) -> (u64, u32) {
        let a = self.find(slug).expect("known slug");
        (a.id, a.favorites)
    }

    /// Write-through with result tags: the stored entry carries them.
    #[cached(key = "article:{slug}", put, tags = ["articles", "article:{result.id}"], skip = [favorites], cache = self.cache)]
    pub async fn set_favorites(&self, slug: &str, favorites: u32) -> Result<Option<Article>, String> {
        let mut db = self.db.lock().unwrap();
        let a = db.values_mut().find(|a| a.slug == slug).ok_or("no such article")?;
        a.favorites = favorites;
        Ok(Some(a.clone()))
    }

    /// `unless` with result tags: unpopular articles are not cached.
    #[cached(key = "popular:{slug}", tags = ["article:{result.id}"], unless = |a: &Article| a.favorites == 0, cache = self.cache)]
    pub async fn popular(&self, slug: &str) -> Result<Article, String> {
        self.find(slug).ok_or_else(|| "no such article".to_owned())
    }

    /// The mutation knows the id only: it invalidates by id.
    #[cached(invalidates = [tag("article:{article_id}")], cache = self.cache)]
    pub async fn favorite_article(&self, article_id: u64) -> Result<(), String> {
        let mut db = self.db.lock().unwrap();
        let a = db.get_mut(&article_id).ok_or("no such article")?;
        a.favorites += 1;
        Ok(())
    }

    /// The mutation's result names what changed; on `Err` nothing is
    /// invalidated.
    #[cached(invalidates = [tag("article:{result.id}")], cache = self.cache)]
    pub async fn unfavorite(&self, slug: &str) -> Result<Article, String> {
        let mut db = self.db.lock().unwrap();
        let a = db.values_mut().find(|a| a.slug == slug).ok_or("no such article")?;
        a.favorites = a.favorites.saturating_sub(1);
        Ok(a.clone())
    }

    /// An `Option` result in `invalidates`, with a result key template: a
    /// `None` invalidates nothing.
    #[cached(invalidates = ["article:{result.slug}"], cache = self.cache)]
    pub async fn reset(&self, id: u64) -> Option<Article> {
        let mut db = self.db.lock().unwrap();
        let a = db.get_mut(&id)?;
        a.favorites = 0;
        Some(a.clone())
    }
}

async fn key_by_slug_invalidate_by_id(backend: Backend) {
    let repo = Repo::new(cache_for(backend).await);
    let hello = repo.by_slug("hello").await.unwrap().expect("hello");
    assert_eq!((hello.id, hello.favorites), (1, 0));
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 1, "a hit");

    // By id, through a mutation's `invalidates`.
    repo.favorite_article(1).await.unwrap();
    assert_eq!(repo.by_slug("hello").await.unwrap().unwrap().favorites, 1);
    assert_eq!(repo.runs(), 2, "reloaded after article:1 was invalidated");

    // Another article's tag leaves it.
    repo.favorite_article(2).await.unwrap();
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 2);

    // By id, through the Invalidator.
    repo.cache.invalidator().tag("article:1").await.unwrap();
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 3);

    // Through a mutation whose result names the article.
    repo.favorite_article(1).await.unwrap();
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 4);
    let after = repo.unfavorite("hello").await.unwrap();
    assert_eq!(after.favorites, 1);
    assert_eq!(repo.by_slug("hello").await.unwrap().unwrap().favorites, 1);
    assert_eq!(repo.runs(), 5, "unfavorite's result tag dropped it");
    assert!(repo.unfavorite("nope").await.is_err(), "Err: nothing to invalidate");
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 5);

    // A result key template, and `None`.
    assert_eq!(repo.reset(9).await, None);
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 5, "a None result invalidates nothing");
    assert_eq!(repo.reset(1).await.map(|a| a.favorites), Some(0));
    assert_eq!(repo.by_slug("hello").await.unwrap().unwrap().favorites, 0);
    assert_eq!(repo.runs(), 6, "reset dropped article:{{result.slug}}");

    // The static tag still applies.
    repo.cache.invalidator().tag("articles").await.unwrap();
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 7);

    // `_refresh` stores with the result tags too.
    repo.by_slug_refresh("hello").await.unwrap();
    assert_eq!(repo.runs(), 8);
    repo.by_slug("hello").await.unwrap();
    assert_eq!(repo.runs(), 8);
    repo.favorite_article(1).await.unwrap();
    assert_eq!(repo.by_slug("hello").await.unwrap().unwrap().favorites, 1);
    assert_eq!(repo.runs(), 9, "the refreshed entry carried article:1");

    // A plain result: a tuple's fields.
    assert_eq!(repo.favorites("world").await, (2, 1));
    assert_eq!(repo.favorites("world").await, (2, 1));
    assert_eq!(repo.runs(), 10);
    repo.favorite_article(2).await.unwrap();
    assert_eq!(repo.favorites("world").await, (2, 2));
    assert_eq!(repo.runs(), 11);
    repo.cache.invalidator().tag("count:2").await.unwrap();
    repo.favorites("world").await;
    assert_eq!(repo.runs(), 12);
}

/// `put` and `unless` with result tags.
async fn put_and_unless(backend: Backend) {
    let repo = Repo::new(cache_for(backend).await);
    let stored = repo.set_favorites("hello", 5).await.unwrap().unwrap();
    assert_eq!(stored.favorites, 5);
    assert_eq!(repo.by_slug("hello").await.unwrap().unwrap().favorites, 5);
    assert_eq!(repo.runs(), 0, "written through");
    repo.favorite_article(1).await.unwrap();
    assert_eq!(repo.by_slug("hello").await.unwrap().unwrap().favorites, 6);
    assert_eq!(repo.runs(), 1, "the written entry carried article:1");

    assert_eq!(repo.popular("world").await.unwrap().favorites, 0);
    repo.popular("world").await.unwrap();
    assert_eq!(repo.runs(), 3, "unless: not cached");
    repo.favorite_article(2).await.unwrap();
    assert_eq!(repo.popular("world").await.unwrap().favorites, 1);
    repo.popular("world").await.unwrap();
    assert_eq!(repo.runs(), 4, "cached once popular");
    repo.favorite_article(2).await.unwrap();
    assert_eq!(repo.popular("world").await.unwrap().favorites, 2);
    assert_eq!(repo.runs(), 5, "and dropped by its result tag");
}

#[tokio::test]
async fn put_and_unless_all_backends() {
    for backend in tests::BACKENDS {
        put_and_unless(backend).await;
    }
}

/// `None` gets no result tags: it is cached (here without a negative TTL:
/// not at all), and an article's tag does not reach a missing slug.
async fn none_results(backend: Backend) {
    let repo = Repo::new(cache_for(backend).await);
    assert_eq!(repo.by_slug("missing").await, Ok(None));
    assert_eq!(repo.by_slug("missing").await, Ok(None));
    assert_eq!(repo.runs(), 2, "None is not cached without negative_ttl");
    // Through the runtime API, with a negative TTL.
    let cache = &repo.cache;
    let policy = cache_runtime::Policy::ttl(cache_runtime::Ttl::LONG).negative_ttl(cache_runtime::Ttl::LONG);
    let load = |slug: &'static str| {
        let (repo, policy) = (&repo, policy.clone());
        async move {
            cache
                .get_or_load_optional_tagged(
                    &format!("neg:{slug}"),
                    policy,
                    || async { Ok::<_, ()>(repo.find(slug)) },
                    |a: &Article| [format!("article:{}", a.id)],
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(load("missing").await, None);
    assert_eq!(load("missing").await, None);
    assert_eq!(repo.runs(), 3, "None cached with negative_ttl");
    cache.invalidator().tag("article:1").await.unwrap();
    assert_eq!(load("missing").await, None);
    assert_eq!(repo.runs(), 3, "no result tag on None");
    assert_eq!(load("hello").await.map(|a| a.id), Some(1));
    cache.invalidator().tag("article:1").await.unwrap();
    assert_eq!(load("hello").await.map(|a| a.id), Some(1));
    assert_eq!(repo.runs(), 5, "Some carries its result tag");
}

#[tokio::test]
async fn key_by_slug_invalidate_by_id_all_backends() {
    for backend in tests::BACKENDS {
        key_by_slug_invalidate_by_id(backend).await;
    }
}

#[tokio::test]
async fn none_results_all_backends() {
    for backend in tests::BACKENDS {
        none_results(backend).await;
    }
}

/// Deletes a key with a raw client, as eviction or a flush would.
async fn evict(backend: Backend, key: &str) {
    match backend {
        Backend::Memory => unreachable!("Redis only"),
        Backend::Redis => {
            let client = redis::Client::open(tests::shared_redis().url()).expect("url");
            let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
            let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await.expect("DEL");
        }
        Backend::Cluster => {
            let mut conn = tests::shared_cluster()
                .client()
                .get_async_connection()
                .await
                .expect("connect");
            let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await.expect("DEL");
        }
    }
}

/// The tag epoch evicted while a load with result tags runs: the epoch the
/// load started with never matches again, so the value is not stored (an
/// invalidation made meanwhile would have found no epoch to bump).
#[tokio::test]
async fn a_lost_epoch_is_a_refused_store() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let cache = cache_for(backend).await;
        let (started, release) = (
            std::sync::Arc::new(tokio::sync::Notify::new()),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        );
        let slow = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                let loader = || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, ()>(1u64)
                };
                let tags = |id: &u64| [format!("article:{id}")];
                cache
                    .get_or_load_tagged("by-slug:a", cache_runtime::Ttl::LONG, loader, tags)
                    .await
            })
        };
        started.notified().await;
        evict(backend, &format!("{{{}#epoch}}", cache.namespace())).await;
        release.notify_one();
        assert_eq!(slow.await.expect("reader"), Ok(1));
        assert!(!cache.exists("by-slug:a").await.expect("exists"), "{backend:?}: stored");
        assert_eq!(cache.stats().total.stale_sets_prevented, 1, "{backend:?}");
        // With the epoch back (created by the next load), it is stored.
        let again = cache
            .get_or_load_tagged(
                "by-slug:a",
                cache_runtime::Ttl::LONG,
                || async { Ok::<_, ()>(1u64) },
                |id: &u64| [format!("article:{id}")],
            )
            .await;
        assert_eq!(again, Ok(1));
        assert!(
            cache.exists("by-slug:a").await.expect("exists"),
            "{backend:?}: not stored"
        );
    }
}

/// With a near cache: entries with result tags are never kept in the near
/// tier (it cannot know their tags before reading them), so another
/// handle's invalidation by id is seen by the next read at once.
#[tokio::test]
async fn near_cache_handles_see_result_tag_invalidations() {
    let ns = tests::unique_namespace("near-rtags");
    let handle = || async {
        tests::on(Backend::Redis, Cache::builder().namespace(&ns).near_cache(1 << 20))
            .build()
            .await
            .expect("cache")
    };
    let (a, b) = (handle().await, handle().await);
    let loads = AtomicUsize::new(0);
    let read = |cache: &Cache| {
        let (cache, loads) = (cache.clone(), &loads);
        async move {
            cache
                .get_or_load_tagged(
                    "article:hello",
                    cache_runtime::Ttl::LONG,
                    || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(7u64)
                    },
                    |id: &u64| [format!("article:{id}")],
                )
                .await
                .unwrap()
        }
    };
    read(&a).await;
    read(&a).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    b.invalidator().tag("article:7").await.unwrap();
    read(&a).await;
    assert_eq!(loads.load(Ordering::SeqCst), 2, "reloaded at once");
}
