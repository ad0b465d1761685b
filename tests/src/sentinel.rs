//! A local Redis Sentinel set-up for tests: a primary, a replica
//! (`--replicaof`) and three `redis-server --sentinel` processes watching them
//! as `mymaster` with quorum 2, all on free loopback ports.
//!
//! The data nodes are [`RedisServer`]s; the sentinels are spawned the same way
//! (through `sh`, killed when our end of a pipe closes), so no process
//! outlives its tests. Every method blocks the calling thread for a bounded
//! time: from async tests use `#[tokio::test(flavor = "multi_thread")]`.
//!
//! # Connecting with redis-rs 1.8.1
//!
//! redis-rs has no Sentinel URL scheme: `redis::Client::open` refuses
//! `redis+sentinel://…`. A client gives the sentinels' own `redis://` URLs and
//! the master name to `redis::sentinel::SentinelClient` (feature `sentinel`):
//!
//! ```no_run
//! # async fn f(setup: &tests::SentinelSetup) -> redis::RedisResult<()> {
//! use redis::sentinel::{SentinelClient, SentinelServerType};
//! let mut sentinel = SentinelClient::build(
//!     setup.sentinel_urls(), // ["redis://127.0.0.1:p1/", …]
//!     setup.master_name().to_owned(),
//!     None, // or Some(SentinelNodeConnectionInfo) for the data nodes' auth/TLS/db
//!     SentinelServerType::Master,
//! )?;
//! // Asks the sentinels (SENTINEL MASTERS), checks ROLE on the node named,
//! // then opens a MultiplexedConnection to it. No timeouts inside: wrap it.
//! let mut con = sentinel.get_async_connection().await?;
//! let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut con).await?;
//! # Ok(()) }
//! ```
//!
//! [`SentinelSetup::sentinel_url`] gives the same in one string,
//! `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster`, for a
//! toolkit that parses it itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::cluster::{info, query};
use super::harness::{RedisServer, free_port};

const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// The Sentinel set-up shared by the tests of one test binary: started on
/// first use, stopped when the binary exits. A test that fails over or kills
/// should own its set-up ([`SentinelSetup::start`]).
pub fn shared_sentinel() -> &'static SentinelSetup {
    static SETUP: OnceLock<SentinelSetup> = OnceLock::new();
    SETUP.get_or_init(SentinelSetup::start)
}

fn server_binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

/// One `redis-server <conf> --sentinel` child process.
#[derive(Debug)]
struct SentinelProcess {
    port: u16,
    dir: PathBuf,
    child: Option<(Child, ChildStdin)>,
}

impl SentinelProcess {
    fn start(primary_port: u16, master_name: &str, down_after: Duration, failover_timeout: Duration) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cache-tests-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir for a sentinel");
        // Sentinel rewrites its config file: each one has its own, writable.
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\npidfile {pid}\n\
             sentinel monitor {master_name} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {master_name} {down}\n\
             sentinel failover-timeout {master_name} {fo}\n\
             sentinel parallel-syncs {master_name} 1\n",
            dir = dir.display(),
            log = dir.join("sentinel.log").display(),
            pid = dir.join("sentinel.pid").display(),
            down = down_after.as_millis(),
            fo = failover_timeout.as_millis(),
        );
        std::fs::write(&conf, text).expect("write sentinel.conf");
        let mut s = SentinelProcess { port, dir, child: None };
        s.spawn(&conf);
        s
    }

    fn spawn(&mut self, conf: &std::path::Path) {
        let bin = server_binary();
        if Command::new(&bin).arg("--version").output().is_err() {
            panic!(
                "`{bin}` not found. The Sentinel tests need a real Redis server: install it with \
                 `sudo apt-get install -y redis-server` (Debian/Ubuntu), or set REDIS_SERVER_BIN to its path."
            );
        }
        // As in harness.rs: the shell kills the sentinel when our end of its
        // stdin closes (drop, or the test process exiting for any reason).
        let script = r#"bin="$1"; shift; "$bin" "$@" & pid=$!; read _unused; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&bin)
            .arg(conf)
            .arg("--sentinel")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{bin} --sentinel` through sh: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        self.child = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if query::<String>(self.port, &redis::cmd("PING"), IO_TIMEOUT).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "sentinel on port {} did not answer PING within 10 s; log tail:\n{}",
            self.port,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    fn kill(&mut self) {
        if let Some((mut child, mut stdin)) = self.child.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
struct DataNodes {
    /// The first primary and its replica, in start order.
    servers: Vec<RedisServer>,
    down: BTreeSet<u16>,
}

/// A primary, a replica and three sentinels on 127.0.0.1. Stopped on drop and
/// when the test process exits.
#[derive(Debug)]
pub struct SentinelSetup {
    master_name: String,
    data_ports: Vec<u16>,
    nodes: Mutex<DataNodes>,
    sentinels: Vec<SentinelProcess>,
    down_after: Duration,
    started_in: Duration,
}

/// Settings of a Sentinel set-up to start. Defaults: `down-after-milliseconds`
/// 1,000, `failover-timeout` 5,000.
#[derive(Debug, Clone)]
pub struct SentinelBuilder {
    down_after: Duration,
    failover_timeout: Duration,
}

impl Default for SentinelBuilder {
    fn default() -> Self {
        SentinelBuilder {
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(5000),
        }
    }
}

impl SentinelBuilder {
    /// `sentinel down-after-milliseconds`: how long the primary may not
    /// answer before a sentinel thinks it down.
    pub fn down_after(mut self, t: Duration) -> Self {
        self.down_after = t;
        self
    }

    /// `sentinel failover-timeout`.
    pub fn failover_timeout(mut self, t: Duration) -> Self {
        self.failover_timeout = t;
        self
    }

    /// Starts everything and waits until every sentinel sees the primary,
    /// the replica and the two other sentinels.
    pub fn start(self) -> SentinelSetup {
        SentinelSetup::start_from(self)
    }
}

impl SentinelSetup {
    /// Starts a set-up with the default settings ([`SentinelBuilder`]).
    pub fn start() -> SentinelSetup {
        SentinelBuilder::default().start()
    }

    /// Settings for a set-up to start.
    pub fn builder() -> SentinelBuilder {
        SentinelBuilder::default()
    }

    fn start_from(b: SentinelBuilder) -> SentinelSetup {
        let t0 = Instant::now();
        let master_name = "mymaster".to_owned();
        let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
        let pport = primary.port().to_string();
        let replica = RedisServer::start_with(&["--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", &pport]);
        let data_ports = vec![primary.port(), replica.port()];
        let (pp, rp) = (primary.port(), replica.port());
        // The sentinels learn the replica from the primary's first INFO:
        // start them once the replica is attached.
        wait_for(Duration::from_secs(10), "the replica to attach", || {
            let link = info(rp, "replication")?.get("master_link_status").cloned();
            (link.as_deref() == Some("up"))
                .then_some(())
                .ok_or(format!("link {link:?}"))
        });
        let sentinels: Vec<SentinelProcess> = (0..3)
            .map(|_| SentinelProcess::start(pp, &master_name, b.down_after, b.failover_timeout))
            .collect();
        let mut setup = SentinelSetup {
            master_name,
            data_ports,
            nodes: Mutex::new(DataNodes {
                servers: vec![primary, replica],
                down: BTreeSet::new(),
            }),
            sentinels,
            down_after: b.down_after,
            started_in: Duration::ZERO,
        };
        setup.wait_settled(Duration::from_secs(20));
        setup.started_in = t0.elapsed();
        setup
    }

    /// How long starting took, up to every sentinel seeing everything.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// `mymaster`.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// `down-after-milliseconds` of the sentinels.
    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster`.
    /// Not a URL redis-rs 1.8.1 parses (see the module docs): it is the
    /// toolkit's to split into [`SentinelSetup::sentinel_urls`] and the name.
    pub fn sentinel_url(&self) -> String {
        format!(
            "redis+sentinel://{}/{}",
            self.sentinel_addrs().join(","),
            self.master_name
        )
    }

    /// `127.0.0.1:port` of each sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinel_ports().iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// `redis://127.0.0.1:port/` of each sentinel: what redis-rs's
    /// `SentinelClient::build` takes.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinel_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The ports of the two data nodes, whatever their roles now.
    pub fn data_ports(&self) -> Vec<u16> {
        self.data_ports.clone()
    }

    /// The primary's port as the first answering sentinel reports it
    /// (`SENTINEL get-master-addr-by-name`).
    pub fn primary_port(&self) -> u16 {
        let mut errors = Vec::new();
        for s in &self.sentinels {
            match self.primary_by(s.port) {
                Ok(p) => return p,
                Err(e) => errors.push(e),
            }
        }
        panic!("no sentinel named the primary: {errors:?}");
    }

    /// `redis://127.0.0.1:{primary_port}/`.
    pub fn primary_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.primary_port())
    }

    fn primary_by(&self, sentinel: u16) -> Result<u16, String> {
        let addr: Option<(String, String)> = query(
            sentinel,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master_name),
            IO_TIMEOUT,
        )
        .map_err(|e| format!("sentinel {sentinel}: {e}"))?;
        let (_, port) = addr.ok_or_else(|| format!("sentinel {sentinel} knows no {}", self.master_name))?;
        port.parse()
            .map_err(|_| format!("sentinel {sentinel}: bad port {port:?}"))
    }

    /// The role (`master`, `slave`) node `port` answers to `ROLE`.
    pub fn role_of(&self, port: u16) -> Result<String, String> {
        let role: Vec<redis::Value> =
            query(port, &redis::cmd("ROLE"), IO_TIMEOUT).map_err(|e| format!("ROLE on {port}: {e}"))?;
        match role.first() {
            Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
            other => Err(format!("ROLE on {port}: unexpected {other:?}")),
        }
    }

    /// `SENTINEL MASTER mymaster` of one sentinel, as `field -> value`.
    fn master_state(&self, sentinel: u16) -> Result<BTreeMap<String, String>, String> {
        let flat: Vec<String> = query(
            sentinel,
            redis::cmd("SENTINEL").arg("MASTER").arg(&self.master_name),
            IO_TIMEOUT,
        )
        .map_err(|e| format!("SENTINEL MASTER on {sentinel}: {e}"))?;
        Ok(flat
            .chunks(2)
            .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
            .collect())
    }

    /// One check that the set-up is whole: every sentinel names the same
    /// primary, which answers `ROLE` as master, is not flagged down, and has
    /// at least one replica and two other sentinels known; every live data
    /// node other than the primary is its replica with the link up.
    pub fn check_settled(&self) -> Result<u16, String> {
        let mut primary = None;
        for s in &self.sentinels {
            let p = self.primary_by(s.port)?;
            if primary.is_some_and(|q| q != p) {
                return Err(format!("sentinels disagree: {primary:?} vs {p}"));
            }
            primary = Some(p);
            let st = self.master_state(s.port)?;
            let flags = st.get("flags").cloned().unwrap_or_default();
            if flags.contains("s_down") || flags.contains("o_down") || flags.contains("failover") {
                return Err(format!("sentinel {}: primary flags {flags}", s.port));
            }
            let field = |k: &str| st.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
            if field("num-slaves") < 1 || field("num-other-sentinels") < 2 {
                return Err(format!(
                    "sentinel {}: {} replicas, {} other sentinels",
                    s.port,
                    field("num-slaves"),
                    field("num-other-sentinels")
                ));
            }
        }
        let primary = primary.ok_or("no sentinels")?;
        if self.role_of(primary)? != "master" {
            return Err(format!("{primary} named primary but is not master"));
        }
        let down = self.lock().down.clone();
        for &p in self.data_ports.iter().filter(|p| **p != primary && !down.contains(p)) {
            let repl = info(p, "replication")?;
            let of = repl.get("master_port").and_then(|v| v.parse::<u16>().ok());
            if repl.get("role").map(String::as_str) != Some("slave")
                || of != Some(primary)
                || repl.get("master_link_status").map(String::as_str) != Some("up")
            {
                return Err(format!("node {p} is not yet a linked replica of {primary}"));
            }
        }
        Ok(primary)
    }

    /// Waits until [`SentinelSetup::check_settled`] passes; returns the primary.
    pub fn wait_settled(&self, timeout: Duration) -> u16 {
        wait_for(timeout, "the Sentinel set-up to settle", || self.check_settled())
    }

    /// `SENTINEL FAILOVER mymaster`; waits until every sentinel names a new
    /// primary, it answers `ROLE` as master, and the old one is its linked
    /// replica. Returns the new primary's port.
    pub fn failover(&self) -> u16 {
        let old = self.wait_settled(Duration::from_secs(15));
        let deadline = Instant::now() + Duration::from_secs(20);
        // -INPROG / -NOGOODSLAVE: a previous failover is still being
        // finished, or the replica's state is not fresh yet. Ask again.
        let mut asked = false;
        let mut last = String::new();
        let mut i = 0;
        while !asked && Instant::now() < deadline {
            let s = self.sentinels[i % self.sentinels.len()].port;
            i += 1;
            match query::<String>(
                s,
                redis::cmd("SENTINEL").arg("FAILOVER").arg(&self.master_name),
                IO_TIMEOUT,
            ) {
                Ok(_) => asked = true,
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        assert!(asked, "SENTINEL FAILOVER refused for 20 s: {last}");
        let remaining = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        wait_for(remaining, "a new primary after SENTINEL FAILOVER", || {
            let p = self.check_settled()?;
            (p != old).then_some(p).ok_or_else(|| format!("{old} still primary"))
        })
    }

    /// `kill -9` of the current primary; returns its port. Does not wait for
    /// the sentinels (see [`SentinelSetup::wait_new_primary`]).
    pub fn kill_primary(&self) -> u16 {
        let port = self.primary_port();
        self.kill(port);
        port
    }

    /// `kill -9` of data node `port`. Idempotent.
    pub fn kill(&self, port: u16) {
        let mut n = self.lock();
        let i = self.index(port);
        n.servers[i].kill();
        n.down.insert(port);
    }

    /// Starts data node `port` again (empty, with its original arguments);
    /// the sentinels turn it into a replica of the current primary.
    pub fn restart(&self, port: u16) {
        let mut n = self.lock();
        let i = self.index(port);
        n.servers[i].restart();
        n.down.remove(&port);
    }

    /// Waits until every sentinel names a primary other than `old` that
    /// answers `ROLE` as master; returns its port. (The old one may be dead:
    /// its replica is not required.)
    pub fn wait_new_primary(&self, old: u16, timeout: Duration) -> u16 {
        wait_for(timeout, "the sentinels to promote a new primary", || {
            let mut primary = None;
            for s in &self.sentinels {
                let p = self.primary_by(s.port)?;
                if p == old || primary.is_some_and(|q| q != p) {
                    return Err(format!("sentinel {} names {p}", s.port));
                }
                primary = Some(p);
            }
            let p = primary.ok_or("no sentinels")?;
            (self.role_of(p)? == "master")
                .then_some(p)
                .ok_or(format!("{p} is not master yet"))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DataNodes> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn index(&self, port: u16) -> usize {
        self.data_ports
            .iter()
            .position(|&p| p == port)
            .unwrap_or_else(|| panic!("port {port} is not a data node of this set-up ({:?})", self.data_ports))
    }
}

/// Polls `check` every 50 ms until it is `Ok`, for at most `timeout`; panics
/// with the last error then.
fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if t0.elapsed() >= timeout => panic!("timed out after {timeout:?} waiting for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
