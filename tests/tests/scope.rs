//! Request scope (issue 13 item 2): `cache_runtime::scope` answers repeated
//! calls of one key from memory, so a request reads each key from Redis
//! once. Every test that counts Redis commands has its own private
//! `redis-server` (tests of one binary run in parallel) and counts them with
//! `INFO commandstats`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, Policy, RequestScope, Ttl, cached, scope};
use tests::RedisServer;

/// Calls per command (`get`, `mget`, `evalsha`, …) since the server started.
struct Commands {
    con: redis::Connection,
}

impl Commands {
    fn on(server: &RedisServer) -> Commands {
        let client = redis::Client::open(server.url()).expect("url");
        Commands {
            con: client.get_connection().expect("connect to the private redis-server"),
        }
    }

    fn snapshot(&mut self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.con)
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }

    /// Data commands run by `f` (everything but INFO and connection set-up).
    async fn during<R>(&mut self, f: impl Future<Output = R>) -> (R, BTreeMap<String, u64>) {
        let before = self.snapshot();
        let r = f.await;
        let after = self.snapshot();
        let delta = after
            .into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "info" | "ping" | "hello") && !name.starts_with("client"))
            .filter_map(|(name, n)| {
                let d = n - before.get(&name).copied().unwrap_or(0);
                (d > 0).then_some((name, d))
            })
            .collect();
        (r, delta)
    }
}

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

async fn redis_cache(server: &RedisServer) -> Cache {
    let cache = Cache::builder()
        .namespace(&tests::unique_namespace("scope"))
        .redis(&server.url())
        .build()
        .await
        .expect("cache");
    // Connect before anything is counted.
    cache.set("warm-up", &0u8, Ttl::SHORT).await.expect("redis is up");
    cache
}

/// A "database": the value of a key is its version, bumped by writes;
/// counts loads.
#[derive(Default)]
struct Db {
    version: AtomicU64,
    loads: AtomicU64,
}

impl Db {
    async fn load(&self) -> Result<u64, std::io::Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(self.version.load(Ordering::SeqCst))
    }
    fn write(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }
    fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }
}

async fn read(cache: &Cache, db: &Db, key: &str) -> u64 {
    let policy = Policy::ttl(Ttl::LONG).tags(["courses"]).name("scope::read");
    cache.get_or_load(key, policy, || db.load()).await.expect("loads")
}

async fn read_untagged(cache: &Cache, db: &Db, key: &str) -> u64 {
    cache.get_or_load(key, Ttl::LONG, || db.load()).await.expect("loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_calls_for_one_key_in_a_scope_read_redis_once() {
    let server = RedisServer::start();
    let mut commands = Commands::on(&server);
    let cache = redis_cache(&server).await;
    let db = Db::default();

    // A key that is in Redis: ten calls, one GET, nothing else.
    assert_eq!(read_untagged(&cache, &db, "course:1").await, 0);
    let (values, run) = commands
        .during(scope(async {
            let mut values = Vec::new();
            for _ in 0..10 {
                values.push(read_untagged(&cache, &db, "course:1").await);
            }
            values
        }))
        .await;
    assert_eq!(values, vec![0; 10]);
    assert_eq!(run, calls(&[("get", 1)]), "ten calls of a cached key in one scope");
    assert_eq!(db.loads(), 1);

    // A tagged key (read with the tag versions in one MGET): one MGET.
    read(&cache, &db, "course:2").await;
    let (_, run) = commands
        .during(scope(async {
            for _ in 0..10 {
                read(&cache, &db, "course:2").await;
            }
        }))
        .await;
    assert_eq!(run, calls(&[("mget", 1)]), "ten calls of a tagged key in one scope");

    // A key not cached yet: the ten calls cost what one call costs
    // outside a scope (read, lease, store), and one load.
    let (_, one) = commands.during(read(&cache, &db, "course:3")).await;
    let loads = db.loads();
    let (_, ten) = commands
        .during(scope(async {
            for _ in 0..10 {
                read(&cache, &db, "course:4").await;
            }
        }))
        .await;
    assert!(one.contains_key("mget") && one.contains_key("evalsha"), "{one:?}");
    // A tag version's lifetime is extended (PEXPIRE) only when it has less
    // left than the entry needs: that depends on when it was last touched,
    // not on the scope, so it is left out of the comparison.
    let (mut one, mut ten) = (one, ten);
    one.remove("pexpire");
    ten.remove("pexpire");
    assert_eq!(ten, one, "ten calls of a missing key in one scope vs one call");
    assert_eq!(db.loads(), loads + 1);

    let stats = cache.stats();
    assert_eq!(stats.total.scope_hits, 27, "{stats:?}");
    assert_eq!(stats.per_function["scope::read"].scope_hits, 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_scope_nothing_changes() {
    let server = RedisServer::start();
    let mut commands = Commands::on(&server);
    let cache = redis_cache(&server).await;
    let db = Db::default();
    read_untagged(&cache, &db, "course:1").await;
    let (_, run) = commands
        .during(async {
            for _ in 0..10 {
                read_untagged(&cache, &db, "course:1").await;
            }
        })
        .await;
    assert_eq!(run, calls(&[("get", 10)]));
    assert_eq!(db.loads(), 1);
    let stats = cache.stats();
    assert_eq!((stats.total.hits, stats.total.scope_hits), (10, 0));
    // A scope that ended leaves nothing behind.
    scope(read_untagged(&cache, &db, "course:1")).await;
    let (_, run) = commands.during(read_untagged(&cache, &db, "course:1")).await;
    assert_eq!(run, calls(&[("get", 1)]));
    assert!(RequestScope::current().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_in_one_scope_share_one_read() {
    let server = RedisServer::start();
    let mut commands = Commands::on(&server);
    let cache = redis_cache(&server).await;
    let db = Db::default();
    read_untagged(&cache, &db, "hot").await;
    let (values, run) = commands
        .during(scope(futures::future::join_all(
            (0..10).map(|_| read_untagged(&cache, &db, "hot")),
        )))
        .await;
    assert_eq!(values, vec![0; 10]);
    assert_eq!(run, calls(&[("get", 1)]), "joined calls of one key in one scope");

    // Not cached: ten joined calls cost what one call costs (commandstats
    // also counts the commands the lease scripts run), and one load.
    let (_, one) = commands.during(read_untagged(&cache, &db, "cold-alone")).await;
    let (values, run) = commands
        .during(scope(futures::future::join_all(
            (0..10).map(|_| read_untagged(&cache, &db, "cold")),
        )))
        .await;
    assert_eq!(values, vec![0; 10]);
    assert_eq!(db.loads(), 3);
    assert_eq!(run, one, "ten joined calls of a missing key vs one call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_scopes_do_not_share_values() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    let db = Arc::new(Db::default());
    assert_eq!(read_untagged(&cache, &db, "k").await, 0);

    let (a_read, a_reads_again) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    // Request A reads k (0), waits while k changes outside any scope, reads
    // it again: its scope still answers 0.
    let a = tokio::spawn({
        let (cache, db, a_read, a_reads_again) = (cache.clone(), db.clone(), a_read.clone(), a_reads_again.clone());
        scope(async move {
            let first = read_untagged(&cache, &db, "k").await;
            let wait = a_reads_again.notified();
            a_read.notify_one();
            wait.await;
            (first, read_untagged(&cache, &db, "k").await)
        })
    });
    a_read.notified().await;
    cache.set("k", &7u64, Ttl::LONG).await.unwrap();
    // Request B, concurrent with A: its own scope, so it reads Redis (7).
    let b = tokio::spawn({
        let (cache, db) = (cache.clone(), db.clone());
        scope(async move {
            let first = read_untagged(&cache, &db, "k").await;
            (first, read_untagged(&cache, &db, "k").await)
        })
    });
    assert_eq!(b.await.unwrap(), (7, 7), "request B");
    a_reads_again.notify_one();
    assert_eq!(a.await.unwrap(), (0, 0), "request A keeps what it read");
    assert_eq!(cache.stats().total.scope_hits, 2, "one per request");
    assert_eq!(db.loads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_inside_a_scope_is_seen() {
    let server = RedisServer::start();
    let mut commands = Commands::on(&server);
    let cache = redis_cache(&server).await;
    let db = Db::default();
    let kinds = ["key", "keys", "del", "set", "put_with", "tag", "tags", "pattern", "all"];
    for kind in kinds {
        scope(async {
            let before = read(&cache, &db, "course:9").await;
            assert_eq!(read(&cache, &db, "course:9").await, before, "{kind}: from the scope");
            db.write();
            let now = db.version.load(Ordering::SeqCst);
            let inv = cache.invalidator();
            match kind {
                "key" => assert_eq!(inv.key("course:9").await.unwrap(), 1),
                "keys" => assert_eq!(inv.keys(["course:8", "course:9"]).await.unwrap(), 1),
                "del" => assert!(cache.del("course:9").await.unwrap()),
                "set" => cache.set("course:9", &now, Ttl::LONG).await.unwrap(),
                "put_with" => {
                    let policy = Policy::ttl(Ttl::LONG).tags(["courses"]);
                    cache.put_with("course:9", policy, || db.load()).await.unwrap();
                }
                "tag" => assert_eq!(inv.tag("courses").await.unwrap(), 1),
                "tags" => assert_eq!(inv.tags(["courses", "other"]).await.unwrap(), 2),
                "pattern" => assert!(inv.pattern("course:*").await.unwrap() >= 1),
                "all" => assert!(inv.all().await.unwrap() >= 1),
                _ => unreachable!(),
            }
            assert_eq!(
                read(&cache, &db, "course:9").await,
                now,
                "{kind}: the scope sees the invalidation"
            );
            // And keeps the new value.
            let (_, run) = commands.during(read(&cache, &db, "course:9")).await;
            assert!(run.is_empty(), "{kind}: {run:?}");
        })
        .await;
    }

    // A key invalidation drops that key only.
    scope(async {
        read(&cache, &db, "course:1").await;
        read(&cache, &db, "course:2").await;
        cache.invalidator().key("course:1").await.unwrap();
        let (_, run) = commands.during(read(&cache, &db, "course:2")).await;
        assert!(run.is_empty(), "course:2 still from the scope: {run:?}");
        let (_, run) = commands.during(read(&cache, &db, "course:1")).await;
        assert!(!run.is_empty(), "course:1 read again");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_uncached_nones_are_not_kept() {
    let cache = Cache::memory();
    let loads = AtomicU64::new(0);
    scope(async {
        for _ in 0..3 {
            let r = cache
                .get_or_load("failing", Ttl::LONG, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Err::<u64, _>("db down")
                })
                .await;
            assert_eq!(r, Err("db down"));
        }
        for _ in 0..3 {
            let r = cache
                .get_or_load_optional("absent", Ttl::LONG, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<Option<u64>, ()>(None)
                })
                .await;
            assert_eq!(r, Ok(None));
        }
        // With a negative TTL, None is cached, and kept.
        for _ in 0..3 {
            let policy = Policy::ttl(Ttl::LONG).negative_ttl(Ttl::SHORT);
            let r = cache
                .get_or_load_optional("negative", policy, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<Option<u64>, ()>(None)
                })
                .await;
            assert_eq!(r, Ok(None));
        }
    })
    .await;
    assert_eq!(loads.load(Ordering::SeqCst), 7);
    assert_eq!(cache.stats().total.scope_hits, 2);
}

/// A first call that is cancelled while others wait for it: the next one
/// loads instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_first_call_lets_the_waiting_one_load() {
    let cache = Cache::memory();
    let slow = cache.get_or_load("k", Ttl::LONG, || async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, ()>(1u64)
    });
    let quick = async {
        tokio::task::yield_now().await; // after the slow call claimed the key
        cache.get_or_load("k", Ttl::LONG, || async { Ok::<_, ()>(2u64) }).await
    };
    let run = scope(async {
        let (slow, quick) = tokio::join!(tokio::time::timeout(Duration::from_millis(50), slow), quick);
        assert!(slow.is_err(), "the slow call is cancelled");
        assert_eq!(quick, Ok(2));
        // The scope holds the quick call's value.
        cache.get_or_load("k", Ttl::LONG, || async { Ok::<_, ()>(3u64) }).await
    });
    let r = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert_eq!(r, Ok(Ok(2)), "the waiting call did not hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_key_by_namespace_nest_and_travel_to_spawned_tasks() {
    let (a, b) = (
        Cache::builder().namespace("scope-a").build().await.unwrap(),
        Cache::builder().namespace("scope-b").build().await.unwrap(),
    );
    scope(async {
        let x = a.get_or_load("k", Ttl::LONG, || async { Ok::<_, ()>(1u64) }).await;
        let y = b.get_or_load("k", Ttl::LONG, || async { Ok::<_, ()>(2u64) }).await;
        assert_eq!((x, y), (Ok(1), Ok(2)), "same key, two namespaces");
        assert_eq!(RequestScope::current().map(|s| s.len()), Some(2));

        // A nested scope joins this one.
        let z = scope(a.get_or_load("k", Ttl::LONG, || async { Ok::<_, ()>(9u64) })).await;
        assert_eq!(z, Ok(1));

        // A spawned task is outside unless the scope is handed over.
        let (c, current) = (a.clone(), RequestScope::current().unwrap());
        let outside = tokio::spawn(async { RequestScope::current().is_none() }).await.unwrap();
        assert!(outside);
        let inside = tokio::spawn(
            current.run(async move { c.get_or_load("k", Ttl::LONG, || async { Ok::<_, ()>(9u64) }).await }),
        )
        .await
        .unwrap();
        assert_eq!(inside, Ok(1));
    })
    .await;
    assert_eq!(a.stats().total.scope_hits, 2);
}

// ------------------------------------------------------------------ axum

struct Courses {
    cache: Cache,
    queries: AtomicU64,
}

impl Courses {
    #[cached(key = "course:{id}:title", ttl = LONG, cache = self.cache)]
    async fn title(&self, id: u64) -> String {
        self.queries.fetch_add(1, Ordering::SeqCst);
        format!("Course {id}")
    }
}

async fn page(
    axum::extract::State(courses): axum::extract::State<Arc<Courses>>,
    axum::extract::Path(id): axum::extract::Path<u64>,
) -> String {
    // The page and its header both need the title.
    let header = courses.title(id).await;
    let body = courses.title(id).await;
    format!("{header}|{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_gives_each_request_a_scope() {
    let server = RedisServer::start();
    let mut commands = Commands::on(&server);
    let courses = Arc::new(Courses {
        cache: redis_cache(&server).await,
        queries: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/course/{id}", axum::routing::get(page))
        .layer(cache_runtime::ScopeLayer::new())
        .with_state(courses.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut client = examples::web::client::Client::new(addr).unwrap();

    courses.title(7).await; // cached in Redis
    let (r, run) = commands.during(client.get("/course/7")).await;
    assert_eq!(r.unwrap().text(), "Course 7|Course 7");
    assert_eq!(run, calls(&[("get", 1)]), "one request calling the cached fn twice");

    // Each request has its own scope: two requests, two reads.
    let (_, run) = commands
        .during(async {
            client.get("/course/7").await.unwrap();
            client.get("/course/7").await.unwrap();
        })
        .await;
    assert_eq!(run, calls(&[("get", 2)]), "two requests");
    assert_eq!(courses.queries.load(Ordering::SeqCst), 1);
    assert_eq!(courses.cache.stats().total.scope_hits, 3);
    serve.abort();
}

/// The `unless` reads share the scope like every other read: a kept value
/// answers the scope's later calls (one Redis read for ten calls), a value
/// `unless` refused is neither stored nor remembered by the scope (each
/// call loads again). Before this was fixed the `unless` reads skipped the
/// scope: ten calls were ten `GET`s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unless_reads_share_the_scope_and_refused_values_are_not_kept() {
    let server = RedisServer::start();
    let mut commands = Commands::on(&server);
    let cache = redis_cache(&server).await;
    let db = Db::default();
    let never = |_: &u64| false;
    let always = |_: &u64| true;
    let unless_read = |key: &'static str, refuse: fn(&u64) -> bool| {
        let (cache, db) = (&cache, &db);
        async move {
            cache
                .get_or_load_unless(key, Ttl::LONG, || db.load(), refuse)
                .await
                .expect("loads")
        }
    };
    assert_eq!(unless_read("kept", never).await, 0);
    let (_, run) = commands
        .during(scope(async {
            for _ in 0..10 {
                assert_eq!(unless_read("kept", never).await, 0);
            }
        }))
        .await;
    assert_eq!(
        run,
        calls(&[("get", 1)]),
        "ten unless-reads of a cached key in one scope"
    );
    assert_eq!(db.loads(), 1);

    let (_, _) = commands
        .during(scope(async {
            for _ in 0..3 {
                unless_read("refused", always).await;
            }
        }))
        .await;
    assert_eq!(db.loads(), 4, "a refused value is loaded again by each call");
    assert!(!cache.exists("refused").await.unwrap());

    // The Option form too.
    let opt = || async {
        cache
            .get_or_load_optional_unless("opt", Ttl::LONG, || async { Ok::<_, ()>(Some(7u8)) }, |_| false)
            .await
    };
    opt().await.unwrap();
    let (_, run) = commands
        .during(scope(async {
            for _ in 0..5 {
                assert_eq!(opt().await, Ok(Some(7)));
            }
        }))
        .await;
    assert_eq!(run, calls(&[("get", 1)]), "five optional unless-reads in one scope");
    assert_eq!(cache.stats().total.scope_hits, 13);
}
