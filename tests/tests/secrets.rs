//! Issue 9 item 6: no password in any output. What redis-rs itself prints
//! for every URL form (parse errors, `Debug` of its client and connection
//! manager, authentication failures against a real server), so that the
//! cache's own redaction is the only place left to get right.

use tests::RedisServer;

const PW: &str = "S3cr3t-pw";

/// URL forms a user may write, well-formed or not, each with the password.
fn forms(port: u16) -> Vec<String> {
    vec![
        format!("redis://:{PW}@127.0.0.1:{port}/0"),
        format!("redis://app:{PW}@127.0.0.1:{port}"),
        format!("rediss://app:{PW}@127.0.0.1:{port}/#insecure"),
        format!("redis+unix:///tmp/no-such.sock?db=1&pass={PW}"),
        format!("unix:///tmp/no-such.sock?user=app&pass={PW}"),
        format!("redis+sentinel://:{PW}@127.0.0.1:{port}/mymaster"),
        format!("redis://127.0.0.1:{port}/?password={PW}"),
        format!("redis://:{PW}@127.0.0.1:notaport"),
        format!("redis:/:{PW}@127.0.0.1"),
        format!("redis:{PW}@127.0.0.1"),
        format!("redis://:{PW}@"),
        format!("redis://:{PW}@127.0.0.1/{PW}"),
        format!("redis://:{PW}@127.0.0.1:{port}/0?protocol={PW}x"),
        format!("redis://:{PW}@0.0.0.0:{port}"),
        format!("redis://u:{PW}@127.0.0.1:{port}/#{PW}"),
        PW.to_owned(),
    ]
}

/// `Client::open` errors are fixed strings ("Redis URL did not parse -
/// InvalidClientConfig", "Missing hostname", "Invalid database number", …)
/// and a parsed client's `Debug` shows `password: Some("<redacted>")`. The
/// one exception is `?protocol=`, whose value redis-rs echoes in its error.
#[test]
fn redis_rs_parse_errors_and_debug_hide_the_password() {
    let mut opened = 0;
    for url in forms(6390) {
        match redis::Client::open(url.as_str()) {
            Ok(client) => {
                opened += 1;
                let shown = format!("{client:?}");
                assert!(!shown.contains(PW), "{url}: Debug of the client shows it: {shown}");
            }
            Err(e) => {
                let shown = format!("{e} / {e:?}");
                let echoed = url.contains("protocol=") && shown.contains(&format!("{PW}x"));
                assert!(
                    !shown.contains(PW) || echoed,
                    "{url}: the parse error shows the password: {shown}"
                );
                if url.contains("protocol=") {
                    assert!(echoed, "redis-rs no longer echoes ?protocol=: {shown}");
                }
            }
        }
    }
    assert!(opened >= 5, "most well-formed forms open: {opened}");
}

/// A wrong password, over TCP (password-only and ACL user) and a Unix socket
/// (`?pass=`): the server's refusal and redis-rs' error never repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_hide_the_password() {
    let dir = std::env::temp_dir().join(format!("cache-tests-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let socket = dir.join("redis.sock");
    let server = RedisServer::start_with(&[
        "--requirepass",
        "the-right-one",
        "--unixsocket",
        socket.to_str().expect("utf-8 path"),
    ]);
    let port = server.port();
    let urls = [
        format!("redis://:{PW}@127.0.0.1:{port}/"),
        format!("redis://default:{PW}@127.0.0.1:{port}/"),
        format!("redis://app:{PW}@127.0.0.1:{port}/"),
        format!("redis+unix://{}?pass={PW}", socket.display()),
        format!("redis://:{PW}@127.0.0.1:{port}/?protocol=resp3"),
    ];
    for url in &urls {
        let client = redis::Client::open(url.as_str()).expect("well-formed");
        let err = client
            .get_multiplexed_async_connection()
            .await
            .expect_err("wrong password");
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(PW), "{url}: {shown}");
        assert!(
            shown.contains("WRONGPASS") || shown.contains("invalid") || shown.contains("AuthenticationFailed"),
            "{url}: an authentication error, not another failure: {shown}"
        );

        let manager = redis::aio::ConnectionManager::new_lazy_with_config(
            client,
            redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0),
        )
        .expect("lazy manager");
        let shown = format!("{manager:?}");
        assert!(!shown.contains(PW), "{url}: Debug of the manager: {shown}");
        let mut conn = manager.clone();
        let err = redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .expect_err("wrong password");
        assert!(!format!("{err} / {err:?}").contains(PW), "{url}: {err:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cache's own output: `Debug` of builders and caches, and every build
/// error, for every URL form (standalone, cluster seeds, sentinels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_never_prints_the_password() {
    for url in forms(6391) {
        let builders = [
            cache_runtime::Cache::builder().redis(&url),
            cache_runtime::Cache::builder().redis_cluster([url.as_str(), "redis://127.0.0.1:1"]),
            cache_runtime::Cache::builder().redis_sentinel([url.as_str()], "mymaster"),
        ];
        for b in builders {
            let shown = format!("{b:?}");
            assert!(!shown.contains(PW), "{url}: Debug of the builder shows it: {shown}");
            match b.build().await {
                Ok(cache) => {
                    let shown = format!("{cache:?}");
                    assert!(!shown.contains(PW), "{url}: Debug of the cache shows it: {shown}");
                    // A failing call's error (nothing listens on 6391).
                    if let Err(e) = cache.get::<u8>("k").await {
                        let shown = format!("{e} / {e:?}");
                        assert!(!shown.contains(PW), "{url}: a call's error shows it: {shown}");
                    }
                }
                Err(e) => {
                    let shown = format!("{e} / {e:?}");
                    assert!(!shown.contains(PW), "{url}: the build error shows it: {shown}");
                }
            }
        }
    }
}
