//! `Option<T>`, `&T`, `Box<T>` and `Arc<T>` parameters interpolate wherever
//! `T` does (issue 15 item 1): in keys, tags, invalidated keys and default
//! keys. `None` is written `%none`, which no `Some` value can spell, so a
//! viewer-less feed and a viewer's feed are two entries. On Redis and in
//! memory.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use tests::{Backend, cache_for};

/// A host type with `Display` (the orphan rule forbids `Display` for
/// `Option<UserId>`, so the macro must handle the `Option` itself).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserId(pub u32);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "u{}", self.0)
    }
}

#[derive(Debug)]
struct Repo {
    cache: Cache,
    runs: AtomicUsize,
}

impl Repo {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// The Conduit shape: the viewer is optional, and so is the limit.
    #[cached(key = "feed:{viewer}:{limit}", tags = ["feed:{viewer}"], cache = self.cache)]
    pub async fn feed(&self, viewer: Option<UserId>, limit: Option<&u32>) -> Vec<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let who = viewer.map_or_else(|| "anyone".to_owned(), |v| v.to_string());
        vec![format!("{who} {}", limit.copied().unwrap_or(10))]
    }

    /// Invalidates one viewer's feed tag (`None` is a viewer too).
    #[cached(invalidates = [tag("feed:{viewer}")], cache = self.cache)]
    pub async fn follow(&self, viewer: Option<UserId>) -> Result<(), String> {
        let _ = viewer;
        Ok(())
    }

    /// Default key with an optional and smart pointers.
    #[cached(cache = self.cache)]
    pub async fn profile(&self, id: &UserId, nick: Box<str>, team: Arc<String>, viewer: &Option<UserId>) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{id}/{nick}/{team}/{viewer:?}")
    }
}

async fn options(backend: Backend) {
    let repo = Repo {
        cache: cache_for(backend).await,
        runs: AtomicUsize::new(0),
    };
    let (ada, bob) = (Some(UserId(1)), Some(UserId(2)));

    assert_eq!(repo.feed(None, None).await, ["anyone 10"]);
    assert_eq!(repo.feed(None, None).await, ["anyone 10"]);
    assert_eq!(repo.runs(), 1, "None is cached under its own key");
    assert_eq!(
        repo.feed(ada, None).await,
        ["u1 10"],
        "a viewer is not the anonymous feed"
    );
    assert_eq!(repo.feed(ada, Some(&3)).await, ["u1 3"]);
    assert_eq!(repo.feed(bob, Some(&3)).await, ["u2 3"]);
    assert_eq!(repo.runs(), 4);
    assert_eq!(repo.feed(ada, Some(&3)).await, ["u1 3"]);
    assert_eq!(repo.runs(), 4);
    assert_eq!(Repo::feed_key(None, None), "feed:%none:%none");
    assert_eq!(Repo::feed_key(ada, Some(&3)), "feed:u1:3");

    // Tags with an Option: following as `ada` drops ada's feeds only.
    repo.follow(ada).await.expect("follow");
    assert_eq!(repo.feed(ada, Some(&3)).await, ["u1 3"]);
    assert_eq!(repo.runs(), 5, "ada's entry was dropped by her tag");
    assert_eq!(repo.feed(bob, Some(&3)).await, ["u2 3"]);
    assert_eq!(repo.feed(None, None).await, ["anyone 10"]);
    assert_eq!(repo.runs(), 5, "bob's and the anonymous feed were not");
    repo.follow(None).await.expect("follow");
    assert_eq!(repo.feed(None, None).await, ["anyone 10"]);
    assert_eq!(repo.runs(), 6, "the anonymous feed has a tag of its own");

    // `&T`, `Box<T>`, `Arc<T>`, `&Option<T>` in a default key.
    let team = Arc::new("core".to_owned());
    let p = repo.profile(&UserId(7), "n:1".into(), team.clone(), &None).await;
    assert_eq!(p, "u7/n:1/core/None");
    repo.profile(&UserId(7), "n:1".into(), team.clone(), &None).await;
    assert_eq!(repo.runs(), 7);
    repo.profile(&UserId(7), "n:1".into(), team.clone(), &ada).await;
    assert_eq!(repo.runs(), 8);
    let key = Repo::profile_key(&UserId(7), "n:1".into(), team, &None);
    assert!(key.ends_with("::Repo::profile:u7:n%3A1:core:%none"), "{key}");
}

#[tokio::test]
async fn options_memory() {
    options(Backend::Memory).await;
}

#[tokio::test]
async fn options_redis() {
    options(Backend::Redis).await;
}
