//! Seed-shaped logs from the library (issue 15 item 6): the `log-layer`
//! layer prints `[Cache] GET course:7: HIT (0.21ms) ⚡` lines from the
//! runtime's events, every event carries the namespace and (when known) the
//! cached function, and `CACHE_LOG=1` makes a cache built from the
//! environment print the lines itself in a host with no subscriber.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::log::{CacheLogLayer, targets};
use cache_runtime::{Cache, Policy, cached, scope};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::prelude::*;

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    /// The lines so far, elapsed times replaced by `T` (`(0.21ms)` →
    /// `(Tms)`, after checking their shape), and cleared.
    fn take_lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes).unwrap().lines().map(normalize).collect()
    }
}

/// Replaces the `(12.34ms)` of a line by `(Tms)`, checking it has two
/// decimals.
fn normalize(line: &str) -> String {
    let Some(open) = line.find(" (") else {
        return line.to_owned();
    };
    let Some(len) = line[open..].find("ms)") else {
        return line.to_owned();
    };
    let number = &line[open + 2..open + len];
    let (whole, decimals) = number
        .split_once('.')
        .unwrap_or_else(|| panic!("elapsed time in {line:?}"));
    assert!(
        !whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()),
        "{line:?}"
    );
    assert!(
        decimals.len() == 2 && decimals.chars().all(|c| c.is_ascii_digit()),
        "{line:?}"
    );
    format!("{} (Tms){}", &line[..open], &line[open + len + 3..])
}

/// The fields of every operation event (those with an `op`).
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Fields>>>);

/// One event's fields, as (name, value) pairs.
type Fields = Vec<(String, String)>;

struct Record(Fields);

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut r = Record(Vec::new());
        event.record(&mut r);
        if r.0.iter().any(|(k, _)| k == "op") {
            self.0.lock().unwrap().push(r.0);
        }
    }
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "course:{id}", ttl = "5m", tags = ["courses"], cache = self.cache)]
    async fn course(&self, id: u64) -> String {
        format!("course {id}")
    }

    #[cached(invalidates = ["course:{id}"], cache = self.cache)]
    async fn rename(&self, id: u64) {
        let _ = id;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_layer_prints_the_original_shape_with_namespace_and_function() {
    let (lines, plain, events) = (Buffer::default(), Buffer::default(), Events::default());
    let (l, p) = (lines.clone(), plain.clone());
    let subscriber = tracing_subscriber::registry()
        .with(
            CacheLogLayer::new()
                .with_writer(move || l.clone())
                .with_namespace(true)
                .with_function(true)
                .with_filter(targets()),
        )
        .with(
            CacheLogLayer::new()
                .with_writer(move || p.clone())
                .with_filter(targets()),
        )
        .with(events.clone().with_filter(targets()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let cache = Cache::builder()
        .namespace("logns")
        .ttl_jitter(0.0)
        .build()
        .await
        .unwrap();
    let repo = Repo { cache: cache.clone() };
    assert_eq!(repo.course(7).await, "course 7");
    assert_eq!(repo.course(7).await, "course 7");
    repo.rename(7).await;
    cache.set("greeting", &"hello", Duration::from_secs(60)).await.unwrap();
    cache.invalidator().tag("courses").await.unwrap();
    cache
        .get_or_load("by:hand", Policy::ttl(Duration::from_secs(90)), || async {
            Ok::<_, ()>(1)
        })
        .await
        .unwrap();
    scope(async {
        repo.course(8).await;
        repo.course(8).await;
    })
    .await;

    let f = "[logns · Repo::course]";
    assert_eq!(
        lines.take_lines(),
        [
            format!("[Cache] GET course:7: MISS (Tms) {f}"),
            format!("[Cache] LOAD course:7: OK (Tms) {f}"),
            format!("[Cache] SET course:7: 300s TTL (Tms) {f}"),
            format!("[Cache] GET course:7: HIT (Tms) ⚡ {f}"),
            "[Cache] DEL course:7: OK (Tms) [logns · Repo::rename]".to_owned(),
            "[Cache] SET greeting: 60s TTL (Tms) [logns]".to_owned(),
            "[Cache] INVALIDATE tag:courses: OK (Tms) [logns]".to_owned(),
            "[Cache] GET by:hand: MISS (Tms) [logns]".to_owned(),
            "[Cache] LOAD by:hand: OK (Tms) [logns]".to_owned(),
            "[Cache] SET by:hand: 90s TTL (Tms) [logns]".to_owned(),
            format!("[Cache] GET course:8: MISS (Tms) {f}"),
            format!("[Cache] LOAD course:8: OK (Tms) {f}"),
            format!("[Cache] SET course:8: 300s TTL (Tms) {f}"),
            format!("[Cache] GET course:8: SCOPE_HIT (Tms) ⚡ {f}"),
        ]
    );
    // The plain layer: the original's shape exactly.
    let plain = plain.take_lines();
    assert_eq!(plain[0], "[Cache] GET course:7: MISS (Tms)");
    assert_eq!(plain[3], "[Cache] GET course:7: HIT (Tms) ⚡");
    assert_eq!(plain[2], "[Cache] SET course:7: 300s TTL (Tms)");
    assert_eq!(plain[6], "[Cache] INVALIDATE tag:courses: OK (Tms)");

    // Every operation event names its namespace; those of a cached function
    // name it (the full path, for any subscriber).
    let events = events.0.lock().unwrap();
    assert_eq!(events.len(), 14);
    for e in events.iter() {
        let get = |k: &str| e.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("namespace"), Some("logns"), "{e:?}");
        if get("key").is_some_and(|k| k.starts_with("course:")) {
            let function = get("function").unwrap_or_else(|| panic!("no function: {e:?}"));
            assert!(
                function.ends_with("::Repo::course") || function.ends_with("::Repo::rename"),
                "{e:?}"
            );
            assert!(function.starts_with("cache_log::"), "the full path: {function}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn other_events_are_lines_too_and_other_targets_are_ignored() {
    let lines = Buffer::default();
    let l = lines.clone();
    let subscriber = tracing_subscriber::registry().with(CacheLogLayer::new().with_writer(move || l.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::warn!(target: "somebody_else", "not ours");
    // A value over the size limit: a warning of the runtime.
    let cache = Cache::builder().max_value_bytes(16).build().await.unwrap();
    cache
        .get_or_load("big", Duration::from_secs(60), || async { Ok::<_, ()>(vec![0u8; 64]) })
        .await
        .unwrap();
    let lines = lines.take_lines();
    let warning = lines
        .iter()
        .find(|l| l.starts_with("[Cache] WARN: value not cached"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(warning.contains("big"), "the error names the key: {warning}");
    assert!(!lines.iter().any(|l| l.contains("not ours")), "{lines:?}");
}

/// Runs the host application with `CACHE_LOG` (or without) and returns its
/// stderr lines.
fn host(mode: &str, cache_log: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cache_log_worker"));
    cmd.arg(mode);
    for var in [
        "REDIS_URL",
        "REDIS_CLUSTER_URLS",
        "REDIS_SENTINEL_URLS",
        "CACHE_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    match cache_log {
        Some(v) => cmd.env("CACHE_LOG", v),
        None => cmd.env_remove("CACHE_LOG"),
    };
    let out = cmd.output().expect("run cache_log_worker");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace=cache\n");
    String::from_utf8(out.stderr).unwrap().lines().map(normalize).collect()
}

#[test]
fn cache_log_1_prints_in_a_host_without_a_subscriber() {
    let lines = host("env", Some("1"));
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0], "[Cache] GET course:7: MISS (Tms)");
    assert_eq!(lines[1], "[Cache] LOAD course:7: OK (Tms)");
    // The TTL is jittered by up to 10 % (the default).
    let ttl: u64 = lines[2]
        .strip_prefix("[Cache] SET course:7: ")
        .and_then(|r| r.strip_suffix("s TTL (Tms)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", lines[2]));
    assert!((270..=300).contains(&ttl), "{ttl}");
    assert_eq!(lines[3], "[Cache] GET course:7: HIT (Tms) ⚡");
    assert_eq!(lines[4], "[Cache] SET greeting: 60s TTL (Tms)");
    assert_eq!(lines[5], "[Cache] DEL course:7: OK (Tms)");
}

#[test]
fn without_cache_log_or_with_log_off_in_code_nothing_is_printed() {
    assert_eq!(host("env", None), Vec::<String>::new());
    assert_eq!(host("env", Some("0")), Vec::<String>::new());
    assert_eq!(host("code-off", Some("1")), Vec::<String>::new(), "code wins");
}
