//! One conformance suite, run against both backends: the in-process cache
//! and a real `redis-server` started by the harness (issue 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, CacheError, KeyTtl, Policy, keys};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for, shared_redis, unique_namespace};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Course {
    id: i64,
    title: String,
    teacher_id: i64,
    tags: Vec<String>,
}

fn course(id: i64) -> Course {
    Course {
        id,
        title: format!("Course {id}"),
        teacher_id: id % 7,
        tags: vec!["rust".into()],
    }
}

/// Two caches with different namespaces on the same storage: one Redis
/// server, or (for memory) one process — which keeps them apart by instance.
async fn two_namespaces(backend: Backend) -> (Cache, Cache) {
    let (a, b) = (unique_namespace("na"), unique_namespace("nb"));
    (
        tests::on(backend, Cache::builder().namespace(&a))
            .build()
            .await
            .unwrap(),
        tests::on(backend, Cache::builder().namespace(&b))
            .build()
            .await
            .unwrap(),
    )
}

async fn set_get_del_exists(backend: Backend) {
    let cache = cache_for(backend).await;
    assert_eq!(cache.get::<Course>("course:1").await.unwrap(), None);
    assert!(!cache.exists("course:1").await.unwrap());
    cache
        .set("course:1", &course(1), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get::<Course>("course:1").await.unwrap(), Some(course(1)));
    assert!(cache.exists("course:1").await.unwrap());
    cache
        .set("course:1", &course(2), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Course>("course:1").await.unwrap(),
        Some(course(2)),
        "set overwrites"
    );
    assert!(cache.del("course:1").await.unwrap());
    assert!(!cache.del("course:1").await.unwrap(), "second del finds nothing");
    assert_eq!(cache.get::<Course>("course:1").await.unwrap(), None);
}

async fn get_of_another_type_is_a_decode_error_naming_the_key(backend: Backend) {
    let cache = cache_for(backend).await;
    cache
        .set("course:1", &"a string", Duration::from_secs(60))
        .await
        .unwrap();
    let err = cache.get::<Course>("course:1").await.unwrap_err();
    assert!(matches!(err, CacheError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("course:1"), "{err}");
    assert_eq!(err.key(), Some("course:1"));
}

async fn ttl_reports_missing_persistent_and_expiring(backend: Backend) {
    let cache = cache_for(backend).await;
    assert_eq!(cache.ttl("nothing").await.unwrap(), KeyTtl::Missing);
    cache.set("k", &1u8, Duration::from_secs(10)).await.unwrap();
    match cache.ttl("k").await.unwrap() {
        KeyTtl::ExpiresIn(d) => assert!(d <= Duration::from_secs(10) && d > Duration::from_secs(8), "{d:?}"),
        other => panic!("expected an expiry, got {other:?}"),
    }
    cache.incr("counter").await.unwrap();
    assert_eq!(cache.ttl("counter").await.unwrap(), KeyTtl::NoExpiry);
}

async fn incr_counts_and_refuses_non_integers(backend: Backend) {
    let cache = cache_for(backend).await;
    assert_eq!(cache.incr("views").await.unwrap(), 1);
    assert_eq!(cache.incr("views").await.unwrap(), 2);
    assert_eq!(cache.incr_by("views", 5).await.unwrap(), 7);
    assert_eq!(cache.incr_by("views", -10).await.unwrap(), -3);
    assert_eq!(
        cache.get::<i64>("views").await.unwrap(),
        Some(-3),
        "counters read back with get"
    );
    cache
        .set("course:1", &course(1), Duration::from_secs(60))
        .await
        .unwrap();
    let err = cache.incr("course:1").await.unwrap_err();
    assert!(matches!(err, CacheError::NotAnInteger { .. }), "{err:?}");
    assert!(err.to_string().contains("course:1"));
    assert_eq!(
        cache.get::<Course>("course:1").await.unwrap(),
        Some(course(1)),
        "failed incr changed nothing"
    );
}

async fn incr_keeps_the_ttl(backend: Backend) {
    let cache = cache_for(backend).await;
    cache.incr("c").await.unwrap();
    assert!(cache.expire("c", Duration::from_secs(30)).await.unwrap());
    cache.incr("c").await.unwrap();
    assert!(matches!(cache.ttl("c").await.unwrap(), KeyTtl::ExpiresIn(_)));
}

async fn expire_sets_a_new_ttl(backend: Backend) {
    let cache = cache_for(backend).await;
    assert!(!cache.expire("nothing", Duration::from_secs(5)).await.unwrap());
    cache.set("k", &1u8, Duration::from_secs(100)).await.unwrap();
    assert!(cache.expire("k", Duration::from_millis(200)).await.unwrap());
    match cache.ttl("k").await.unwrap() {
        KeyTtl::ExpiresIn(d) => assert!(d <= Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!cache.exists("k").await.unwrap());
}

async fn values_expire_after_their_ttl(backend: Backend) {
    let cache = cache_for(backend).await;
    cache
        .set("short", &course(1), Duration::from_millis(300))
        .await
        .unwrap();
    cache.set("long", &course(2), Duration::from_secs(60)).await.unwrap();
    assert_eq!(cache.get::<Course>("short").await.unwrap(), Some(course(1)));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cache.get::<Course>("short").await.unwrap(), None);
    assert!(!cache.exists("short").await.unwrap());
    assert_eq!(cache.ttl("short").await.unwrap(), KeyTtl::Missing);
    assert_eq!(cache.get::<Course>("long").await.unwrap(), Some(course(2)));
}

async fn del_pattern_removes_exactly_the_matches(backend: Backend) {
    let cache = cache_for(backend).await;
    let ttl = Duration::from_secs(60);
    for k in [
        "course:1",
        "course:2",
        "course:stats:3",
        "courses:active",
        "student:1",
        "xcourse:1",
    ] {
        cache.set(k, &1u8, ttl).await.unwrap();
    }
    assert_eq!(cache.del_pattern("course:*").await.unwrap(), 3);
    for (k, present) in [
        ("course:1", false),
        ("course:2", false),
        ("course:stats:3", false),
        ("courses:active", true),
        ("student:1", true),
        ("xcourse:1", true),
    ] {
        assert_eq!(cache.exists(k).await.unwrap(), present, "{k}");
    }
    assert_eq!(cache.del_pattern("course?:*").await.unwrap(), 1);
    assert_eq!(cache.del_pattern("nothing:*").await.unwrap(), 0);
}

async fn del_pattern_walks_many_batches(backend: Backend) {
    let cache = Cache::builder().namespace(&unique_namespace("b")).scan_batch(7);
    let cache = tests::on(backend, cache).build().await.unwrap();
    for i in 0..300 {
        cache
            .set(&format!("item:{i}"), &i, Duration::from_secs(60))
            .await
            .unwrap();
    }
    cache.set("other", &1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(cache.del_pattern("item:*").await.unwrap(), 300);
    assert!(cache.exists("other").await.unwrap());
}

async fn namespaces_never_see_each_other(backend: Backend) {
    let (a, b) = two_namespaces(backend).await;
    let ttl = Duration::from_secs(60);
    a.set("course:1", &course(1), ttl).await.unwrap();
    b.set("course:1", &course(2), ttl).await.unwrap();
    b.set("course:2", &course(3), ttl).await.unwrap();
    assert_eq!(a.get::<Course>("course:1").await.unwrap(), Some(course(1)));
    assert_eq!(b.get::<Course>("course:1").await.unwrap(), Some(course(2)));
    assert!(!a.exists("course:2").await.unwrap());
    assert_eq!(a.del_pattern("*").await.unwrap(), 1, "only a's own key");
    assert_eq!(b.get::<Course>("course:1").await.unwrap(), Some(course(2)));
    a.set("x", &1, ttl).await.unwrap();
    a.invalidator().all().await.unwrap();
    assert!(!a.exists("x").await.unwrap());
    assert!(b.exists("course:1").await.unwrap() && b.exists("course:2").await.unwrap());
    assert_eq!(a.incr("n").await.unwrap(), 1);
    assert_eq!(b.incr("n").await.unwrap(), 1);
}

/// Arguments full of key syntax cannot collide with other keys nor widen a
/// pattern once escaped.
async fn escaped_arguments_cannot_collide_or_widen_patterns(backend: Backend) {
    let cache = cache_for(backend).await;
    let ttl = Duration::from_secs(60);
    let args = [
        "1",
        "1:admin",
        "*",
        "?",
        "[1]",
        "{x}",
        "a b",
        "line\nbreak",
        "%3A",
        "1%3Aadmin",
        "\\",
        "",
    ];
    for (i, a) in args.iter().enumerate() {
        cache.set(&format!("user:{}", keys::escape(a)), &i, ttl).await.unwrap();
    }
    // A literal key that an unescaped argument "1:admin" would have forged.
    cache.set("user:1:admin", &999usize, ttl).await.unwrap();
    for (i, a) in args.iter().enumerate() {
        assert_eq!(
            cache.get::<usize>(&format!("user:{}", keys::escape(a))).await.unwrap(),
            Some(i),
            "{a:?}"
        );
    }
    assert_eq!(cache.get::<usize>("user:1:admin").await.unwrap(), Some(999));
    // A pattern built from an argument "*" matches that one entry only.
    assert_eq!(
        cache.del_pattern(&format!("user:{}", keys::escape("*"))).await.unwrap(),
        1
    );
    assert_eq!(
        cache.del_pattern(&format!("user:{}", keys::escape("?"))).await.unwrap(),
        1
    );
    assert_eq!(
        cache
            .del_pattern(&format!("user:{}", keys::escape("[1]")))
            .await
            .unwrap(),
        1
    );
    for (i, a) in args.iter().enumerate().filter(|(_, a)| !["*", "?", "[1]"].contains(a)) {
        assert_eq!(
            cache.get::<usize>(&format!("user:{}", keys::escape(a))).await.unwrap(),
            Some(i),
            "{a:?}"
        );
    }
}

async fn get_or_load_misses_then_hits(backend: Backend) {
    let cache = cache_for(backend).await;
    let loads = AtomicUsize::new(0);
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(course(5))
    };
    assert_eq!(
        cache
            .get_or_load("course:5", Duration::from_secs(60), load)
            .await
            .unwrap(),
        course(5)
    );
    assert_eq!(
        cache
            .get_or_load("course:5", Duration::from_secs(60), load)
            .await
            .unwrap(),
        course(5)
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1, "second call is a hit");
    assert_eq!(
        cache.get::<Course>("course:5").await.unwrap(),
        Some(course(5)),
        "stored under the plain key"
    );
    let s = cache.stats();
    assert_eq!((s.total.hits, s.total.misses, s.total.loads), (1, 1, 1));
}

async fn get_or_load_does_not_store_errors(backend: Backend) {
    let cache = cache_for(backend).await;
    let loads = AtomicUsize::new(0);
    let failing = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Err::<Course, _>("database down")
    };
    assert_eq!(
        cache.get_or_load("course:1", Duration::from_secs(60), failing).await,
        Err("database down")
    );
    assert_eq!(
        cache.get_or_load("course:1", Duration::from_secs(60), failing).await,
        Err("database down")
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    assert!(!cache.exists("course:1").await.unwrap());
    assert_eq!(cache.stats().total.load_errors, 2);
}

async fn get_or_load_value_expires_after_its_ttl(backend: Backend) {
    let cache = cache_for(backend).await;
    let loads = AtomicUsize::new(0);
    let load = || async { Ok::<_, ()>(loads.fetch_add(1, Ordering::SeqCst)) };
    assert_eq!(cache.get_or_load("k", Duration::from_millis(300), load).await, Ok(0));
    assert_eq!(cache.get_or_load("k", Duration::from_millis(300), load).await, Ok(0));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        cache.get_or_load("k", Duration::from_millis(300), load).await,
        Ok(1),
        "reloaded after expiry"
    );
}

async fn optional_caches_none_only_with_negative_ttl(backend: Backend) {
    let cache = cache_for(backend).await;
    let loads = AtomicUsize::new(0);
    let none = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<Option<Course>, ()>(None)
    };
    cache
        .get_or_load_optional("a", Duration::from_secs(60), none)
        .await
        .unwrap();
    cache
        .get_or_load_optional("a", Duration::from_secs(60), none)
        .await
        .unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 2, "None not cached by default");
    let p = Policy::ttl(Duration::from_secs(60)).negative_ttl(Duration::from_secs(30));
    cache.get_or_load_optional("b", p.clone(), none).await.unwrap();
    assert_eq!(cache.get_or_load_optional("b", p.clone(), none).await, Ok(None));
    assert_eq!(loads.load(Ordering::SeqCst), 3, "None cached with negative_ttl");
    let some = || async { Ok::<_, ()>(Some(course(1))) };
    cache.get_or_load_optional("c", p.clone(), some).await.unwrap();
    assert_eq!(cache.get_or_load_optional("c", p, none).await, Ok(Some(course(1))));
}

async fn concurrent_misses_run_the_loader_once(backend: Backend) {
    let cache = cache_for(backend).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (cache, loads) = (cache.clone(), loads.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load("hot", Duration::from_secs(60), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, ()>(course(42))
                })
                .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(course(42)));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(cache.stats().total.coalesced_waits >= 1);
}

async fn a_cancelled_leader_does_not_strand_waiters(backend: Backend) {
    let cache = cache_for(backend).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("slow", Duration::from_secs(60), || async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<_, ()>(course(0))
                })
                .await
        })
    };
    started.notified().await;
    let loads = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("slow", Duration::from_secs(60), || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(course(1))
                    })
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    leader.abort();
    let all = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(waiters))
        .await
        .expect("waiters were stranded by the cancelled leader");
    for r in all {
        assert_eq!(r.unwrap(), Ok(course(1)));
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one waiter took over, the rest shared its load"
    );
}

async fn a_failing_leader_passes_its_error_and_waiters_retry(backend: Backend) {
    let cache = cache_for(backend).await;
    let attempt = Arc::new(AtomicUsize::new(0));
    let call = |cache: Cache, attempt: Arc<AtomicUsize>| async move {
        cache
            .get_or_load("flaky", Duration::from_secs(60), || async move {
                let n = attempt.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                if n == 0 { Err("first load fails") } else { Ok(n) }
            })
            .await
    };
    let first = tokio::spawn(call(cache.clone(), attempt.clone()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let others: Vec<_> = (0..10)
        .map(|_| tokio::spawn(call(cache.clone(), attempt.clone())))
        .collect();
    assert_eq!(first.await.unwrap(), Err("first load fails"));
    for o in others {
        assert_eq!(o.await.unwrap(), Ok(1), "waiters retried and shared one new load");
    }
    assert_eq!(attempt.load(Ordering::SeqCst), 2);
}

async fn values_of_another_type_are_misses_and_get_overwritten(backend: Backend) {
    let cache = cache_for(backend).await;
    cache
        .set("course:1", &vec![1u32, 2, 3], Duration::from_secs(60))
        .await
        .unwrap();
    cache.incr("course:2").await.unwrap();
    for key in ["course:1", "course:2"] {
        let v = cache
            .get_or_load(key, Duration::from_secs(60), || async { Ok::<_, ()>(course(1)) })
            .await;
        assert_eq!(v, Ok(course(1)));
        assert_eq!(
            cache.get::<Course>(key).await.unwrap(),
            Some(course(1)),
            "{key} overwritten"
        );
    }
    assert_eq!(cache.stats().total.decode_errors, 2);
}

async fn tag_invalidation_drops_exactly_the_tagged_entries(backend: Backend) {
    let cache = cache_for(backend).await;
    let loads = AtomicUsize::new(0);
    let load = |v: i64| {
        let loads = &loads;
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(v)
        }
    };
    let courses = || Policy::ttl(Duration::from_secs(60)).tags(["courses"]);
    let teacher = || Policy::ttl(Duration::from_secs(60)).tags(["teacher:1", "courses"]);
    let other = || Policy::ttl(Duration::from_secs(60)).tags(["students"]);
    cache.get_or_load("course:1", courses(), load(1)).await.unwrap();
    cache
        .get_or_load("teacher:1:courses", teacher(), load(2))
        .await
        .unwrap();
    cache.get_or_load("student:1", other(), load(3)).await.unwrap();
    cache
        .get_or_load("plain", Duration::from_secs(60), load(4))
        .await
        .unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 4);
    cache.invalidator().tag("courses").await.unwrap();
    assert_eq!(
        cache.get::<i64>("course:1").await.unwrap(),
        None,
        "explicit get sees the tag too"
    );
    cache.get_or_load("course:1", courses(), load(1)).await.unwrap();
    cache
        .get_or_load("teacher:1:courses", teacher(), load(2))
        .await
        .unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 6, "both tagged entries reloaded");
    cache.get_or_load("student:1", other(), load(3)).await.unwrap();
    cache
        .get_or_load("plain", Duration::from_secs(60), load(4))
        .await
        .unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 6, "untouched entries still hit");
    cache.get_or_load("course:1", courses(), load(1)).await.unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 6, "reloaded entry hits again");
    cache.invalidator().tags(["teacher:1"]).await.unwrap();
    cache.get_or_load("course:1", courses(), load(1)).await.unwrap();
    cache
        .get_or_load("teacher:1:courses", teacher(), load(2))
        .await
        .unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 7);
}

async fn a_value_loaded_before_a_tag_invalidation_is_never_served(backend: Backend) {
    let cache = cache_for(backend).await;
    let policy = Policy::ttl(Duration::from_secs(60)).tags(["courses"]);
    let gate = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let (cache, gate, policy) = (cache.clone(), gate.clone(), policy.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("course:1", policy, || async move {
                    gate.notified().await; // the old row was read; the write happens now
                    Ok::<_, ()>("old".to_owned())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    cache.invalidator().tag("courses").await.unwrap();
    gate.notify_one();
    assert_eq!(reader.await.unwrap().as_deref(), Ok("old"));
    let next = cache
        .get_or_load("course:1", policy, || async { Ok::<_, ()>("new".to_owned()) })
        .await;
    assert_eq!(
        next.as_deref(),
        Ok("new"),
        "the stale value stored after the invalidation is not served"
    );
}

async fn all_drops_the_namespace_only(backend: Backend) {
    let (a, b) = two_namespaces(backend).await;
    let ttl = Duration::from_secs(60);
    for k in ["x", "y", "__looks_internal"] {
        a.set(k, &1, ttl).await.unwrap();
        b.set(k, &1, ttl).await.unwrap();
    }
    a.get_or_load("tagged", Policy::ttl(ttl).tags(["t"]), || async { Ok::<_, ()>(1) })
        .await
        .unwrap();
    a.invalidator().all().await.unwrap();
    for k in ["x", "y", "tagged"] {
        assert!(!a.exists(k).await.unwrap(), "{k}");
        assert!(b.exists(k).await.unwrap() || k == "tagged", "{k}");
    }
}

/// Bytes planted with a raw client (garbage, truncated headers, a bare
/// string, another type's value) are misses that get overwritten; nothing
/// panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_planted_bad_bytes_are_misses_and_get_overwritten() {
    let cache = cache_for(Backend::Redis).await;
    let mut raw = shared_redis().raw().await;
    let good = {
        cache.set("probe", &course(1), Duration::from_secs(60)).await.unwrap();
        let v: Vec<u8> = ::redis::cmd("GET")
            .arg(cache_runtime::__private::full_key(&cache, "probe"))
            .query_async(&mut raw)
            .await
            .unwrap();
        v
    };
    let planted: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\xff\x00garbage\x13".to_vec()),
        ("empty", Vec::new()),
        ("header-only", good[..5].to_vec()),
        ("truncated-payload", good[..good.len() - 3].to_vec()),
        (
            "json-text",
            br#"{"id":1,"title":"x","teacher_id":1,"tags":[]}"#.to_vec(),
        ),
        ("tag-section-garbage", vec![0xC8, 0xFF, 0xFF, 1, 2]),
    ];
    for (name, bytes) in &planted {
        let key = format!("bad:{name}");
        let _: () = ::redis::cmd("SET")
            .arg(cache_runtime::__private::full_key(&cache, &key))
            .arg(bytes.as_slice())
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(
            cache.get::<Course>(&key).await.is_err(),
            "{name}: explicit get reports it"
        );
        let v = cache
            .get_or_load(&key, Duration::from_secs(60), || async { Ok::<_, ()>(course(9)) })
            .await;
        assert_eq!(v, Ok(course(9)), "{name}");
        assert_eq!(
            cache.get::<Course>(&key).await.unwrap(),
            Some(course(9)),
            "{name}: overwritten"
        );
    }
    assert_eq!(cache.stats().total.decode_errors, planted.len() as u64);
}

macro_rules! for_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Memory).await } )*
        }
        mod redis {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Redis).await } )*
        }
        mod cluster {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Cluster).await } )*
        }
    };
}

for_both_backends!(
    set_get_del_exists,
    get_of_another_type_is_a_decode_error_naming_the_key,
    ttl_reports_missing_persistent_and_expiring,
    incr_counts_and_refuses_non_integers,
    incr_keeps_the_ttl,
    expire_sets_a_new_ttl,
    values_expire_after_their_ttl,
    del_pattern_removes_exactly_the_matches,
    del_pattern_walks_many_batches,
    namespaces_never_see_each_other,
    escaped_arguments_cannot_collide_or_widen_patterns,
    get_or_load_misses_then_hits,
    get_or_load_does_not_store_errors,
    get_or_load_value_expires_after_its_ttl,
    optional_caches_none_only_with_negative_ttl,
    concurrent_misses_run_the_loader_once,
    a_cancelled_leader_does_not_strand_waiters,
    a_failing_leader_passes_its_error_and_waiters_retry,
    values_of_another_type_are_misses_and_get_overwritten,
    tag_invalidation_drops_exactly_the_tagged_entries,
    a_value_loaded_before_a_tag_invalidation_is_never_served,
    all_drops_the_namespace_only,
);
