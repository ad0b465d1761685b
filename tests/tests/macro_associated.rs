//! Associated functions without a receiver (issue 9 item 11): the
//! `User::find(&pool, id)` shape of sqlx code. They get companions and work
//! read-through like methods and free functions, on Redis and in memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Team {
    id: i64,
}

/// Body runs per type, so the two types' tests do not share counters.
static USER_RUNS: AtomicUsize = AtomicUsize::new(0);
static TEAM_RUNS: AtomicUsize = AtomicUsize::new(0);

impl User {
    /// The shape: no receiver, no `Self` in the signature.
    #[cached(key = "user:{id}", skip = [cache], cache = cache)]
    pub async fn find(cache: &Cache, id: i64) -> Result<User, String> {
        USER_RUNS.fetch_add(1, Ordering::SeqCst);
        if id < 0 {
            return Err("negative id".into());
        }
        Ok(User {
            id,
            name: format!("user {id}"),
        })
    }

    /// Default key: the type's name is part of it.
    #[cached(skip = [cache], cache = cache)]
    pub async fn by_default_key(cache: &Cache, id: i64) -> i64 {
        USER_RUNS.fetch_add(1, Ordering::SeqCst);
        id
    }

    /// Private (`pub(self)`) associated functions get companions too.
    #[cached(key = "user-name:{id}", skip = [cache], cache = cache)]
    pub(self) async fn name_of(cache: &Cache, id: i64) -> Option<String> {
        USER_RUNS.fetch_add(1, Ordering::SeqCst);
        (id > 0).then(|| format!("user {id}"))
    }
}

impl Team {
    /// Same name and default key shape as `User::by_default_key`: must not share entries.
    #[cached(skip = [cache], cache = cache)]
    pub async fn by_default_key(cache: &Cache, id: i64) -> i64 {
        TEAM_RUNS.fetch_add(1, Ordering::SeqCst);
        -id
    }
}

async fn associated(backend: Backend) {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = LOCK.lock().await;
    let cache = cache_for(backend).await;
    let c = &cache;
    let base = USER_RUNS.load(Ordering::SeqCst);
    let runs = || USER_RUNS.load(Ordering::SeqCst) - base;

    // Read-through: the second call is a hit.
    let u = User::find(c, 1).await.expect("found");
    assert_eq!(u.name, "user 1");
    assert_eq!(User::find(c, 1).await, Ok(u.clone()));
    assert_eq!(runs(), 1, "the second call is a hit");
    assert!(User::find(c, -1).await.is_err());
    assert!(User::find(c, -1).await.is_err());
    assert_eq!(runs(), 3, "Err is not cached");

    // Companions, called on the type.
    assert_eq!(User::find_key(1), "user:1");
    assert_eq!(c.get::<User>(&User::find_key(1)).await.expect("get"), Some(u.clone()));
    assert_eq!(User::find_uncached(c, 1).await, Ok(u.clone()));
    assert_eq!(runs(), 4, "_uncached runs the body");
    assert_eq!(User::find(c, 1).await, Ok(u.clone()));
    assert_eq!(runs(), 4, "_uncached did not touch the entry");
    assert_eq!(User::find_refresh(c, 1).await, Ok(u.clone()));
    assert_eq!(runs(), 5, "_refresh runs the body");
    assert_eq!(User::find_invalidate(c, 1).await.expect("invalidate"), 1);
    assert_eq!(User::find(c, 1).await, Ok(u));
    assert_eq!(runs(), 6, "invalidated: the body runs again");

    assert_eq!(User::name_of(c, 2).await.as_deref(), Some("user 2"));
    assert_eq!(User::name_of(c, 2).await.as_deref(), Some("user 2"));
    assert_eq!(runs(), 7);
    assert_eq!(User::name_of_key(2), "user-name:2");

    // Default keys name the type: `User::by_default_key` and
    // `Team::by_default_key` with the same argument are two entries.
    let team_base = TEAM_RUNS.load(Ordering::SeqCst);
    assert_eq!(User::by_default_key(c, 5).await, 5);
    assert_eq!(Team::by_default_key(c, 5).await, -5);
    assert_eq!(User::by_default_key(c, 5).await, 5);
    assert_eq!(Team::by_default_key(c, 5).await, -5);
    assert_eq!(runs(), 8);
    assert_eq!(TEAM_RUNS.load(Ordering::SeqCst) - team_base, 1);
    let (user_key, team_key) = (User::by_default_key_key(5), Team::by_default_key_key(5));
    assert_ne!(user_key, team_key);
    assert_eq!(user_key, format!("{}::User::by_default_key:5", module_path!()));
    assert_eq!(team_key, format!("{}::Team::by_default_key:5", module_path!()));
    assert_eq!(c.get::<i64>(&team_key).await.expect("get"), Some(-5));
}

#[tokio::test]
async fn associated_functions_memory() {
    associated(Backend::Memory).await;
}

#[tokio::test]
async fn associated_functions_redis() {
    associated(Backend::Redis).await;
}
