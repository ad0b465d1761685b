//! `#[cached]` on every supported function shape (issue 3): the second call
//! is a hit and does not run the body, on Redis and in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Course {
    id: i64,
    title: String,
}

#[derive(Debug, PartialEq)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Repo {
    cache: Cache,
    calls: AtomicUsize,
}

impl Repo {
    fn new(cache: Cache) -> Self {
        Repo {
            cache,
            calls: AtomicUsize::new(0),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Doc comments and attributes stay on the method.
    #[cached(key = "course:{id}", ttl = LONG, cache = self.cache)]
    #[allow(clippy::unused_async)]
    pub async fn course(&self, id: i64) -> Result<Course, DbError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if id < 0 {
            return Err(DbError("negative".into()));
        }
        Ok(Course {
            id,
            title: format!("course {id}"),
        })
    }

    #[cached(cache = self.cache)]
    async fn default_key(&self, a: u32, b: &str) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{a}-{b}")
    }

    #[cached(key = "arc:{id}", cache = self.cache)]
    pub async fn arc_method(self: Arc<Self>, id: u8) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        u64::from(id) * 2
    }
}

struct Counter {
    cache: Cache,
    runs: u32,
}

impl Counter {
    #[cached(key = "mut:{n}", cache = self.cache)]
    pub async fn bump(&mut self, n: u32) -> u32 {
        self.runs += 1;
        n + self.runs
    }

    /// No visibility: the body is expanded inline (no companions).
    #[cached(key = "mut-private:{n}", cache = self.cache)]
    async fn bump_private(&mut self, n: u32) -> u32 {
        self.runs += 1;
        n + self.runs
    }
}

trait CourseSource {
    async fn title(&self, id: i64) -> Option<String>;
}

/// Companions of native trait-impl methods: `#[cached(pub(crate))]` on the impl.
#[cached(pub(crate))]
impl CourseSource for Repo {
    #[cached(key = "title:{id}", cache = self.cache)]
    async fn title(&self, id: i64) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (id > 0).then(|| format!("title {id}"))
    }
}

async fn shapes(backend: Backend) {
    let repo = Repo::new(cache_for(backend).await);
    assert_eq!(repo.course(1).await.map(|c| c.title), Ok("course 1".to_owned()));
    assert_eq!(repo.course(1).await.map(|c| c.id), Ok(1));
    assert_eq!(repo.calls(), 1, "the second call is a hit");
    assert!(repo.course(-1).await.is_err());
    assert!(repo.course(-1).await.is_err());
    assert_eq!(repo.calls(), 3, "Err is not cached");

    assert_eq!(repo.default_key(1, "x").await, "1-x");
    assert_eq!(repo.default_key(1, "x").await, "1-x");
    assert_eq!(repo.default_key(1, "y").await, "1-y");
    assert_eq!(repo.calls(), 5);

    assert_eq!(repo.title(3).await.as_deref(), Some("title 3"));
    assert_eq!(repo.title(3).await.as_deref(), Some("title 3"));
    assert_eq!(repo.calls(), 6);
    assert_eq!(repo.title(-3).await, None);
    assert_eq!(repo.title(-3).await, None);
    assert_eq!(repo.calls(), 8, "None is not cached by default");
    assert_eq!(Repo::title_key(3), "title:3");
    assert_eq!(repo.title_invalidate(3).await.expect("invalidate"), 1);
    assert_eq!(repo.title(3).await.as_deref(), Some("title 3"));
    assert_eq!(repo.calls(), 9, "invalidated through the companion");

    let repo = Arc::new(repo);
    assert_eq!(repo.clone().arc_method(4).await, 8);
    assert_eq!(repo.clone().arc_method(4).await, 8);
    assert_eq!(repo.calls(), 10);

    let mut c = Counter {
        cache: repo.cache.clone(),
        runs: 0,
    };
    assert_eq!(c.bump(10).await, 11);
    assert_eq!(c.bump(10).await, 11);
    assert_eq!(c.runs, 1);
    assert_eq!(c.bump_private(10).await, 12);
    assert_eq!(c.bump_private(10).await, 12);
    assert_eq!(c.runs, 2);
}

#[tokio::test]
async fn shapes_memory() {
    shapes(Backend::Memory).await;
}

#[tokio::test]
async fn shapes_redis() {
    shapes(Backend::Redis).await;
}

#[tokio::test]
async fn shapes_cluster() {
    shapes(Backend::Cluster).await;
}
