//! Fleet workloads shared by the in-process soaks (several `Cache` handles)
//! and the `fleet_worker` binary (several OS processes).
//!
//! The source of truth is a second, non-evicting `redis-server` standing in
//! for the database: `v:{k}` holds key `k`'s current version, `floor:{k}`
//! the highest version whose invalidation has *returned*. A read that starts
//! after reading `floor:{k}` = f and returns a version below f served a
//! value loaded before an invalidation that had returned: a stale read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Policy};
use redis::aio::MultiplexedConnection;

/// What a soak does.
#[derive(Debug, Clone, Copy)]
pub struct SoakConfig {
    /// Distinct cached keys.
    pub keys: u64,
    /// Keys per tag group (`group:{k / group_size}`).
    pub group_size: u64,
    /// Concurrent tasks per cache handle.
    pub tasks: usize,
    /// How long to run.
    pub duration: Duration,
    /// Per mille of operations that are writes (half by key, half by tag).
    pub writes_per_mille: u64,
    /// Entry TTL.
    pub ttl: Duration,
    /// Seed of the task's random choices.
    pub seed: u64,
    /// How long the loader takes after reading the source (the window in
    /// which an invalidation can overtake a load).
    pub loader_delay: Duration,
    /// With a near cache of staleness bound ε: `Some(ε)` reads through
    /// `get_or_load_cloned` (so the near tier serves), and a write raises the
    /// floor only ε after its invalidation returned (the near cache's
    /// promise). `None`: `get_or_load`, floors raised at once.
    pub near_settle: Option<Duration>,
}

/// What a soak saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SoakReport {
    /// Reads checked against the floor.
    pub reads: u64,
    /// Reads that returned a version below the floor read before them.
    pub stale: u64,
    /// Key invalidations that returned.
    pub key_invalidations: u64,
    /// Tag invalidations that returned.
    pub tag_invalidations: u64,
    /// Loader runs.
    pub loads: u64,
}

impl SoakReport {
    /// One line, parsed back by [`SoakReport::parse`].
    pub fn line(&self) -> String {
        format!(
            "reads={} stale={} key_invalidations={} tag_invalidations={} loads={}",
            self.reads, self.stale, self.key_invalidations, self.tag_invalidations, self.loads
        )
    }

    /// Reads a [`line`](Self::line).
    pub fn parse(line: &str) -> Option<SoakReport> {
        let mut r = SoakReport::default();
        for part in line.split_whitespace() {
            let (k, v) = part.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "reads" => r.reads = v,
                "stale" => r.stale = v,
                "key_invalidations" => r.key_invalidations = v,
                "tag_invalidations" => r.tag_invalidations = v,
                "loads" => r.loads = v,
                _ => return None,
            }
        }
        Some(r)
    }

    /// Field-wise sum.
    pub fn add(&mut self, o: &SoakReport) {
        self.reads += o.reads;
        self.stale += o.stale;
        self.key_invalidations += o.key_invalidations;
        self.tag_invalidations += o.tag_invalidations;
        self.loads += o.loads;
    }
}

/// A small deterministic generator (xorshift*), enough for choosing keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; never zero.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Raises `floor:{k}` to at least `v` (floors only grow).
static RAISE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local c = tonumber(redis.call('GET', KEYS[1]) or '0') \
         if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 0",
    )
});

async fn db_u64(db: &mut MultiplexedConnection, key: &str) -> u64 {
    let v: Option<u64> = redis::cmd("GET").arg(key).query_async(db).await.expect("database GET");
    v.unwrap_or(0)
}

/// One task of a soak on one cache handle.
async fn soak_task(
    cache: Cache,
    mut db: MultiplexedConnection,
    cfg: SoakConfig,
    task: u64,
    loads: Arc<AtomicU64>,
) -> SoakReport {
    let mut rng = Rng::new(cfg.seed ^ (task + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut report = SoakReport::default();
    let deadline = Instant::now() + cfg.duration;
    let inv = cache.invalidator();
    while Instant::now() < deadline {
        // Skewed like real traffic: 80 % of operations on 5 % of the keys.
        let k = if rng.below(10) < 8 {
            rng.below((cfg.keys / 20).max(1))
        } else {
            rng.below(cfg.keys)
        };
        let group = k / cfg.group_size;
        let op = rng.below(1000);
        if op < cfg.writes_per_mille / 2 {
            // Update one row, then invalidate its key.
            let v: u64 = redis::cmd("INCR")
                .arg(format!("v:{k}"))
                .query_async(&mut db)
                .await
                .unwrap();
            if inv.key(&format!("item:{k}")).await.is_ok() {
                report.key_invalidations += 1;
                if let Some(eps) = cfg.near_settle {
                    tokio::time::sleep(eps).await;
                }
                let _: i64 = RAISE
                    .key(format!("floor:{k}"))
                    .arg(v)
                    .invoke_async(&mut db)
                    .await
                    .unwrap();
            }
        } else if op < cfg.writes_per_mille {
            // Update every row of a group, then invalidate its tag.
            let first = group * cfg.group_size;
            let members: Vec<u64> = (first..(first + cfg.group_size).min(cfg.keys)).collect();
            let mut pipe = redis::pipe();
            for m in &members {
                pipe.cmd("INCR").arg(format!("v:{m}"));
            }
            let versions: Vec<u64> = pipe.query_async(&mut db).await.unwrap();
            if inv.tag(&format!("group:{group}")).await.is_ok() {
                report.tag_invalidations += 1;
                if let Some(eps) = cfg.near_settle {
                    tokio::time::sleep(eps).await;
                }
                for (m, v) in members.iter().zip(versions) {
                    let _: i64 = RAISE
                        .key(format!("floor:{m}"))
                        .arg(v)
                        .invoke_async(&mut db)
                        .await
                        .unwrap();
                }
            }
        } else {
            let floor = db_u64(&mut db, &format!("floor:{k}")).await;
            let policy = Policy::ttl(cfg.ttl).tags([format!("group:{group}")]).name("soak");
            let loader_db = db.clone();
            let loads = &loads;
            let load = || async move {
                loads.fetch_add(1, Ordering::Relaxed);
                let mut db = loader_db;
                let v = db_u64(&mut db, &format!("v:{k}")).await;
                tokio::time::sleep(cfg.loader_delay).await;
                Ok::<u64, std::convert::Infallible>(v)
            };
            let key = format!("item:{k}");
            let got = match cfg.near_settle {
                Some(_) => cache.get_or_load_cloned(&key, policy, load).await,
                None => cache.get_or_load(&key, policy, load).await,
            }
            .unwrap_or_else(|e| match e {});
            report.reads += 1;
            if got < floor {
                report.stale += 1;
                if report.stale <= 3 {
                    eprintln!(
                        "stale read: item:{k} gave version {got}, an invalidation of version {floor} had returned"
                    );
                }
            }
        }
    }
    report
}

/// Runs `cfg.tasks` tasks on each handle until `cfg.duration` has passed.
pub async fn soak(caches: &[Cache], db_url: &str, cfg: SoakConfig) -> SoakReport {
    let db = redis::Client::open(db_url)
        .expect("database url")
        .get_multiplexed_async_connection()
        .await
        .expect("database connection");
    let loads = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (h, cache) in caches.iter().enumerate() {
        for t in 0..cfg.tasks {
            let id = (h * cfg.tasks + t) as u64;
            tasks.push(tokio::spawn(soak_task(
                cache.clone(),
                db.clone(),
                cfg,
                id,
                loads.clone(),
            )));
        }
    }
    let mut total = SoakReport::default();
    for t in tasks {
        total.add(&t.await.expect("soak task panicked"));
    }
    total.loads = loads.load(Ordering::Relaxed);
    total
}

/// What one process of the hot-key test saw.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HotReport {
    /// `get_or_load` calls.
    pub calls: u64,
    /// Of which hits (from the cache's stats).
    pub hits: u64,
    /// Latencies of every call, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Invalidations made.
    pub invalidations: u64,
    /// Calls that returned a version below the floor read before them.
    pub stale: u64,
}

/// Runs the hot-key workload of one process: `tasks` tasks calling
/// `get_or_load("hot")` (TTL `ttl`, loader 50 ms that counts itself in the
/// database's `loads`), and, when `invalidate_every` is set, one task
/// invalidating the key that often after bumping the database's version.
pub async fn hot_key(
    cache: Cache,
    db_url: &str,
    tasks: usize,
    ttl: Duration,
    duration: Duration,
    invalidate_every: Option<Duration>,
) -> HotReport {
    let db = redis::Client::open(db_url)
        .expect("database url")
        .get_multiplexed_async_connection()
        .await
        .expect("database connection");
    let deadline = Instant::now() + duration;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (cache, db) = (cache.clone(), db.clone());
        handles.push(tokio::spawn(async move {
            let mut out = HotReport::default();
            let mut db2 = db.clone();
            while Instant::now() < deadline {
                let floor = db_u64(&mut db2, "floor:hot").await;
                let start = Instant::now();
                let loader_db = db.clone();
                let v = cache
                    .get_or_load("hot", Policy::ttl(ttl).name("hot"), || async move {
                        let mut db = loader_db;
                        let v = db_u64(&mut db, "v:hot").await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _: i64 = redis::cmd("INCR").arg("loads").query_async(&mut db).await.unwrap();
                        Ok::<u64, std::convert::Infallible>(v)
                    })
                    .await
                    .unwrap_or_else(|e| match e {});
                out.latencies_us.push(start.elapsed().as_micros() as u64);
                out.calls += 1;
                if v < floor {
                    out.stale += 1;
                }
            }
            out
        }));
    }
    let mut invalidations = 0;
    if let Some(every) = invalidate_every {
        let mut db = db.clone();
        let inv = cache.invalidator();
        while Instant::now() + every < deadline {
            tokio::time::sleep(every).await;
            let v: u64 = redis::cmd("INCR").arg("v:hot").query_async(&mut db).await.unwrap();
            if inv.key("hot").await.is_ok() {
                invalidations += 1;
                let _: i64 = RAISE.key("floor:hot").arg(v).invoke_async(&mut db).await.unwrap();
            }
        }
    }
    let mut total = HotReport {
        invalidations,
        ..HotReport::default()
    };
    for h in handles {
        let r = h.await.expect("hot-key task panicked");
        total.calls += r.calls;
        total.stale += r.stale;
        total.latencies_us.extend(r.latencies_us);
    }
    total.hits = cache.stats().total.hits;
    total
}

/// The `q`-quantile (0..=1) of some latencies.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
