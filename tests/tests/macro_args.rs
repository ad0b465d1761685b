//! Every `#[cached]` argument of DESIGN §3 (issue 3), on Redis and in memory.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, KeyTtl, cached};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Course {
    id: i64,
    teacher_id: i64,
    title: String,
}

#[derive(Debug, PartialEq)]
struct DbError;

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("db error")
    }
}

/// A crate-local alias, as many codebases have.
type DbResult<T> = std::result::Result<T, DbError>;

const MY_TTL: Duration = Duration::from_secs(42);

/// An application's own key functions, for `key = expr`.
mod keys {
    pub fn course_details(id: i64) -> String {
        format!("course:{}", cache_runtime::keys::escape(&id))
    }
}

/// Counts executions per test: each test uses its own `Repo`.
struct Repo {
    cache: Cache,
    runs: AtomicUsize,
    tenant: u32,
    fail: std::sync::atomic::AtomicBool,
}

impl Repo {
    async fn new(backend: Backend) -> Repo {
        Repo {
            cache: cache_for(backend).await,
            runs: AtomicUsize::new(0),
            tenant: 7,
            fail: false.into(),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn tick(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
    }

    #[cached(key = "course:{id}", ttl = "90s", tags = ["courses", "teacher:{teacher}"], skip = [teacher], cache = self.cache)]
    pub async fn course(&self, id: i64, teacher: i64) -> DbResult<Course> {
        self.tick();
        if self.fail.load(Ordering::SeqCst) {
            return Err(DbError);
        }
        Ok(Course {
            id,
            teacher_id: teacher,
            title: format!("c{id}"),
        })
    }

    #[cached(key = "opt:<id>", cache = self.cache)]
    pub async fn maybe(&self, id: i64) -> DbResult<Option<String>> {
        self.tick();
        Ok((id > 0).then(|| format!("v{id}")))
    }

    #[cached(key = "neg:{id}", negative_ttl = "30s", cache = self.cache)]
    pub async fn maybe_neg(&self, id: i64) -> Option<String> {
        self.tick();
        (id > 0).then(|| format!("v{id}"))
    }

    #[cached(key = "put:{course.id}", put, tags = ["courses"], cache = self.cache)]
    pub async fn save(&self, course: &Course) -> DbResult<Course> {
        self.tick();
        if self.fail.load(Ordering::SeqCst) {
            return Err(DbError);
        }
        Ok(course.clone())
    }

    #[cached(key = "skip:{id}", skip = [log], cache = self.cache)]
    pub async fn skipping(&self, id: u32, log: &str) -> String {
        self.tick();
        format!("{id}/{log}")
    }

    #[cached(key = "ver:{id}", version = 3, ttl = MEDIUM, cache = self.cache)]
    pub async fn versioned(&self, id: u32) -> u32 {
        self.tick();
        id
    }

    #[cached(key = "tenant:{self.tenant}:{id}", ttl = { MY_TTL }, cache = self.cache)]
    pub async fn scoped(&self, id: u32) -> u32 {
        self.tick();
        id + self.tenant
    }

    #[cached(key = keys::course_details(id), ttl = crate::MY_TTL, cache = self.cache)]
    pub async fn by_key_fn(&self, id: i64) -> i64 {
        self.tick();
        id
    }

    #[cached(key = "search:{q}", ttl = Duration::from_secs(2 * 60), cache = self.cache)]
    pub async fn search(&self, q: &str) -> Vec<String> {
        self.tick();
        vec![q.to_owned()]
    }

    #[cached(
        invalidates = ["course:{course.id}", tag("teacher:{course.teacher_id}"), pattern("list:*")],
        cache = self.cache
    )]
    pub async fn update(&self, course: &Course) -> DbResult<()> {
        self.tick();
        if self.fail.load(Ordering::SeqCst) {
            Err(DbError)
        } else {
            Ok(())
        }
    }

    #[cached(key = "list:{page}", cache = self.cache)]
    pub async fn list(&self, page: u32) -> Vec<u32> {
        self.tick();
        vec![page]
    }

    #[cached(invalidates = [tag("courses")], cache = self.cache)]
    pub async fn drop_courses(&self) {
        self.tick();
    }
}

async fn ttl_of(cache: &Cache, key: &str) -> Duration {
    match cache.ttl(key).await.expect("ttl") {
        KeyTtl::ExpiresIn(d) => d,
        other => panic!("{key}: {other:?}"),
    }
}

async fn results_and_tags(backend: Backend) {
    let r = Repo::new(backend).await;
    assert_eq!(r.course(1, 9).await.map(|c| c.title), Ok("c1".into()));
    assert_eq!(r.course(1, 9).await.map(|c| c.teacher_id), Ok(9));
    assert_eq!(r.runs(), 1, "hit");
    let ttl = ttl_of(&r.cache, "course:1").await;
    assert!(
        ttl <= Duration::from_secs(90) && ttl > Duration::from_secs(70),
        "{ttl:?}"
    );

    r.fail.store(true, Ordering::SeqCst);
    assert_eq!(r.course(2, 9).await, Err(DbError));
    assert_eq!(r.course(2, 9).await, Err(DbError));
    assert_eq!(r.runs(), 3, "Err is not cached");
    r.fail.store(false, Ordering::SeqCst);

    // tags: dropping `teacher:9` drops course 1.
    assert!(r.cache.invalidator().tag("teacher:9").await.is_ok());
    r.course(1, 9).await.expect("reload");
    assert_eq!(r.runs(), 4, "tag invalidation dropped the entry");
    r.drop_courses().await;
    r.course(1, 9).await.expect("reload");
    assert_eq!(r.runs(), 6, "invalidates = [tag(..)] dropped it");
}

async fn options(backend: Backend) {
    let r = Repo::new(backend).await;
    assert_eq!(r.maybe(1).await, Ok(Some("v1".into())));
    assert_eq!(r.maybe(1).await, Ok(Some("v1".into())));
    assert_eq!(r.runs(), 1);
    assert_eq!(r.maybe(-1).await, Ok(None));
    assert_eq!(r.maybe(-1).await, Ok(None));
    assert_eq!(r.runs(), 3, "None is not cached without negative_ttl");

    assert_eq!(r.maybe_neg(-1).await, None);
    assert_eq!(r.maybe_neg(-1).await, None);
    assert_eq!(r.runs(), 4, "negative_ttl caches None");
    let ttl = ttl_of(&r.cache, "neg:-1").await;
    assert!(ttl <= Duration::from_secs(30), "{ttl:?}");
    assert_eq!(r.maybe_neg(5).await.as_deref(), Some("v5"));
    assert_eq!(r.maybe_neg(5).await.as_deref(), Some("v5"));
    assert_eq!(r.runs(), 5);
}

async fn put_skip_version(backend: Backend) {
    let r = Repo::new(backend).await;
    let c = Course {
        id: 3,
        teacher_id: 1,
        title: "t".into(),
    };
    assert_eq!(r.save(&c).await, Ok(c.clone()));
    assert_eq!(r.save(&c).await, Ok(c.clone()));
    assert_eq!(r.runs(), 2, "put always runs");
    assert_eq!(
        r.cache.get::<Course>("put:3").await.expect("get"),
        Some(c.clone()),
        "put stores"
    );
    r.fail.store(true, Ordering::SeqCst);
    let changed = Course {
        title: "new".into(),
        ..c.clone()
    };
    assert_eq!(r.save(&changed).await, Err(DbError));
    assert_eq!(
        r.cache.get::<Course>("put:3").await.expect("get"),
        Some(c.clone()),
        "Err is not stored"
    );
    r.fail.store(false, Ordering::SeqCst);

    assert_eq!(r.skipping(1, "a").await, "1/a");
    assert_eq!(
        r.skipping(1, "b").await,
        "1/a",
        "a skipped parameter does not change the key"
    );
    assert_eq!(r.runs(), 4);

    assert_eq!(r.versioned(4).await, 4);
    assert_eq!(r.versioned(4).await, 4);
    assert_eq!(r.runs(), 5);
    assert_eq!(
        r.cache.get::<u32>("ver:4:v3").await.expect("get"),
        Some(4),
        "version is appended to the key"
    );
    assert_eq!(r.cache.get::<u32>("ver:4").await.expect("get"), None);
    let ttl = ttl_of(&r.cache, "ver:4:v3").await;
    assert!(
        ttl <= Duration::from_secs(300) && ttl > Duration::from_secs(200),
        "{ttl:?}"
    );

    assert_eq!(r.scoped(1).await, 8);
    assert_eq!(r.scoped(1).await, 8);
    assert_eq!(r.runs(), 6);
    assert_eq!(r.cache.get::<u32>("tenant:7:1").await.expect("get"), Some(8));
    assert!(ttl_of(&r.cache, "tenant:7:1").await <= MY_TTL);

    assert_eq!(r.by_key_fn(11).await, 11);
    assert_eq!(r.by_key_fn(11).await, 11);
    assert_eq!(r.runs(), 7);
    assert_eq!(
        r.cache.get::<i64>("course:11").await.expect("get"),
        Some(11),
        "key = expr"
    );
    assert!(ttl_of(&r.cache, "course:11").await <= MY_TTL);

    // Interpolated values are escaped: no argument forges another key.
    assert_eq!(r.search("a:b *").await, ["a:b *"]);
    assert_eq!(r.search("a:b *").await, ["a:b *"]);
    assert_eq!(r.search("a").await, ["a"]);
    assert_eq!(r.runs(), 9);
    assert_eq!(
        r.cache.get::<Vec<String>>("search:a%3Ab%20%2A").await.expect("get"),
        Some(vec!["a:b *".to_owned()])
    );
    assert!(ttl_of(&r.cache, "search:a").await <= Duration::from_secs(120));
}

async fn invalidates_after_success(backend: Backend) {
    let r = Repo::new(backend).await;
    let c = Course {
        id: 1,
        teacher_id: 5,
        title: "x".into(),
    };
    r.course(1, 5).await.expect("load");
    r.course(2, 5).await.expect("load");
    r.course(3, 6).await.expect("load");
    r.list(1).await;
    r.list(2).await;
    let runs = r.runs();

    // A failing mutation invalidates nothing.
    r.fail.store(true, Ordering::SeqCst);
    assert_eq!(r.update(&c).await, Err(DbError));
    r.fail.store(false, Ordering::SeqCst);
    assert!(r.cache.exists("course:1").await.expect("exists"));
    assert!(r.cache.exists("list:1").await.expect("exists"));

    assert_eq!(r.update(&c).await, Ok(()));
    assert_eq!(r.runs(), runs + 2, "a pure mutation always runs");
    assert!(!r.cache.exists("course:1").await.expect("exists"), "key invalidated");
    assert!(!r.cache.exists("list:1").await.expect("exists"), "pattern invalidated");
    assert!(!r.cache.exists("list:2").await.expect("exists"), "pattern invalidated");
    // course 2 carries tag teacher:5 → dropped; course 3 (teacher 6) kept.
    r.course(2, 5).await.expect("reload");
    r.course(3, 6).await.expect("hit");
    assert_eq!(r.runs(), runs + 3, "tag invalidated teacher 5 only");
}

async fn companions(backend: Backend) {
    let r = Repo::new(backend).await;
    assert_eq!(Repo::course_key(1), "course:1");
    assert_eq!(r.scoped_key(3), "tenant:7:3");
    assert_eq!(Repo::versioned_key(1), "ver:1:v3");
    assert_eq!(Repo::skipping_key(5), "skip:5");

    r.course(1, 2).await.expect("load");
    assert_eq!(r.runs(), 1);
    assert_eq!(r.course_uncached(1, 2).await.map(|c| c.id), Ok(1));
    assert_eq!(r.runs(), 2, "_uncached runs the body");
    assert!(r.cache.exists(&Repo::course_key(1)).await.expect("exists"));

    assert_eq!(r.course_invalidate(1).await.expect("invalidate"), 1);
    assert!(!r.cache.exists("course:1").await.expect("exists"));
    r.course(1, 2).await.expect("load");
    assert_eq!(r.runs(), 3);

    assert_eq!(r.scoped(1).await, 8);
    assert_eq!(r.scoped_refresh(1).await, 8);
    assert_eq!(r.runs(), 5, "_refresh always runs");
    assert_eq!(r.scoped(1).await, 8);
    assert_eq!(r.runs(), 5, "_refresh stored the value");

    assert_eq!(r.maybe_refresh(-4).await, Ok(None));
    assert!(
        !r.cache.exists("opt:-4").await.expect("exists"),
        "None is not stored without negative_ttl"
    );
    assert_eq!(r.maybe_neg_refresh(-4).await, None);
    assert!(
        r.cache.exists("neg:-4").await.expect("exists"),
        "None stored with negative_ttl"
    );
    assert_eq!(
        r.update_uncached(&Course {
            id: 1,
            teacher_id: 1,
            title: String::new()
        })
        .await,
        Ok(())
    );
}

// ------------------------------------------------------------ free functions

/// Free functions take the cache from a parameter that is not in the key.
#[cached(key = "square:{n}", skip = [cache], cache = cache)]
pub async fn square(cache: &Cache, n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

/// `?` and early `return` in the body.
#[cached(key = "parse:{s}", skip = [cache], cache = cache)]
pub(crate) async fn parse(cache: &Cache, s: &str) -> Result<i32, String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if s.is_empty() {
        return Ok(0);
    }
    let n: i32 = s.parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(n)
}

/// Generics and `impl Trait` parameters.
#[cached(key = "show:{label}:{value}", skip = [cache], cache = cache, ttl = SHORT)]
pub async fn show<T: fmt::Display + Send + Sync>(cache: &Cache, label: impl fmt::Display + Send, value: &T) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{label}={value}")
}

#[cached(skip = [cache], cache = cache)]
async fn defaulted(cache: &Cache, a: i32, b: String) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{a}{b}")
}

#[cached(skip = [cache], cache = cache)]
pub(self) async fn defaulted_pub_self(cache: &Cache, a: i32) -> i32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    a
}

async fn free_functions(backend: Backend) {
    // RUNS is shared by the memory and Redis runs: count differences under a lock.
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = LOCK.lock().await;
    let c = cache_for(backend).await;
    let base = RUNS.load(Ordering::SeqCst);
    let runs = || RUNS.load(Ordering::SeqCst) - base;
    assert_eq!(square(&c, 3).await, 9);
    assert_eq!(square(&c, 3).await, 9);
    assert_eq!(runs(), 1);
    assert_eq!(parse(&c, "12").await, Ok(12));
    assert_eq!(parse(&c, "12").await, Ok(12));
    assert!(parse(&c, "x").await.is_err());
    assert_eq!(parse(&c, "").await, Ok(0));
    assert_eq!(parse(&c, "").await, Ok(0));
    assert_eq!(runs(), 4);
    assert_eq!(show(&c, "n", &5).await, "n=5");
    assert_eq!(show(&c, "n", &5).await, "n=5");
    assert_eq!(show(&c, String::from("n"), &"5").await, "n=5", "same key, same value");
    assert_eq!(runs(), 5);
    assert_eq!(show_key("a:b", &1), "show:a%3Ab:1");

    assert_eq!(defaulted(&c, 1, "x".into()).await, "1x");
    assert_eq!(defaulted(&c, 1, "x".into()).await, "1x");
    assert_eq!(defaulted(&c, 1, "y".into()).await, "1y");
    assert_eq!(runs(), 7);
    let key = defaulted_pub_self_key(4);
    assert_eq!(key, format!("{}::defaulted_pub_self:4", module_path!()));
    assert_eq!(defaulted_pub_self(&c, 4).await, 4);
    assert_eq!(
        c.get::<i32>(&key).await.expect("get"),
        Some(4),
        "the default key is module::fn:args"
    );
    assert_eq!(square_key(2), "square:2");
    assert_eq!(square_refresh(&c, 2).await, 4);
    assert_eq!(square_invalidate(&c, 2).await.expect("invalidate"), 1);
}

macro_rules! both {
    ($($name:ident),*) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(tests::Backend::Memory).await })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(tests::Backend::Redis).await })*
        }
        mod cluster {
            $(#[tokio::test] async fn $name() { super::$name(tests::Backend::Cluster).await })*
        }
    };
}

/// The freshness arguments (DESIGN §13) reach the policy: a failing load
/// after expiry is answered with the expired value (`stale_if_error`), and
/// within `stale_while_revalidate` the old value is served at once.
struct Fresh {
    cache: Cache,
    version: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
}

impl Fresh {
    #[cached(key = "sie:{id}", ttl = "150ms", stale_if_error = "10s", early_refresh = 0, cache = self.cache)]
    async fn sie(&self, id: u32) -> Result<usize, DbError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(DbError);
        }
        Ok(self.version.load(Ordering::SeqCst) + id as usize)
    }

    #[cached(key = "swr:{id}", ttl = "150ms", stale_while_revalidate = "10s", early_refresh = 2.5, cache = self.cache)]
    async fn swr(&self, id: u32) -> Result<usize, DbError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(self.version.load(Ordering::SeqCst) + id as usize)
    }
}

async fn freshness_arguments(backend: Backend) {
    let f = Fresh {
        cache: cache_for(backend).await,
        version: AtomicUsize::new(10),
        fail: false.into(),
    };
    assert_eq!(f.sie(1).await, Ok(11));
    tokio::time::sleep(Duration::from_millis(250)).await;
    f.fail.store(true, Ordering::SeqCst);
    assert_eq!(f.sie(1).await, Ok(11), "stale_if_error answered the failing load");
    assert_eq!(f.sie(2).await, Err(DbError), "nothing cached for another key");

    assert_eq!(f.swr(1).await, Ok(11));
    f.version.store(20, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (a, b) = tokio::join!(f.swr(1), f.swr(1));
    assert!(
        a == Ok(11) || b == Ok(11),
        "one of them was answered with the old value"
    );
    assert_eq!(f.swr(1).await, Ok(21), "and the reload was stored");
}

both!(
    results_and_tags,
    options,
    put_skip_version,
    invalidates_after_success,
    companions,
    free_functions,
    freshness_arguments
);
