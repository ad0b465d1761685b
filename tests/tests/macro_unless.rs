//! `#[cached(unless = ..)]` (issue 14): a value for which the predicate
//! returns `true` is returned and not stored; with `put` (and `_refresh`)
//! the key is dropped instead. On every backend.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use tests::{BACKENDS, cache_for};

#[derive(Debug)]
struct Repo {
    cache: Cache,
    runs: AtomicUsize,
}

fn is_negative(v: &i64) -> bool {
    *v < 0
}

impl Repo {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn tick(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
    }

    /// A closure over `&T` of `Result<T, E>`.
    #[cached(key = "list:{n}", unless = |v: &Vec<u32>| v.is_empty(), cache = self.cache)]
    pub async fn list(&self, n: u32) -> Result<Vec<u32>, String> {
        self.tick();
        Ok((0..n).collect())
    }

    /// A function path over a plain return value.
    #[cached(key = "balance:{v}", unless = is_negative, cache = self.cache)]
    pub async fn balance(&self, v: i64) -> i64 {
        self.tick();
        v
    }

    /// Over `&Option<T>`: refuse `None` even with a negative TTL.
    #[cached(key = "find:{id}", negative_ttl = "1m", unless = Option::is_none, cache = self.cache)]
    pub async fn find(&self, id: u32) -> Option<u32> {
        self.tick();
        id.is_multiple_of(2).then_some(id)
    }

    /// Write-through: a refused value drops what was stored.
    #[cached(key = "balance:{v}", put, unless = is_negative, cache = self.cache)]
    pub async fn put_balance(&self, v: i64) -> i64 {
        v
    }
}

#[tokio::test]
async fn refused_values_are_not_stored() {
    for backend in BACKENDS {
        let repo = Repo {
            cache: cache_for(backend).await,
            runs: AtomicUsize::new(0),
        };
        assert_eq!(repo.list(0).await.unwrap(), Vec::<u32>::new());
        assert_eq!(repo.list(0).await.unwrap(), Vec::<u32>::new());
        assert_eq!(repo.runs(), 2, "{backend:?}: an empty list is refused");
        assert_eq!(repo.list(2).await.unwrap(), [0, 1]);
        assert_eq!(repo.list(2).await.unwrap(), [0, 1]);
        assert_eq!(repo.runs(), 3, "{backend:?}: a non-empty list is cached");

        assert_eq!((repo.balance(-5).await, repo.balance(-5).await), (-5, -5));
        assert_eq!(repo.runs(), 5, "{backend:?}");
        assert_eq!((repo.balance(5).await, repo.balance(5).await), (5, 5));
        assert_eq!(repo.runs(), 6, "{backend:?}");

        assert_eq!((repo.find(1).await, repo.find(1).await), (None, None));
        assert_eq!(repo.runs(), 8, "{backend:?}: None refused despite negative_ttl");
        assert_eq!((repo.find(2).await, repo.find(2).await), (Some(2), Some(2)));
        assert_eq!(repo.runs(), 9, "{backend:?}");

        // `balance:5` is cached; a write-through whose value is refused drops it.
        assert!(repo.cache.exists(&Repo::balance_key(5)).await.unwrap());
        assert!(repo.cache.get::<i64>("balance:5").await.unwrap() == Some(5));
        repo.cache
            .set("balance:-1", &7i64, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(repo.put_balance(-1).await, -1);
        assert!(!repo.cache.exists("balance:-1").await.unwrap(), "{backend:?}");
        // `_refresh` follows `unless` too.
        assert_eq!(repo.balance_refresh(-3).await, -3);
        assert!(!repo.cache.exists("balance:-3").await.unwrap(), "{backend:?}");
        assert_eq!(repo.balance_refresh(3).await, 3);
        assert!(repo.cache.exists("balance:3").await.unwrap(), "{backend:?}");
    }
}

/// With a near cache, `unless` functions are near-cached too (they were
/// not before: every hit went to Redis): a kept value is served from the
/// process, a refused one is never stored, near or in Redis.
#[tokio::test]
async fn unless_functions_use_the_near_cache() {
    let cache = Cache::builder()
        .namespace(&tests::unique_namespace("unless-near"))
        .redis(&tests::shared_redis().url())
        .near_cache(1 << 20)
        .build()
        .await
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cache.near_cache_live() {
        assert!(std::time::Instant::now() < until, "near tier never became live");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let repo = Repo {
        cache,
        runs: AtomicUsize::new(0),
    };
    for _ in 0..5 {
        assert_eq!(repo.list(2).await.unwrap(), [0, 1]);
        assert_eq!(repo.list(0).await.unwrap(), Vec::<u32>::new());
        assert_eq!(repo.find(2).await, Some(2));
        assert_eq!(repo.find(1).await, None);
    }
    // One load for each kept value, five for each refused one.
    assert_eq!(repo.runs(), 1 + 5 + 1 + 5);
    let stats = repo.cache.stats();
    let per = |name: &str| {
        stats
            .per_function
            .iter()
            .find(|(k, _)| k.ends_with(name))
            .map(|(_, f)| *f)
            .unwrap_or_else(|| panic!("no stats for {name}"))
    };
    // Miss, Redis hit (fills the near tier), then near hits.
    assert!(per("Repo::list").near_hits >= 2, "{:?}", per("Repo::list"));
    assert!(per("Repo::find").near_hits >= 2, "{:?}", per("Repo::find"));
    assert!(!repo.cache.exists(&Repo::list_key(0)).await.unwrap());
    assert!(!repo.cache.exists(&Repo::find_key(1)).await.unwrap());
}
