//! `#[cached]` on `#[async_trait]` impl methods (issue 15 item 4). The impl's
//! `#[async_trait]` runs first and rewrites each method into a plain `fn`
//! returning `Pin<Box<dyn Future + Send>>` with the body in
//! `Box::pin(async move { .. })`; `#[cached]` recognises that shape and
//! caches the body inside it. Read-through, tags, `{self.field}` keys,
//! invalidation, called through `dyn Trait` and from `tokio::spawn`, and
//! the companions `#[cached(pub)]` on the impl generates, on Redis and in
//! memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use cache_runtime::{Cache, cached};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Course {
    id: i64,
    title: String,
}

/// A repository trait used as `Arc<dyn CourseRepo>`, as async-trait code does.
#[async_trait]
pub trait CourseRepo: Send + Sync {
    async fn course(&self, id: i64) -> Result<Course, String>;
    async fn title(&self, id: i64) -> Option<String>;
    async fn rename(&self, id: i64, title: String) -> Result<(), String>;
    async fn count(&self) -> usize;
}

#[derive(Debug)]
pub struct Repo {
    cache: Cache,
    tenant: u32,
    runs: AtomicUsize,
}

/// `#[cached(pub)]` on the impl: the methods' companions in an inherent
/// impl of `Repo` (above `#[async_trait]`, so it sees the `async fn`s).
#[cached(pub)]
#[async_trait]
impl CourseRepo for Repo {
    #[cached(key = "t{self.tenant}:course:{id}", tags = ["courses"], cache = self.cache)]
    async fn course(&self, id: i64) -> Result<Course, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if id < 0 {
            return Err("negative".into());
        }
        Ok(Course {
            id,
            title: format!("course {id}"),
        })
    }

    #[cached(key = "title:{id}", negative_ttl = "30s", cache = self.cache)]
    async fn title(&self, id: i64) -> Option<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (id > 0).then(|| format!("title {id}"))
    }

    #[cached(invalidates = ["t{self.tenant}:course:{id}", tag("courses")], cache = self.cache)]
    async fn rename(&self, id: i64, title: String) -> Result<(), String> {
        let _ = (id, title);
        Ok(())
    }

    #[cached(cache = self.cache)]
    async fn count(&self) -> usize {
        self.runs.fetch_add(1, Ordering::SeqCst)
    }
}

async fn async_trait_impls(backend: Backend) {
    let repo = Arc::new(Repo {
        cache: cache_for(backend).await,
        tenant: 3,
        runs: AtomicUsize::new(0),
    });
    let runs = || repo.runs.load(Ordering::SeqCst);
    let dyn_repo: Arc<dyn CourseRepo> = repo.clone();

    let c = dyn_repo.course(1).await.expect("course");
    assert_eq!(c.title, "course 1");
    assert_eq!(dyn_repo.course(1).await, Ok(c.clone()));
    assert_eq!(runs(), 1, "the second call is a hit");
    assert!(
        repo.cache.exists("t3:course:1").await.expect("exists"),
        "{{self.tenant}} in the key"
    );
    assert!(dyn_repo.course(-1).await.is_err());
    assert!(dyn_repo.course(-1).await.is_err());
    assert_eq!(runs(), 3, "Err is not cached");

    assert_eq!(dyn_repo.title(-2).await, None);
    assert_eq!(dyn_repo.title(-2).await, None);
    assert_eq!(runs(), 4, "negative_ttl caches None");

    assert_eq!(dyn_repo.count().await, 4);
    assert_eq!(dyn_repo.count().await, 4, "default key");
    assert_eq!(runs(), 5);

    // The boxed futures are Send: usable from tokio::spawn.
    let spawned = tokio::spawn({
        let r = dyn_repo.clone();
        async move { r.course(1).await }
    })
    .await
    .expect("join");
    assert_eq!(spawned, Ok(c));
    assert_eq!(runs(), 5);

    // Companions of trait-impl methods, from `#[cached(pub)]` on the impl.
    assert_eq!(repo.course_key(1), "t3:course:1");
    assert_eq!(Repo::title_key(-2), "title:-2");
    assert!(Repo::count_key().ends_with("::Repo::count"), "{}", Repo::count_key());
    assert_eq!(repo.course_uncached(5).await.map(|c| c.id), Ok(5));
    assert_eq!(runs(), 6, "_uncached runs the body");
    assert!(
        !repo.cache.exists("t3:course:5").await.expect("exists"),
        "and stores nothing"
    );
    assert_eq!(repo.course_refresh(5).await.map(|c| c.id), Ok(5));
    assert_eq!(runs(), 7);
    assert!(
        repo.cache.exists("t3:course:5").await.expect("exists"),
        "_refresh stores"
    );
    assert_eq!(repo.course_invalidate(5).await.expect("invalidate"), 1);
    repo.rename_uncached(1, "x".into()).await.expect("rename_uncached");
    assert!(
        repo.cache.exists("t3:course:1").await.expect("exists"),
        "_uncached invalidates nothing"
    );

    dyn_repo.rename(1, "new".into()).await.expect("rename");
    assert!(!repo.cache.exists("t3:course:1").await.expect("exists"));
    dyn_repo.course(1).await.expect("course");
    assert_eq!(runs(), 8, "invalidated: the body runs again");
}

#[tokio::test]
async fn async_trait_memory() {
    async_trait_impls(Backend::Memory).await;
}

#[tokio::test]
async fn async_trait_redis() {
    async_trait_impls(Backend::Redis).await;
}

/// The other order: `#[async_trait]` runs first, and `#[cached]` on the impl
/// sees the rewritten methods; the companions work the same.
#[async_trait]
pub trait Echo {
    async fn echo(&self, n: u32) -> u32;
}

#[derive(Debug)]
pub struct Echoer {
    cache: Cache,
    runs: AtomicUsize,
}

#[async_trait]
#[cached(pub)]
impl Echo for Echoer {
    #[cached(key = "echo:{n}", cache = self.cache)]
    async fn echo(&self, n: u32) -> u32 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        n
    }
}

#[tokio::test]
async fn async_trait_first_then_cached_impl() {
    let e = Echoer {
        cache: Cache::memory(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(e.echo(4).await, 4);
    assert_eq!(e.echo(4).await, 4);
    assert_eq!(e.runs.load(Ordering::SeqCst), 1);
    assert_eq!(Echoer::echo_key(4), "echo:4");
    assert_eq!(e.echo_refresh(4).await, 4);
    assert_eq!(e.echo_uncached(4).await, 4);
    assert_eq!(e.runs.load(Ordering::SeqCst), 3);
    assert_eq!(e.echo_invalidate(4).await.expect("invalidate"), 1);
}
