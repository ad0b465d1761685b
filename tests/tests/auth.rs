//! ACL users and passwords in the URL (DESIGN §5.5), on a real server that
//! requires them; a wrong password is a backend failure like any other.

use std::time::Duration;

use cache_runtime::Cache;
use tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_and_password_from_the_url() {
    let server = RedisServer::start_with(&[
        "--user", "default", "off", "--user", "app", "on", ">s3cret", "~*", "+@all",
    ]);
    let url = format!("redis://app:s3cret@127.0.0.1:{}/", server.port());
    let cache = Cache::builder()
        .namespace("acl")
        .redis(&url)
        .build()
        .await
        .expect("cache");
    cache
        .set("k", &42u32, Duration::from_secs(60))
        .await
        .expect("set as the ACL user");
    assert_eq!(cache.get::<u32>("k").await.expect("get"), Some(42));
    assert!(
        format!("{cache:?}").contains("app:***@"),
        "password redacted in Debug: {cache:?}"
    );

    let wrong = format!("redis://app:wrong@127.0.0.1:{}/", server.port());
    let cache = Cache::builder()
        .namespace("acl")
        .redis(&wrong)
        .build()
        .await
        .expect("builds without connecting");
    let err = cache.get::<u32>("k").await.expect_err("wrong password");
    assert!(err.is_backend() && err.key() == Some("k"), "{err:?}");
    assert!(
        !err.to_string().contains("wrong"),
        "the password must not appear in errors: {err}"
    );
    let v = cache
        .get_or_load("k", Duration::from_secs(60), || async { Ok::<_, ()>(7u32) })
        .await;
    assert_eq!(v, Ok(7), "the loader answers when the cache cannot authenticate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_with_a_password_only_url() {
    let server = RedisServer::start_with(&["--requirepass", "hunter2"]);
    let url = format!("redis://:hunter2@127.0.0.1:{}/", server.port());
    let cache = Cache::redis(&url).await.expect("cache");
    let n = cache
        .get_or_load("n", Duration::from_secs(60), || async { Ok::<_, ()>(1u8) })
        .await;
    assert_eq!(n, Ok(1));
    assert!(cache.exists("n").await.expect("authenticated"));
}
