//! A private `redis-server` on a free loopback port, that tests and benches
//! can kill, restart and pause. Depends on std and redis-rs only, so the
//! benches of `cache-runtime` include this file with `#[path]`.
//!
//! The binary is `redis-server` from `PATH`, or `$REDIS_SERVER_BIN`. A missing
//! binary fails with instructions; it is never a silent skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process owned by the test. Stopped on drop; also
/// stopped when the test process exits (it watches our end of a pipe).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<(Child, ChildStdin)>,
    /// Extra `redis-server` arguments (ACL users, passwords).
    args: Vec<String>,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A port that was free a moment ago on 127.0.0.1, and that this process
/// has not handed out before: tests start servers in parallel, and the
/// kernel may offer a just-released ephemeral port again, which would give
/// two servers (or a server and a cluster bus) one port.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no fresh free port on 127.0.0.1 after 1,000 tries");
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra arguments, e.g.
    /// `["--requirepass", "secret"]`.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let mut s = RedisServer::stopped();
        s.args = args.iter().map(|a| (*a).to_owned()).collect();
        s.spawn();
        s
    }

    /// Reserves a free port and a directory without starting the server
    /// (for "Redis absent at start-up" tests); `restart` starts it.
    pub fn stopped() -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cache-tests-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir for redis-server");
        RedisServer {
            port,
            dir,
            child: None,
            args: Vec::new(),
        }
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    fn spawn(&mut self) {
        let bin = binary();
        if Command::new(&bin).arg("--version").output().is_err() {
            panic!(
                "`{bin}` not found. The tests need a real Redis server: install it with \
                 `sudo apt-get install -y redis-server` (Debian/Ubuntu), or set REDIS_SERVER_BIN \
                 to its path."
            );
        }
        let _ = std::fs::remove_file(self.pid_path());
        // The shell runs redis-server and kills it when our end of its stdin
        // closes: on drop, on `kill`, or when the test process exits for any
        // reason, so no server outlives its tests.
        let script = r#"bin="$1"; shift; "$bin" "$@" & pid=$!; read _unused; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .arg("--pidfile")
            .arg(self.pid_path())
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{bin}` through sh: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        self.child = Some((child, stdin));
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "redis-server on port {} did not answer PING within 10 s; log tail:\n{}",
            self.port,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// Sends `PING` over a fresh connection; true when the server answers
    /// (`+PONG`, or an authentication error from a server that wants one).
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(200))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).is_ok() && (line.starts_with("+PONG") || line.starts_with("-NOAUTH"))
    }

    /// Kills the server (SIGKILL) and waits until it is gone. Idempotent.
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ping() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again on the same port (empty: nothing is saved),
    /// or for the first time after `stopped`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        let mut pid = String::new();
        std::fs::File::open(self.pid_path())
            .and_then(|mut f| f.read_to_string(&mut pid))
            .expect("redis pid file");
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.trim())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} {} failed", pid.trim());
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `evicted_keys` of `INFO stats`: how many keys Redis evicted.
    pub async fn evicted_keys(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut self.raw().await)
            .await
            .expect("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix("evicted_keys:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A plain redis-rs connection to this server, for planting and
    /// inspecting raw values.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection to the test redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
