//! Code vs environment (issue 15 item 8): a setting made in code wins over
//! the environment, wherever `from_env` stands in the builder chain; the
//! environment fills only what the code left open. Each case runs
//! `env_worker` in a process of its own with exactly the variables it sets.

use std::process::Command;

const VARS: [&str; 6] = [
    "CACHE_NAMESPACE",
    "REDIS_URL",
    "REDIS_CLUSTER_URLS",
    "REDIS_SENTINEL_URLS",
    "REDIS_SENTINEL_MASTER",
    "CACHE_LOG",
];

struct Run {
    namespace: String,
    debug: String,
    stderr: String,
}

fn run(mode: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_env_worker"));
    cmd.arg(mode);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run env_worker");
    assert!(out.status.success(), "{mode} {env:?}: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
            .to_owned()
    };
    Run {
        namespace: field("namespace="),
        debug: field("cache="),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

const NS: (&str, &str) = ("CACHE_NAMESPACE", "from-env");

#[test]
fn the_environment_fills_what_code_left_open() {
    let r = run("env", &[]);
    assert_eq!(r.namespace, "cache", "the default");
    assert!(r.debug.contains("backend: Memory"), "{}", r.debug);
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    let r = run("env", &[NS, ("REDIS_URL", "redis://127.0.0.1:1/"), ("CACHE_LOG", "1")]);
    assert_eq!(r.namespace, "from-env");
    assert!(r.debug.contains("backend: Redis(redis://127.0.0.1:1/)"), "{}", r.debug);

    let r = run("env", &[("CACHE_LOG", "true")]);
    assert!(r.stderr.starts_with("[Cache] SET k: 60s TTL ("), "{}", r.stderr);

    // Blank values count as unset.
    let r = run("env", &[("CACHE_NAMESPACE", "  "), ("REDIS_URL", "")]);
    assert_eq!(r.namespace, "cache");
    assert!(r.debug.contains("backend: Memory"), "{}", r.debug);
}

#[test]
fn a_namespace_set_in_code_wins_before_or_after_from_env() {
    for mode in ["code-before", "code-after"] {
        assert_eq!(run(mode, &[NS]).namespace, "code", "{mode}");
        assert_eq!(run(mode, &[]).namespace, "code", "{mode}");
    }
}

#[test]
fn a_backend_chosen_in_code_wins() {
    // Before: `.redis(url).env_overrides()` without REDIS_URL silently became an
    // in-process cache.
    let r = run("backend-in-code", &[]);
    assert!(r.debug.contains("backend: Redis(redis://127.0.0.1:1/)"), "{}", r.debug);
    let r = run("backend-in-code", &[("REDIS_URL", "redis://127.0.0.1:2/")]);
    assert!(r.debug.contains("backend: Redis(redis://127.0.0.1:1/)"), "{}", r.debug);
    let r = run("memory-in-code", &[("REDIS_URL", "redis://127.0.0.1:2/")]);
    assert!(r.debug.contains("backend: Memory"), "{}", r.debug);
}

#[test]
fn sentinel_urls_from_the_environment() {
    let sentinel = [("REDIS_SENTINEL_URLS", "redis://127.0.0.1:3/, redis://127.0.0.1:4/")];
    let r = run("env", &sentinel);
    assert!(
        r.debug
            .contains("backend: Sentinel(redis://127.0.0.1:3/,redis://127.0.0.1:4/ (mymaster))"),
        "{}",
        r.debug
    );
    let r = run("env", &[sentinel[0], ("REDIS_SENTINEL_MASTER", "primary")]);
    assert!(r.debug.contains("(primary))"), "{}", r.debug);
    // REDIS_URL comes after Sentinel.
    let r = run("env", &[sentinel[0], ("REDIS_URL", "redis://127.0.0.1:5/")]);
    assert!(r.debug.contains("backend: Sentinel("), "{}", r.debug);
}

#[test]
fn logging_off_in_code_wins_over_cache_log() {
    assert!(run("log-off-in-code", &[("CACHE_LOG", "1")]).stderr.is_empty());
    assert!(run("env", &[("CACHE_LOG", "0")]).stderr.is_empty());
}

#[test]
fn a_default_of_the_application_the_environment_may_replace() {
    assert_eq!(run("own-default", &[]).namespace, "mine");
    assert_eq!(run("own-default", &[NS]).namespace, "from-env");
}
