//! A local Redis Cluster for tests and benches: six `redis-server
//! --cluster-enabled yes` processes on free loopback ports (three primaries,
//! three replicas) joined by `redis-cli --cluster create`.
//!
//! Each node is a [`RedisServer`] from the sibling `harness` module, so it
//! dies with the test process (no server outlives its tests), lives in its own
//! temporary directory with its own cluster config file, and keeps no data on
//! disk. Depends on std, redis-rs (`cluster-async` for [`RedisCluster::client`])
//! and `super::harness` only, so a bench can include it with `#[path]` next to
//! `harness.rs`.
//!
//! The binaries are `redis-server` and `redis-cli` from `PATH`, or
//! `$REDIS_SERVER_BIN` and `$REDIS_CLI_BIN`. A missing binary fails with
//! instructions; it is never a silent skip.
//!
//! Every method blocks the calling thread (they are short, bounded waits): from
//! async tests use `#[tokio::test(flavor = "multi_thread")]` so that redis-rs's
//! own background tasks keep running meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::harness::{RedisServer, free_port};

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How long one command to one node may take before the harness gives up on
/// it (connect, write and read each).
const NODE_TIMEOUT_IO: Duration = Duration::from_millis(500);

/// The cluster shared by the tests of one test binary: started on first use,
/// stopped when the binary exits (the nodes watch the process, like
/// `shared_redis()`). Tests isolate themselves by key prefix. A test that
/// changes the topology (failover, kill, pause) should own its cluster
/// ([`RedisCluster::start`]) rather than disturb the others.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// The hash slot of `key` per the Redis Cluster specification: CRC16
/// (XMODEM) of the key modulo 16384, or of its hash tag when the key has one:
/// the bytes between the first `{` and the first `}` after it, when there is
/// at least one byte between them (`{}` is no tag; `{{a}}` hashes `{a`).
pub fn key_slot(key: impl AsRef<[u8]>) -> u16 {
    let key = key.as_ref();
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One node as a node's `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node ID (40 hex characters).
    pub id: String,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Flagged `master`.
    pub primary: bool,
    /// Flagged `fail` or `fail?` (or `handshake`/`noaddr`): not usable.
    pub failed: bool,
    /// The ID of its primary, for a replica.
    pub primary_id: Option<String>,
    /// Slot ranges it serves (inclusive), for a primary.
    pub slots: Vec<(u16, u16)>,
}

/// A primary, the slots it serves and its replicas, as one node sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The primary's port.
    pub primary: u16,
    /// Its healthy replicas' ports, ascending.
    pub replicas: Vec<u16>,
    /// Inclusive slot ranges, ascending.
    pub slots: Vec<(u16, u16)>,
}

impl Shard {
    /// Whether this shard serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// Parses `CLUSTER NODES` output.
pub fn parse_cluster_nodes(text: &str) -> Result<Vec<ClusterNode>, String> {
    let mut nodes = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 8 {
            return Err(format!("short CLUSTER NODES line: {line:?}"));
        }
        // `ip:port@cport[,hostname]`
        let addr = f[1].split(['@', ',']).next().unwrap_or_default();
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| format!("bad address in CLUSTER NODES line: {line:?}"))?;
        let flags: Vec<&str> = f[2].split(',').collect();
        let failed = flags
            .iter()
            .any(|fl| matches!(*fl, "fail" | "fail?" | "handshake" | "noaddr"));
        let mut slots = Vec::new();
        for s in &f[8..] {
            if s.starts_with('[') {
                continue; // a slot being imported/migrated
            }
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let a: u16 = a.parse().map_err(|_| format!("bad slot {s:?} in {line:?}"))?;
            let b: u16 = b.parse().map_err(|_| format!("bad slot {s:?} in {line:?}"))?;
            slots.push((a, b));
        }
        slots.sort_unstable();
        nodes.push(ClusterNode {
            id: f[0].to_owned(),
            port,
            primary: flags.contains(&"master"),
            failed,
            primary_id: (f[3] != "-").then(|| f[3].to_owned()),
            slots,
        });
    }
    Ok(nodes)
}

/// The healthy shards in one node's view: primaries that serve slots and are
/// not flagged failed, with their healthy replicas. Sorted by first slot.
fn shards_of(view: &[ClusterNode]) -> Vec<Shard> {
    let mut shards: Vec<Shard> = view
        .iter()
        .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
        .map(|p| {
            let mut replicas: Vec<u16> = view
                .iter()
                .filter(|r| !r.primary && !r.failed && r.primary_id.as_deref() == Some(&p.id))
                .map(|r| r.port)
                .collect();
            replicas.sort_unstable();
            Shard {
                primary: p.port,
                replicas,
                slots: p.slots.clone(),
            }
        })
        .collect();
    shards.sort_by_key(|s| s.slots.first().copied());
    shards
}

/// Runs one command on `127.0.0.1:port` over a fresh connection, each step
/// bounded by `timeout` (a frozen node cannot hang the harness).
pub(crate) fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd, timeout: Duration) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    cmd.query(&mut con)
}

/// `INFO <section>` of a node as `field -> value`.
pub(crate) fn info(port: u16, section: &str) -> Result<BTreeMap<String, String>, String> {
    let text: String = query(port, redis::cmd("INFO").arg(section), NODE_TIMEOUT_IO).map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn cli_binary() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// Settings of a cluster to start. Defaults: node timeout 1,000 ms, full
/// coverage not required.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    node_timeout: Duration,
    require_full_coverage: bool,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            node_timeout: Duration::from_millis(1000),
            require_full_coverage: false,
        }
    }
}

impl ClusterBuilder {
    /// `--cluster-node-timeout`: how long a node may be unreachable before it
    /// is failed (and its replica promoted). At least 100 ms.
    pub fn node_timeout(mut self, t: Duration) -> Self {
        assert!(t >= Duration::from_millis(100), "node timeout below 100 ms");
        self.node_timeout = t;
        self
    }

    /// `--cluster-require-full-coverage`. Redis's default is `yes`: while any
    /// slot is uncovered (a dead primary not yet replaced), every node refuses
    /// every key with `CLUSTERDOWN`. The harness default is `no`: only the
    /// dead primary's slots are unavailable, the other shards keep serving.
    pub fn require_full_coverage(mut self, yes: bool) -> Self {
        self.require_full_coverage = yes;
        self
    }

    /// Starts the six nodes, creates the cluster and waits until it is ok
    /// (see [`RedisCluster::wait_ok`]). Panics with the reason when it cannot.
    pub fn start(self) -> RedisCluster {
        RedisCluster::start_from(self)
    }
}

#[derive(Debug)]
struct Nodes {
    servers: Vec<RedisServer>,
    /// Killed and not restarted.
    down: BTreeSet<u16>,
    /// Frozen with SIGSTOP.
    paused: BTreeSet<u16>,
}

/// A running 3-primary, 3-replica Redis Cluster on 127.0.0.1. Stopped on drop
/// and when the test process exits.
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    node_timeout: Duration,
    nodes: Mutex<Nodes>,
    started_in: Duration,
}

impl RedisCluster {
    /// Starts a cluster with the default settings ([`ClusterBuilder`]).
    pub fn start() -> RedisCluster {
        ClusterBuilder::default().start()
    }

    /// Settings for a cluster to start.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    fn start_from(b: ClusterBuilder) -> RedisCluster {
        let t0 = Instant::now();
        let cli = cli_binary();
        if Command::new(&cli).arg("--version").output().is_err() {
            panic!(
                "`{cli}` not found. The cluster tests need redis-cli to create the cluster: install it \
                 with `sudo apt-get install -y redis-tools` (Debian/Ubuntu; redis-server depends on it), \
                 or set REDIS_CLI_BIN to its path."
            );
        }
        let timeout_ms = b.node_timeout.as_millis().to_string();
        let coverage = if b.require_full_coverage { "yes" } else { "no" };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut servers: Vec<RedisServer> = Vec::with_capacity(6);
        let mut taken = BTreeSet::new();
        for i in 0..6 {
            // The bus port is chosen, not port + 10000: ephemeral ports go
            // above 55535.
            let bus = (0..50)
                .map(|_| free_port())
                .find(|p| !taken.contains(p))
                .expect("a free port for the cluster bus");
            taken.insert(bus);
            let bus = bus.to_string();
            // A config file name of its own: a stale one from an earlier
            // process with the same pid and port would be loaded otherwise.
            let conf = format!("nodes-{}-{stamp}-{i}.conf", std::process::id());
            let server = RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--cluster-node-timeout",
                &timeout_ms,
                "--cluster-port",
                &bus,
                "--cluster-replica-validity-factor",
                "0",
                "--cluster-require-full-coverage",
                coverage,
                // Full syncs start at once instead of after 5 s.
                "--repl-diskless-sync-delay",
                "0",
            ]);
            taken.insert(server.port());
            servers.push(server);
        }
        let ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
        let cluster = RedisCluster {
            ports: ports.clone(),
            node_timeout: b.node_timeout,
            nodes: Mutex::new(Nodes {
                servers,
                down: BTreeSet::new(),
                paused: BTreeSet::new(),
            }),
            started_in: Duration::ZERO,
        };

        let mut cmd = Command::new(&cli);
        cmd.arg("--cluster").arg("create");
        for p in &ports {
            cmd.arg(format!("127.0.0.1:{p}"));
        }
        cmd.args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{cli} --cluster create`: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("`{cli} --cluster create` did not finish within 30 s");
                }
            }
        };
        let out = child.wait_with_output().expect("redis-cli output");
        assert!(
            status.success(),
            "`{cli} --cluster create` failed ({status}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok(Duration::from_secs(20));
        RedisCluster {
            started_in: t0.elapsed(),
            ..cluster
        }
    }

    /// How long [`RedisCluster::start`] took, from the first process to a
    /// cluster that is ok.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// `--cluster-node-timeout` of every node.
    pub fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    /// The ports of all six nodes, in start order, whatever their state.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.clone()
    }

    /// `redis://127.0.0.1:{port}/` of every node: pass them all as seeds.
    pub fn seed_urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect()
    }

    /// A redis-rs cluster client on every seed, with a 1 s connection timeout
    /// and a 2 s response timeout.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(self.seed_urls())
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(2))
            .build()
            .expect("cluster client")
    }

    /// Nodes neither killed nor paused.
    fn up_ports(&self) -> Vec<u16> {
        let n = self.lock();
        self.ports
            .iter()
            .copied()
            .filter(|p| !n.down.contains(p) && !n.paused.contains(p))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `CLUSTER NODES` as node `port` sees the cluster.
    pub fn view_of(&self, port: u16) -> Result<Vec<ClusterNode>, String> {
        let text: String = query(port, redis::cmd("CLUSTER").arg("NODES"), NODE_TIMEOUT_IO)
            .map_err(|e| format!("CLUSTER NODES on {port}: {e}"))?;
        parse_cluster_nodes(&text)
    }

    /// The shards as the first live node that answers sees them, asked now
    /// (roles change with failovers). Call [`RedisCluster::wait_ok`] first for
    /// a view every node agrees on.
    pub fn shards(&self) -> Vec<Shard> {
        let mut errors = Vec::new();
        for port in self.up_ports() {
            match self.view_of(port) {
                Ok(view) => return shards_of(&view),
                Err(e) => errors.push(e),
            }
        }
        panic!("no cluster node answered CLUSTER NODES: {errors:?}");
    }

    /// Ports of the healthy primaries that serve slots, by first slot.
    pub fn primaries(&self) -> Vec<u16> {
        self.shards().iter().map(|s| s.primary).collect()
    }

    /// Ports of the healthy replicas, ascending.
    pub fn replicas(&self) -> Vec<u16> {
        let mut r: Vec<u16> = self.shards().into_iter().flat_map(|s| s.replicas).collect();
        r.sort_unstable();
        r
    }

    /// The port of the primary serving `slot`.
    pub fn primary_of_slot(&self, slot: u16) -> u16 {
        assert!(slot < SLOTS, "slot {slot} out of range");
        let shards = self.shards();
        shards
            .iter()
            .find(|s| s.serves(slot))
            .map(|s| s.primary)
            .unwrap_or_else(|| panic!("no healthy primary serves slot {slot}: {shards:?}"))
    }

    /// The hash slot of `key` (see [`key_slot`]).
    pub fn key_slot(key: impl AsRef<[u8]>) -> u16 {
        key_slot(key)
    }

    /// The port of the primary serving `key`'s slot.
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> u16 {
        self.primary_of_slot(key_slot(key))
    }

    /// One check of the cluster's health; `Err` says what is not there yet.
    /// Ok when, on every live (not killed, not paused) node: `CLUSTER INFO`
    /// says `cluster_state:ok`; the node's view has every live node joined and
    /// unflagged, every one of the 16,384 slots served by a live primary, the
    /// same slot map as every other live node's view; and a replica whose
    /// primary is live has its replication link up.
    pub fn check_ok(&self) -> Result<(), String> {
        let up = self.up_ports();
        let mut reference: Option<(u16, Vec<Shard>)> = None;
        for &port in &up {
            let info: String = query(port, redis::cmd("CLUSTER").arg("INFO"), NODE_TIMEOUT_IO)
                .map_err(|e| format!("CLUSTER INFO on {port}: {e}"))?;
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("node {port}: cluster_state is not ok"));
            }
            let view = self.view_of(port)?;
            for &other in &up {
                match view.iter().find(|n| n.port == other) {
                    Some(n) if !n.failed => {}
                    Some(_) => return Err(format!("node {port} flags live node {other} as failed")),
                    None => return Err(format!("node {port} does not know node {other}")),
                }
            }
            let shards = shards_of(&view);
            let covered: u32 = shards
                .iter()
                .flat_map(|s| s.slots.iter())
                .map(|&(a, b)| u32::from(b - a) + 1)
                .sum();
            if covered != u32::from(SLOTS) {
                return Err(format!(
                    "node {port} sees {covered} of {SLOTS} slots served: {shards:?}"
                ));
            }
            if let Some(s) = shards.iter().find(|s| !up.contains(&s.primary)) {
                return Err(format!(
                    "node {port}: slots {:?} served by node {} which is down",
                    s.slots, s.primary
                ));
            }
            // Compare the slot maps only: replica lists may lag a little.
            let map: Vec<(u16, Vec<(u16, u16)>)> = shards.iter().map(|s| (s.primary, s.slots.clone())).collect();
            match &reference {
                None => reference = Some((port, shards.clone())),
                Some((rport, rshards)) => {
                    let rmap: Vec<(u16, Vec<(u16, u16)>)> =
                        rshards.iter().map(|s| (s.primary, s.slots.clone())).collect();
                    if rmap != map {
                        return Err(format!("nodes {rport} and {port} disagree: {rmap:?} vs {map:?}"));
                    }
                }
            }
            let me = view
                .iter()
                .find(|n| n.port == port)
                .ok_or_else(|| format!("node {port} is not in its own view"))?;
            if !me.primary {
                let primary = me
                    .primary_id
                    .as_ref()
                    .and_then(|id| view.iter().find(|n| &n.id == id))
                    .map(|n| n.port);
                if primary.is_some_and(|p| up.contains(&p)) {
                    let repl = info_of(port, "replication")?;
                    if repl.get("master_link_status").map(String::as_str) != Some("up") {
                        return Err(format!("replica {port}: link to its primary is not up"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits until [`RedisCluster::check_ok`] passes, up to `timeout`;
    /// returns how long it took, or the last reason it did not.
    pub fn try_wait_ok(&self, timeout: Duration) -> Result<Duration, String> {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        loop {
            match self.check_ok() {
                Ok(()) => return Ok(t0.elapsed()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cluster not ok after {:?}: {e}", t0.elapsed()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// [`RedisCluster::try_wait_ok`], panicking on timeout.
    pub fn wait_ok(&self, timeout: Duration) -> Duration {
        self.try_wait_ok(timeout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until every live replica of a live primary has applied all its
    /// primary has written (replication offsets), up to `timeout`. Run before
    /// a kill when the data written so far must survive it.
    pub fn wait_replicated(&self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        loop {
            let lagging = self.replication_lag();
            match lagging {
                Ok(()) => return t0.elapsed(),
                Err(e) if Instant::now() >= deadline => panic!("replicas still behind after {timeout:?}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn replication_lag(&self) -> Result<(), String> {
        let up = self.up_ports();
        for shard in self.shards() {
            if !up.contains(&shard.primary) {
                continue;
            }
            let written: u64 = info_of(shard.primary, "replication")?
                .get("master_repl_offset")
                .and_then(|v| v.parse().ok())
                .ok_or("no master_repl_offset")?;
            for r in shard.replicas.iter().filter(|r| up.contains(r)) {
                let applied: u64 = info_of(*r, "replication")?
                    .get("slave_repl_offset")
                    .and_then(|v| v.parse().ok())
                    .ok_or("no slave_repl_offset")?;
                if applied < written {
                    return Err(format!(
                        "replica {r} at {applied}, primary {} at {written}",
                        shard.primary
                    ));
                }
            }
        }
        Ok(())
    }

    /// A manual failover (`CLUSTER FAILOVER`, coordinated: no acknowledged
    /// write is lost) on `replica_port`; waits until it is a primary and the
    /// cluster is ok. Returns how long it took.
    /// `CLUSTER FAILOVER` on the first replica of every shard, one shard
    /// after the other; returns how many shards failed over.
    pub fn fail_over_every_shard(&self) -> usize {
        let mut done = 0;
        for shard in self.shards() {
            if let Some(&replica) = shard.replicas.first() {
                self.failover(replica);
                done += 1;
            }
        }
        done
    }

    pub fn failover(&self, replica_port: u16) -> Duration {
        let t0 = Instant::now();
        let is_primary = |port: u16| -> Result<bool, String> {
            let view = self.view_of(port)?;
            let me = view.iter().find(|n| n.port == port).ok_or("not in own view")?;
            Ok(me.primary)
        };
        assert_eq!(
            is_primary(replica_port),
            Ok(false),
            "failover: node {replica_port} is not a replica"
        );
        let mut promoted = false;
        // A manual failover gives up after 5 s on the server; ask again then.
        for _attempt in 0..3 {
            let sent: redis::RedisResult<String> =
                query(replica_port, redis::cmd("CLUSTER").arg("FAILOVER"), NODE_TIMEOUT_IO);
            if let Err(e) = sent {
                panic!("CLUSTER FAILOVER on {replica_port}: {e}");
            }
            let deadline = Instant::now() + Duration::from_secs(6);
            while Instant::now() < deadline {
                if is_primary(replica_port) == Ok(true) {
                    promoted = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if promoted {
                break;
            }
        }
        assert!(promoted, "node {replica_port} not primary 18 s after CLUSTER FAILOVER");
        self.wait_ok(Duration::from_secs(10) + self.node_timeout * 2);
        t0.elapsed()
    }

    /// `kill -9` of the primary serving `slot`; returns its port. Does not
    /// wait for its replica to take over (see [`RedisCluster::wait_ok`]).
    pub fn kill_primary_of_slot(&self, slot: u16) -> u16 {
        let port = self.primary_of_slot(slot);
        self.kill(port);
        port
    }

    /// `kill -9` of node `port` (any role). Idempotent.
    pub fn kill(&self, port: u16) {
        let mut n = self.lock();
        let i = self.index(port);
        n.servers[i].kill();
        n.paused.remove(&port);
        n.down.insert(port);
    }

    /// Starts node `port` again: same port, directory and cluster config
    /// file, so it rejoins as the same node (a replica, when it was replaced
    /// meanwhile). Waits for `PING` only; then [`RedisCluster::wait_ok`].
    pub fn restart(&self, port: u16) {
        let mut n = self.lock();
        let i = self.index(port);
        n.servers[i].restart();
        n.paused.remove(&port);
        n.down.remove(&port);
    }

    /// Freezes node `port` (SIGSTOP): its connections stay open, nothing
    /// answers. A paused primary is failed over after the node timeout.
    pub fn pause(&self, port: u16) {
        let mut n = self.lock();
        let i = self.index(port);
        assert!(!n.down.contains(&port), "pause: node {port} is down");
        n.servers[i].pause();
        n.paused.insert(port);
    }

    /// Thaws a paused node (SIGCONT).
    pub fn resume(&self, port: u16) {
        let mut n = self.lock();
        let i = self.index(port);
        n.servers[i].resume();
        n.paused.remove(&port);
    }

    /// Whether node `port` answers `PING` now.
    pub fn ping(&self, port: u16) -> bool {
        let n = self.lock();
        n.servers[self.index(port)].ping()
    }

    fn index(&self, port: u16) -> usize {
        self.ports
            .iter()
            .position(|&p| p == port)
            .unwrap_or_else(|| panic!("port {port} is not a node of this cluster ({:?})", self.ports))
    }
}

fn info_of(port: u16, section: &str) -> Result<BTreeMap<String, String>, String> {
    info(port, section).map_err(|e| format!("INFO {section} on {port}: {e}"))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn crc16_and_slots_match_the_spec() {
        // The check value of CRC16/XMODEM, given in the Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("123456789"), 0x31C3);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
    }

    #[test]
    fn parses_cluster_nodes() {
        let text = "e99c 127.0.0.1:17001@17101 myself,master - 0 0 1 connected 0-5460 [5461->-4f63]\n\
                    d5d6 127.0.0.1:17005@17105,host slave e99c 0 0 2 connected\n\
                    4f63 127.0.0.1:17002@17102 master,fail - 0 0 2 disconnected\n";
        let nodes = parse_cluster_nodes(text).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].slots, vec![(0, 5460)]);
        assert_eq!(nodes[1].port, 17005);
        assert_eq!(nodes[1].primary_id.as_deref(), Some("e99c"));
        assert!(nodes[2].failed && nodes[2].slots.is_empty());
        let shards = shards_of(&nodes);
        assert_eq!(
            shards,
            vec![Shard {
                primary: 17001,
                replicas: vec![17005],
                slots: vec![(0, 5460)]
            }]
        );
    }
}
