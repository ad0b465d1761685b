//! `rediss://` (DESIGN §5.5) against a real TLS-enabled `redis-server` with a
//! self-signed certificate made here by the `openssl` command.

use std::process::Command;
use std::time::Duration;

use cache_runtime::Cache;
use tests::{RedisServer, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_work() {
    let dir = std::env::temp_dir().join(format!("cache-tests-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the `openssl` command is needed for this test (apt-get install openssl)");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let tls_port = free_port().to_string();
    let (cert, key) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &cert,
        "--tls-auth-clients",
        "no",
    ]);

    // Self-signed: skip verification with redis-rs' `#insecure`.
    let cache = Cache::redis(&format!("rediss://127.0.0.1:{tls_port}/#insecure"))
        .await
        .expect("cache");
    cache
        .set("k", &"over tls", Duration::from_secs(60))
        .await
        .expect("set over TLS");
    assert_eq!(
        cache.get::<String>("k").await.expect("get over TLS").as_deref(),
        Some("over tls")
    );

    // Verification is on by default: the self-signed certificate is refused,
    // and the loader still answers.
    let strict = Cache::redis(&format!("rediss://127.0.0.1:{tls_port}/"))
        .await
        .expect("cache");
    assert!(
        strict.get::<String>("k").await.is_err(),
        "an unverifiable certificate must not be accepted"
    );
    let v = strict
        .get_or_load("k", Duration::from_secs(60), || async {
            Ok::<_, ()>("loader".to_owned())
        })
        .await;
    assert_eq!(v.as_deref(), Ok("loader"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
