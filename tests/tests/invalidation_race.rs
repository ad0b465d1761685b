//! The stale-set race of naive cache-aside (issue 4, DESIGN §5.2): a reader
//! misses and reads the old row; a writer updates the row and invalidates;
//! the reader then stores the old row, which would be served until its TTL.
//!
//! Each round forces that worst interleaving (the reader's loader is held
//! between reading the source of truth and returning), adds concurrent
//! readers on a second cache handle (a second "process" on the same Redis)
//! in a random order, and, once everything is quiet, checks that a read
//! returns the current value. Zero stale reads over 1,000 rounds per backend
//! and invalidation kind; the same rounds against a naive get-then-set
//! implementation find stale reads, so the test is known to detect the race.
//!
//! Result tags (issue 15 item 2) run the same rounds: the entry's tag is
//! computed from the loaded value (`get_or_load_tagged`), so it is unknown
//! when the load starts, and the writer invalidates that tag.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, Policy};
use tests::{Backend, unique_namespace};
use tokio::sync::Notify;

const TTL: Duration = Duration::from_secs(60);
const KEY: &str = "course:1";
const TAG: &str = "courses";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Impl {
    /// `get_or_load` with its leases and tag versions.
    Ours,
    /// The textbook version: `get`, on a miss load and `set`.
    Naive,
    /// `get_or_load_tagged`: the entry also carries `article:{id}`, with the
    /// id taken from the loaded value (the high half of the `u64`).
    OursResultTags,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Invalidation {
    Key,
    Tag,
    /// The tag computed from the value (`article:0`: every value of these
    /// rounds has id 0).
    ResultTag,
}

fn policy() -> Policy {
    Policy::ttl(TTL).tags([TAG])
}

/// One read of the key through the implementation under test.
async fn read<F>(imp: Impl, cache: &Cache, load: F) -> u64
where
    F: AsyncFnOnce() -> u64,
{
    match imp {
        Impl::Ours => cache
            .get_or_load(KEY, policy(), || async { Ok::<_, ()>(load().await) })
            .await
            .unwrap_or(u64::MAX),
        Impl::OursResultTags => cache
            .get_or_load_tagged(
                KEY,
                policy(),
                || async { Ok::<_, ()>(load().await) },
                |v: &u64| [format!("article:{}", v >> 32)],
            )
            .await
            .unwrap_or(u64::MAX),
        Impl::Naive => {
            if let Ok(Some(v)) = cache.get::<u64>(KEY).await {
                return v;
            }
            let v = load().await;
            let _ = cache.set(KEY, &v, TTL).await;
            v
        }
    }
}

async fn invalidate(cache: &Cache, how: Invalidation) {
    match how {
        Invalidation::Key => cache.invalidator().key(KEY).await.map(drop),
        Invalidation::Tag => cache.invalidator().tag(TAG).await.map(drop),
        Invalidation::ResultTag => cache.invalidator().tag("article:0").await.map(drop),
    }
    .expect("invalidation");
}

/// Two handles on one store: for Redis, two independent caches (separate
/// single-flight maps, like two processes); in process, one cache shared.
async fn handles(backend: Backend) -> (Cache, Cache) {
    let ns = unique_namespace("race");
    match backend {
        Backend::Memory => {
            let c = Cache::builder().namespace(&ns).memory().build().await.expect("cache");
            (c.clone(), c)
        }
        Backend::Redis | Backend::Cluster => {
            let a = tests::on(backend, Cache::builder().namespace(&ns))
                .build()
                .await
                .expect("cache");
            let b = tests::on(backend, Cache::builder().namespace(&ns))
                .build()
                .await
                .expect("cache");
            (a, b)
        }
    }
}

/// Runs `rounds` rounds; returns how many ended with a stale read.
async fn race(backend: Backend, imp: Impl, how: Invalidation, rounds: u64) -> u64 {
    let (a, b) = handles(backend).await;
    race_on(&a, &b, imp, how, rounds).await
}

/// [`race`] on two given handles.
async fn race_on(a: &Cache, b: &Cache, imp: Impl, how: Invalidation, rounds: u64) -> u64 {
    let db = Arc::new(AtomicU64::new(0));
    let mut stale = 0;
    for round in 0..rounds {
        invalidate(a, how).await; // everyone starts with a miss
        let read_done = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());

        // The slow reader: reads the row, then is held at the worst moment.
        let slow = {
            let (cache, db, read_done, release) = (a.clone(), db.clone(), read_done.clone(), release.clone());
            tokio::spawn(async move {
                read(imp, &cache, async || {
                    let v = db.load(Ordering::SeqCst);
                    read_done.notify_one();
                    release.notified().await;
                    v
                })
                .await
            })
        };
        read_done.notified().await;

        // The writer: updates the source of truth, then invalidates.
        db.store(round + 1, Ordering::SeqCst);
        invalidate(b, how).await;

        // Other readers, on the other handle, before or after the slow
        // reader resumes (by round parity).
        let others = |db: Arc<AtomicU64>, cache: Cache| {
            tokio::spawn(async move {
                read(imp, &cache, async || {
                    let v = db.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    v
                })
                .await
            })
        };
        if round % 2 == 0 {
            // Let them finish first where they can (in process they are
            // single-flight waiters on the slow reader, so give up waiting).
            let mut o = others(db.clone(), b.clone());
            let early = tokio::time::timeout(Duration::from_millis(20), &mut o).await;
            release.notify_one();
            let _ = slow.await;
            if early.is_err() {
                let _ = o.await;
            }
        } else {
            release.notify_one();
            let o = others(db.clone(), b.clone());
            let _ = slow.await;
            let _ = o.await;
        }

        // Quiet: every read must now see the current value.
        let current = db.load(Ordering::SeqCst);
        for cache in [a, b] {
            let seen = read(imp, cache, async || db.load(Ordering::SeqCst)).await;
            if seen != current {
                stale += 1;
                break;
            }
        }
    }
    stale
}

macro_rules! race_tests {
    ($($name:ident: $backend:expr, $how:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let stale = race($backend, Impl::Ours, $how, 1000).await;
            assert_eq!(stale, 0, "stale reads after quiescence over 1,000 rounds");
        }
    )*};
}

/// Result tags: 1,000 rounds per backend, 0 stale reads. The slow reader's
/// stores were refused: the writer invalidates only the result tag, which
/// the reader learns after its load, so only the tag epoch (moved during the
/// load) refuses them; without it they would be stored under the tag's new
/// version and served stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_reads_with_result_tags_all_backends() {
    for backend in tests::BACKENDS {
        let (a, b) = handles(backend).await;
        let stale = race_on(&a, &b, Impl::OursResultTags, Invalidation::ResultTag, 1000).await;
        assert_eq!(stale, 0, "{backend:?}: stale reads after quiescence over 1,000 rounds");
        let prevented = a.stats().total.stale_sets_prevented;
        assert!(
            prevented >= 900,
            "{backend:?}: only {prevented} stores refused in 1,000 rounds"
        );
    }
}

race_tests! {
    no_stale_reads_memory_key_invalidation: Backend::Memory, Invalidation::Key;
    no_stale_reads_memory_tag_invalidation: Backend::Memory, Invalidation::Tag;
    no_stale_reads_redis_key_invalidation: Backend::Redis, Invalidation::Key;
    no_stale_reads_redis_tag_invalidation: Backend::Redis, Invalidation::Tag;
    no_stale_reads_cluster_key_invalidation: Backend::Cluster, Invalidation::Key;
    no_stale_reads_cluster_tag_invalidation: Backend::Cluster, Invalidation::Tag;
}

/// The detector works: naive get-then-set serves stale data in these rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_cache_aside_fails_the_same_rounds() {
    for backend in tests::BACKENDS {
        let stale = race(backend, Impl::Naive, Invalidation::Key, 100).await;
        assert!(
            stale >= 40,
            "{backend:?}: naive implementation showed only {stale} stale rounds of 100"
        );
    }
}

/// Ours refuses the stale store (rather than storing and never serving it)
/// for key invalidation, and counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_leases_are_counted() {
    let (a, _) = handles(Backend::Redis).await;
    race(Backend::Redis, Impl::Ours, Invalidation::Key, 0).await;
    let gate = Arc::new(Notify::new());
    let reader = {
        let (a, gate) = (a.clone(), gate.clone());
        tokio::spawn(async move {
            a.get_or_load(KEY, TTL, || async move {
                gate.notified().await;
                Ok::<_, ()>(1u64)
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.invalidator().key(KEY).await.expect("invalidate");
    gate.notify_one();
    assert_eq!(reader.await.expect("reader"), Ok(1));
    assert!(
        !a.exists(KEY).await.expect("exists"),
        "the value loaded before the invalidation was not stored"
    );
    assert_eq!(a.stats().total.stale_sets_prevented, 1);
}

/// A read that starts after an invalidation, while a load that started before
/// it is still running in the same process, does not join that load: it
/// loads the current value itself.
async fn reads_after_an_invalidation_do_not_join_older_loads(backend: Backend, how: Invalidation) {
    let (cache, _) = handles(backend).await;
    let db = Arc::new(AtomicU64::new(1));
    let (read_done, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let slow = {
        let (cache, db, read_done, release) = (cache.clone(), db.clone(), read_done.clone(), release.clone());
        tokio::spawn(async move {
            read(Impl::Ours, &cache, async || {
                let v = db.load(Ordering::SeqCst);
                read_done.notify_one();
                release.notified().await;
                v
            })
            .await
        })
    };
    read_done.notified().await;
    db.store(2, Ordering::SeqCst);
    invalidate(&cache, how).await;
    // Joining the older load would wait for it (held until after this read).
    let fresh = tokio::time::timeout(
        Duration::from_secs(2),
        read(Impl::Ours, &cache, async || db.load(Ordering::SeqCst)),
    )
    .await
    .expect("the read joined the load that started before the invalidation");
    release.notify_one();
    assert_eq!(
        slow.await.expect("slow reader"),
        1,
        "the overlapping read may see the old value"
    );
    assert_eq!(
        fresh, 2,
        "a read that started after the invalidation sees the new value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_an_invalidation_do_not_join_older_loads_all_backends() {
    for backend in tests::BACKENDS {
        for how in [Invalidation::Key, Invalidation::Tag] {
            reads_after_an_invalidation_do_not_join_older_loads(backend, how).await;
        }
    }
}
