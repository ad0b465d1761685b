//! `lms-web`, the LMS as an axum service (issue 13), over real HTTP on free
//! loopback ports: every page, HTML and JSON, equals its uncached rendering
//! (and the second request is answered by the cache alone); each POST
//! mutation is visible on the next GET; `/metrics` parses as Prometheus
//! text with the expected names and bounded labels; and a real headless
//! Chromium renders the `/cache` dashboard with non-zero hit rates, a drawn
//! chart and no JavaScript error.
//!
//! Each test has its own small SQLite database (a temp file) and its own
//! cache namespace on the binary's private redis-server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use examples::lms::{Db, Lms, Mode, SeedConfig};
use examples::web::client::Client;
use examples::web::dashboard::CacheReport;
use examples::web::{App, RunningServer, html};
use serde_json::Value;
use tests::{Backend, cache_for};

/// A cached server and an uncached one (`CACHE_DISABLED`) over one database.
struct Site {
    lms: Lms,
    cached: RunningServer,
    uncached: RunningServer,
}

async fn site(backend: Backend) -> Site {
    examples::web::telemetry::init_tracing();
    // The recorder before the caches: they register their zero series.
    let _ = examples::web::telemetry::prometheus();
    let (db, _) = Db::sqlite_temp(SeedConfig::small()).await.expect("seed the database");
    let lms = Lms::new(db.clone(), cache_for(backend).await);
    let cached = RunningServer::start(App::new(lms.clone(), Mode::Cached))
        .await
        .expect("start the cached server");
    let uncached = RunningServer::start(App::new(Lms::new(db, cache_for(backend).await), Mode::Uncached))
        .await
        .expect("start the uncached server");
    Site { lms, cached, uncached }
}

fn client(server: &RunningServer) -> Client {
    Client::new(server.addr).expect("a loopback client")
}

async fn get(c: &mut Client, path: &str) -> examples::web::client::Response {
    let r = c.get(path).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r
}

async fn get_json(c: &mut Client, path: &str) -> Value {
    get(c, path)
        .await
        .json()
        .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

/// The pages of one student and one teacher: (path, expected HTML, expected
/// JSON), rendered from the service's uncached results.
async fn expected_pages(lms: &Lms, student: i64, teacher: i64, course: i64) -> Vec<(String, String, String)> {
    let u = Mode::Uncached;
    // The exact bytes: serde_json's default float parsing may be one ULP
    // off, so bodies are compared as text, not as parsed values.
    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("serializable page")
    }
    let p1 = lms.teacher_courses_page(teacher, u).await.unwrap();
    let p2 = lms.admin_dashboard_page(u).await.unwrap();
    let p3 = lms.student_dashboard_page(student, u).await.unwrap();
    let p4 = lms.teacher_dashboard_page(teacher, u).await.unwrap();
    let p5 = lms.student_courses_page(student, u).await.unwrap();
    let c = lms.course(course, u).await.unwrap();
    vec![
        (
            format!("/teacher/{teacher}/courses"),
            html::teacher_courses(&p1),
            json(&p1),
        ),
        ("/admin/dashboard".to_owned(), html::admin_dashboard(&p2), json(&p2)),
        (
            format!("/student/{student}/dashboard"),
            html::student_dashboard(&p3),
            json(&p3),
        ),
        (
            format!("/teacher/{teacher}/dashboard"),
            html::teacher_dashboard(&p4),
            json(&p4),
        ),
        (
            format!("/student/{student}/courses"),
            html::student_courses(&p5),
            json(&p5),
        ),
        (format!("/course/{course}"), html::course(&c), json(&c)),
    ]
}

async fn pages_equal_uncached(backend: Backend) {
    let site = site(backend).await;
    let (mut on, mut off) = (client(&site.cached), client(&site.uncached));
    for (student, teacher, course) in [(1, 1, 1), (2, 2, 5), (17, 3, 12), (60, 4, 24)] {
        for (path, want_html, want_json) in expected_pages(&site.lms, student, teacher, course).await {
            let api = format!("/api{path}");
            // First request: misses, loads, stores.
            let first = get(&mut on, &path).await;
            assert_eq!(first.text(), want_html, "{path}: first (cached) HTML");
            assert_eq!(first.header("x-cache"), Some("on"));
            assert_eq!(first.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
            let json = get(&mut on, &api).await;
            assert_eq!(json.text(), want_json, "{api}: cached JSON");
            assert_eq!(json.header("content-type"), Some("application/json"), "{api}");
            // Second request: the cache alone answers it.
            let q = site.lms.db.queries();
            assert_eq!(get(&mut on, &path).await.text(), want_html, "{path}: cache hit HTML");
            assert_eq!(get(&mut on, &api).await.text(), want_json, "{api}: cache hit JSON");
            assert_eq!(
                site.lms.db.queries(),
                q,
                "{path}: the second request reached the database"
            );
            // The cache-off server renders the same bytes from the database.
            let q = site.lms.db.queries();
            let plain = get(&mut off, &path).await;
            assert_eq!(plain.header("x-cache"), Some("off"));
            assert_eq!(plain.text(), want_html, "{path}: uncached server");
            assert_eq!(get(&mut off, &api).await.text(), want_json, "{api}: uncached server");
            assert!(
                site.lms.db.queries() > q,
                "{path}: the uncached server skipped the database"
            );
        }
    }
    let report: CacheReport = get(&mut on, "/api/cache").await.json().unwrap();
    assert!(report.total.hits > 0 && report.total.backend_errors == 0, "{report:?}");
    assert_eq!(
        report.backend,
        if backend == Backend::Redis {
            "redis"
        } else {
            "in-process"
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_equal_their_uncached_rendering_on_redis() {
    pages_equal_uncached(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_equal_their_uncached_rendering_in_memory() {
    pages_equal_uncached(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_and_bad_input_are_errors_not_panics() {
    let site = site(Backend::Memory).await;
    let mut c = client(&site.cached);
    for (path, status) in [
        ("/nowhere", 404),
        ("/student/9999/dashboard", 404),
        ("/api/student/9999/dashboard", 404),
        ("/course/0", 404),
        ("/student/abc/courses", 400),
    ] {
        assert_eq!(c.get(path).await.unwrap().status, status, "{path}");
    }
    let r = c.get("/api/course/0").await.unwrap();
    assert!(
        r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("course 0")
    );
    let r = c
        .post_form("/course/1", &[("title", "   "), ("price_cents", "100")])
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = c
        .post_form("/course/1", &[("title", "ok"), ("price_cents", "-1")])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = c.post_form("/course/1", &[("title", "no price")]).await.unwrap();
    assert!(r.status == 400 || r.status == 422, "{}", r.status);
}

// ---------------------------------------------------------------- mutations

/// A paid active course `student` is not enrolled in, from their page.
async fn course_to_enroll(c: &mut Client, student: i64) -> (i64, i64) {
    let page = get_json(c, &format!("/api/student/{student}/courses")).await;
    let browse = page["browse"].as_array().expect("browse");
    let course = browse
        .iter()
        .find(|c| c["price_cents"].as_i64() > Some(0))
        .expect("a paid course to enroll in");
    (course["id"].as_i64().unwrap(), course["teacher_id"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_post_mutation_is_visible_on_the_next_get() {
    let site = site(Backend::Redis).await;
    let (mut c, mut off) = (client(&site.cached), client(&site.uncached));
    let student = 7;

    // 1. Update a course the student is enrolled in (HTML form).
    let page = get_json(&mut c, &format!("/api/student/{student}/courses")).await;
    let course = &page["enrollments"][0][1];
    let (course_id, old_title) = (
        course["id"].as_i64().unwrap(),
        course["title"].as_str().unwrap().to_owned(),
    );
    let page_html = get(&mut c, &format!("/student/{student}/courses")).await.text();
    get(&mut c, &format!("/course/{course_id}")).await; // cached now
    let new_title = format!("{old_title} <2nd edition> & more");
    let r = c
        .post_form(
            &format!("/course/{course_id}"),
            &[("title", new_title.as_str()), ("price_cents", "4321")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("/course/{course_id}").as_str()));
    let shown = get(&mut c, &format!("/course/{course_id}")).await.text();
    assert!(
        shown.contains(&html::esc(&new_title)),
        "course page shows the new title"
    );
    assert!(shown.contains("$43.21"), "course page shows the new price");
    let after = get(&mut c, &format!("/student/{student}/courses")).await.text();
    assert_ne!(after, page_html, "the student's page changed");
    assert!(after.contains(&html::esc(&new_title)));
    assert!(!after.contains(&format!(">{}<", html::esc(&old_title))));
    assert_eq!(
        after,
        get(&mut off, &format!("/student/{student}/courses")).await.text()
    );
    // The JSON endpoint answers with the course as stored.
    let r = c
        .post_json(
            &format!("/api/course/{course_id}"),
            &serde_json::json!({"title": "JSON title", "price_cents": 0}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["title"].as_str(), v["price_cents"].as_i64()),
        (Some("JSON title"), Some(0))
    );
    assert_eq!(get_json(&mut c, &format!("/api/course/{course_id}")).await, v);

    // 2. Enroll (HTML form): the student's pages, the teacher's, the admin's.
    let (course_id, teacher) = course_to_enroll(&mut c, student).await;
    let bystander = 30;
    get(&mut c, &format!("/student/{bystander}/dashboard")).await;
    let dash = get_json(&mut c, &format!("/api/student/{student}/dashboard")).await;
    let tdash = get_json(&mut c, &format!("/api/teacher/{teacher}/dashboard")).await;
    let admin = get_json(&mut c, "/api/admin/dashboard").await;
    let r = c
        .post_form(
            &format!("/student/{student}/enroll"),
            &[("course_id", course_id.to_string().as_str())],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("/student/{student}/courses").as_str())
    );
    let courses = get_json(&mut c, &format!("/api/student/{student}/courses")).await;
    assert!(
        courses["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e[1]["id"].as_i64() == Some(course_id) && e[0]["payment_status"] == "pending"),
        "the new enrollment is listed, its payment pending"
    );
    let dash2 = get_json(&mut c, &format!("/api/student/{student}/dashboard")).await;
    assert_eq!(
        dash2["dashboard"]["enrolled"],
        dash["dashboard"]["enrolled"].as_i64().unwrap() + 1
    );
    assert_eq!(
        dash2["dashboard"]["pending_payments"],
        dash["dashboard"]["pending_payments"].as_i64().unwrap() + 1
    );
    let tdash2 = get_json(&mut c, &format!("/api/teacher/{teacher}/dashboard")).await;
    assert_eq!(
        tdash2["dashboard"]["enrollments"],
        tdash["dashboard"]["enrollments"].as_i64().unwrap() + 1
    );
    let admin2 = get_json(&mut c, "/api/admin/dashboard").await;
    assert_eq!(
        admin2["stats"]["enrollments"],
        admin["stats"]["enrollments"].as_i64().unwrap() + 1
    );
    // Another student's dashboard is not the enrollment's business.
    let q = site.lms.db.queries();
    get(&mut c, &format!("/student/{bystander}/dashboard")).await;
    assert_eq!(site.lms.db.queries(), q, "another student's dashboard was reloaded");
    // Enrolling twice is a conflict, in HTML and JSON.
    let again = c
        .post_form(
            &format!("/student/{student}/enroll"),
            &[("course_id", course_id.to_string().as_str())],
        )
        .await
        .unwrap();
    assert_eq!(again.status, 409);
    let again = c
        .post_json(
            &format!("/api/student/{student}/enroll"),
            &serde_json::json!({"course_id": course_id}),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 409);

    // 3. Complete the payment (HTML form): spent and revenue move.
    let price = get_json(&mut c, &format!("/api/course/{course_id}")).await["price_cents"]
        .as_i64()
        .unwrap();
    let r = c
        .post_form(
            &format!("/student/{student}/pay"),
            &[("course_id", course_id.to_string().as_str())],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let dash3 = get_json(&mut c, &format!("/api/student/{student}/dashboard")).await;
    assert_eq!(
        dash3["dashboard"]["total_spent_cents"],
        dash2["dashboard"]["total_spent_cents"].as_i64().unwrap() + price
    );
    assert_eq!(
        dash3["dashboard"]["pending_payments"],
        dash["dashboard"]["pending_payments"]
    );
    let admin3 = get_json(&mut c, "/api/admin/dashboard").await;
    assert_eq!(
        admin3["stats"]["revenue_cents"],
        admin2["stats"]["revenue_cents"].as_i64().unwrap() + price
    );
    // Nothing left to pay for that course.
    let r = c
        .post_json(
            &format!("/api/student/{student}/pay"),
            &serde_json::json!({"course_id": course_id}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    // 4. The JSON enroll + pay pair, for another student.
    let other = 8;
    let (course_id, _) = course_to_enroll(&mut c, other).await;
    get_json(&mut c, &format!("/api/student/{other}/dashboard")).await;
    let r = c
        .post_json(
            &format!("/api/student/{other}/enroll"),
            &serde_json::json!({"course_id": course_id}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let enrolled: examples::web::Enrolled = r.json().unwrap();
    assert!(enrolled.payment_id.is_some());
    let r = c
        .post_json(
            &format!("/api/student/{other}/pay"),
            &serde_json::json!({"course_id": course_id}),
        )
        .await
        .unwrap();
    let paid: examples::web::Paid = r.json().unwrap();
    assert_eq!(Some(paid.payment_id), enrolled.payment_id);

    // After all of it every page still equals the database's.
    for (student, teacher) in [(student, teacher), (other, 1)] {
        for path in [
            format!("/teacher/{teacher}/courses"),
            "/admin/dashboard".to_owned(),
            format!("/student/{student}/dashboard"),
            format!("/teacher/{teacher}/dashboard"),
            format!("/student/{student}/courses"),
        ] {
            assert_eq!(
                get(&mut c, &path).await.text(),
                get(&mut off, &path).await.text(),
                "{path} after the mutations"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_pages_are_served_and_the_dashboard_shows_the_open_breaker() {
    examples::web::telemetry::init_tracing();
    let (db, _) = Db::sqlite_temp(SeedConfig::small()).await.expect("seed the database");
    // Nothing listens on this port.
    let cache = cache_runtime::Cache::builder()
        .namespace(&tests::unique_namespace("down"))
        .redis(&format!("redis://127.0.0.1:{}", tests::free_port()))
        .build()
        .await
        .expect("a lazily connecting cache");
    let lms = Lms::new(db, cache);
    let server = RunningServer::start(App::new(lms.clone(), Mode::Cached)).await.unwrap();
    let mut c = client(&server);
    for (path, html, _) in expected_pages(&lms, 3, 2, 4).await {
        for _ in 0..3 {
            assert_eq!(get(&mut c, &path).await.text(), html, "{path} with Redis down");
        }
    }
    let report: CacheReport = get(&mut c, "/api/cache").await.json().unwrap();
    assert!(report.degraded, "the breaker is open: {report:?}");
    assert!(report.breaker_opened >= 1 && report.total.hits == 0, "{report:?}");
    let page = get(&mut c, "/cache").await.text();
    assert!(
        page.contains(">open: Redis skipped</span>"),
        "the page shows the open breaker"
    );
    let metrics = get(&mut c, "/metrics").await.text();
    let ns = lms.cache.namespace();
    assert!(
        metrics.contains(&format!("cache_breaker_open{{namespace=\"{ns}\"}} 1")),
        "{metrics}"
    );
}

// ------------------------------------------------------------------ metrics

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Parses the text exposition format strictly: every line is blank, a
/// `# TYPE name kind` / `# HELP name text` comment, or
/// `name{label="value",…} value [timestamp]`.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    let mut typed = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name, true) {
                        return Err(err("bad metric name"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err("unknown type"));
                    }
                    if !typed.insert(name.to_owned()) {
                        return Err(err("second TYPE line for one metric"));
                    }
                }
                (Some("HELP"), Some(name), _) if is_name(name, true) => {}
                _ => return Err(err("comment is neither TYPE nor HELP")),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(mut l) = rest.strip_prefix('{') {
            loop {
                l = l.trim_start_matches(' ');
                if let Some(after) = l.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = l.find('=').ok_or_else(|| err("label without ="))?;
                let key = &l[..eq];
                if !is_name(key, false) {
                    return Err(err("bad label name"));
                }
                let mut value = String::new();
                let mut chars = l[eq + 1..]
                    .strip_prefix('"')
                    .ok_or_else(|| err("unquoted label value"))?
                    .char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(err("bad escape in label value")),
                        },
                        Some((_, c)) => value.push(c),
                        None => return Err(err("unterminated label value")),
                    }
                };
                if labels.insert(key.to_owned(), value).is_some() {
                    return Err(err("duplicate label"));
                }
                l = &l[eq + 1 + 1 + end + 1..];
                if let Some(after) = l.strip_prefix(',') {
                    l = after;
                } else if !l.starts_with('}') {
                    return Err(err("expected , or } after a label"));
                }
            }
        }
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value"))?
            .split(' ');
        let value = match fields.next().ok_or_else(|| err("no value"))? {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| err("value is not a number"))?,
        };
        if let Some(ts) = fields.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(err("timestamp is not an integer"));
        }
        if fields.next().is_some() {
            return Err(err("trailing fields"));
        }
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

#[test]
fn the_prometheus_parser_rejects_malformed_lines() {
    let good = "# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\nb 1.5e3\n";
    let s = parse_prometheus(good).unwrap();
    assert_eq!(s[0].labels["y"], "q\"");
    assert_eq!(s[1].value, 1500.0);
    for bad in [
        "a{x=1} 3",
        "a{x=\"1\" 3",
        "a 3 4 5",
        "1a 3",
        "a{x=\"1\"}3",
        "a",
        "a abc",
        "# random comment",
        "# TYPE a countr",
        "a{x=\"1\",x=\"2\"} 1",
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_with_bounded_labels() {
    let site = site(Backend::Redis).await;
    let mut c = client(&site.cached);
    for student in 1..=6 {
        for path in [
            format!("/student/{student}/dashboard"),
            format!("/api/student/{student}/courses"),
            format!("/teacher/{}/courses", 1 + student % 4),
            "/admin/dashboard".to_owned(),
        ] {
            get(&mut c, &path).await;
            get(&mut c, &path).await;
        }
    }
    assert_eq!(c.get("/nowhere/42").await.unwrap().status, 404);
    let r = get(&mut c, "/metrics").await;
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    for name in [
        "lms_http_requests_total",
        "lms_http_request_duration_seconds_bucket",
        "lms_http_request_duration_seconds_sum",
        "lms_http_request_duration_seconds_count",
        "lms_cache_function_hit_rate",
        "lms_cache_hit_rate",
        "lms_cache_coalesced_waits_total",
        "lms_cache_breaker_opened_total",
        // The runtime's own (DESIGN §14, its `metrics` feature).
        "cache_requests_total",
        "cache_loads_total",
        "cache_load_duration_seconds_bucket",
        "cache_load_duration_seconds_count",
        "cache_operation_duration_seconds_bucket",
        "cache_operation_duration_seconds_count",
        "cache_backend_errors_total",
        "cache_breaker_open",
        "cache_invalidations_total",
    ] {
        assert!(names.contains(name), "{name} missing from /metrics:\n{text}");
    }

    // Labels are bounded: routes are templates, functions are #[cached]
    // methods, and no cache key or id appears anywhere.
    let routes: BTreeSet<&str> = samples
        .iter()
        .filter_map(|s| s.labels.get("route").map(String::as_str))
        .collect();
    assert!(routes.contains("/student/{id}/dashboard"), "{routes:?}");
    assert!(routes.contains("unmatched"), "{routes:?}");
    for route in &routes {
        assert!(
            *route == "unmatched" || !route.chars().any(|c| c.is_ascii_digit()),
            "route label with an id: {route}"
        );
    }
    for key_part in ["dashboard:student", "student:profile", "course:stats", "/student/1/"] {
        assert!(!text.contains(key_part), "/metrics mentions {key_part:?}");
    }
    let label_names: BTreeSet<&str> = samples
        .iter()
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .collect();
    assert_eq!(
        label_names,
        BTreeSet::from([
            "function",
            "kind",
            "le",
            "method",
            "namespace",
            "op",
            "outcome",
            "result",
            "route",
            "status"
        ]),
        "unexpected label names"
    );

    // The values are this server's: hit rates equal /api/cache's, the
    // runtime's counters (per process: other tests' caches add to them) are
    // at least this cache's, and each histogram's +Inf bucket equals its
    // count.
    let ns = site.lms.cache.namespace().to_owned();
    let report: CacheReport = get(&mut c, "/api/cache").await.json().unwrap();
    let text = get(&mut c, "/metrics").await.text();
    let samples = parse_prometheus(&text).unwrap();
    let report: BTreeMap<String, _> = report.functions.into_iter().map(|f| (f.function, f.counts)).collect();
    let mut checked = 0;
    for s in samples.iter().filter(|s| s.labels.get("namespace") == Some(&ns)) {
        if let (Some(f), "lms_cache_function_hit_rate") = (s.labels.get("function"), s.name.as_str()) {
            assert_eq!(s.value, report[f].hit_rate, "hit rate of {f}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} functions of this server");
    let runtime = |name: &str, function: &str, outcomes: &[&str]| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                s.labels
                    .get("function")
                    .is_some_and(|f| examples::web::telemetry::short_function_name(f) == function)
            })
            .filter(|s| outcomes.is_empty() || s.labels.get("outcome").is_some_and(|o| outcomes.contains(&o.as_str())))
            .map(|s| s.value)
            .sum()
    };
    for (f, counts) in &report {
        let hits = runtime("cache_requests_total", f, &["hit", "scope_hit"]);
        assert!(hits >= counts.hits as f64, "{f}: {hits} < {counts:?}");
        let loads = runtime("cache_loads_total", f, &[]);
        assert!(loads >= counts.loads as f64, "{f}: {loads} < {counts:?}");
    }
    let rate = samples
        .iter()
        .find(|s| s.name == "lms_cache_hit_rate" && s.labels.get("namespace") == Some(&ns))
        .expect("this cache's hit rate");
    assert!(rate.value > 0.0, "no hits exported");
    for count in samples
        .iter()
        .filter(|s| s.name == "lms_http_request_duration_seconds_count")
    {
        let inf = samples
            .iter()
            .find(|s| {
                s.name == "lms_http_request_duration_seconds_bucket"
                    && s.labels.get("le").map(String::as_str) == Some("+Inf")
                    && s.labels.get("route") == count.labels.get("route")
                    && s.labels.get("method") == count.labels.get("method")
            })
            .expect("a +Inf bucket");
        assert_eq!(inf.value, count.value, "{:?}", count.labels);
    }
    let dashboards = samples
        .iter()
        .find(|s| {
            s.name == "lms_http_requests_total"
                && s.labels.get("route").map(String::as_str) == Some("/student/{id}/dashboard")
                && s.labels.get("status").map(String::as_str) == Some("200")
        })
        .expect("requests of the student dashboard");
    assert!(dashboards.value >= 12.0, "{dashboards:?}");
}

// ------------------------------------------------------------------ browser

const CHROMIUM: &str = "/usr/bin/chromium";

/// Page views in the background while the browser watches, bounded in time.
fn background_traffic(server: &RunningServer, for_how_long: Duration) -> tokio::task::JoinHandle<u64> {
    let addr = server.addr;
    tokio::spawn(async move {
        let mut c = Client::new(addr).expect("client");
        let end = tokio::time::Instant::now() + for_how_long;
        let mut n = 0u64;
        while tokio::time::Instant::now() < end {
            let s = 1 + (n % 20) as i64;
            let path = examples::web::load::page_path((n % 5) as usize, s, 1 + (n % 4) as i64, n.is_multiple_of(2));
            let _ = c.get(&path).await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    })
}

/// Runs headless Chromium on `url`, returns (stdout, stderr).
async fn chromium(args: &[String]) -> (String, String) {
    let user_dir = std::env::temp_dir().join(format!("lms-web-chromium-{}", std::process::id()));
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,1400",
    ])
    .arg(format!("--user-data-dir={}", user_dir.display()))
    .args(args)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&user_dir);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of the element with `id` (its first text run), from a DOM dump.
fn element_text<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let open_end = start + dom[start..].find('>')? + 1;
    let close = open_end + dom[open_end..].find('<')?;
    Some(&dom[open_end..close])
}

/// `attr="…"` of the element with `id`.
fn element_attr<'a>(dom: &'a str, id: &str, attr: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag = &dom[tag_start..start + dom[start..].find('>')?];
    let v = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(&tag[v..v + tag[v..].find('"')?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_dashboard_renders_in_a_real_browser() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; scripts/test.sh does it)"
    );
    let site = site(Backend::Redis).await;
    let mut c = client(&site.cached);
    // Traffic first, so that every page's functions have hits.
    for round in 0..3 {
        for student in 1..=10 {
            for page in 0..5 {
                get(
                    &mut c,
                    &examples::web::load::page_path(page, student, 1 + student % 4, round == 1),
                )
                .await;
            }
        }
    }
    let traffic = background_traffic(&site.cached, Duration::from_secs(20));
    // The server samples its counters once a second for the chart: wait
    // (bounded) for three samples.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r: CacheReport = get(&mut c, "/api/cache").await.json().unwrap();
        if r.history.len() >= 3 {
            assert!(r.history.windows(2).all(|w| w[0].t < w[1].t && w[0].hits <= w[1].hits));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no history after 15 s: {:?}",
            r.history
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!("{}/cache", site.cached.url());

    // The DOM after the script has polled for a few (virtual) seconds.
    let (dom, stderr) = chromium(&[
        "--virtual-time-budget=6000".to_owned(),
        "--dump-dom".to_owned(),
        url.clone(),
    ])
    .await;
    assert!(
        dom.contains("<h1>Cache dashboard</h1>"),
        "no dashboard in the DOM:\n{dom}"
    );
    assert_eq!(
        element_text(&dom, "js-errors").map(str::trim),
        Some(""),
        "JavaScript errors on the page"
    );
    for line in stderr.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.contains("Uncaught") && !line.contains("Error"),
            "console error: {line}"
        );
    }
    let polls: u32 = element_attr(&dom, "polls", "data-polls")
        .and_then(|v| v.parse().ok())
        .expect("#polls");
    assert!(polls >= 2, "the dashboard polled /api/cache {polls} times");
    let points: u32 = element_attr(&dom, "chart", "data-points")
        .and_then(|v| v.parse().ok())
        .expect("#chart");
    assert!(points >= 2, "the chart drew {points} points");
    let total: f64 = element_attr(&dom, "hit-rate-total", "data-value")
        .and_then(|v| v.parse().ok())
        .expect("#hit-rate-total");
    assert!(total > 0.0 && total <= 1.0, "total hit rate {total}");
    // One hit-rate cell per cached function, the figure matching its value.
    let table = {
        let start = dom.find("<tbody id=\"functions\">").expect("the functions table");
        &dom[start..start + dom[start..].find("</tbody>").expect("</tbody>")]
    };
    let cells: Vec<(f64, &str)> = table
        .match_indices("hit-rate\" data-value=\"")
        .map(|(i, m)| {
            let v = &table[i + m.len()..];
            let value: f64 = v[..v.find('"').unwrap()].parse().unwrap();
            let text = &v[v.find('>').unwrap() + 1..v.find('<').unwrap()];
            (value, text)
        })
        .collect();
    let functions = site.lms.cache.stats().per_function.len();
    assert!(functions >= 10, "{functions} cached functions");
    assert_eq!(cells.len(), functions, "one hit-rate cell per cached function");
    for (value, text) in &cells {
        let shown: f64 = text
            .strip_suffix('%')
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("hit-rate figure {text:?}"));
        assert!((shown / 100.0 - value).abs() < 0.0006, "figure {text} vs value {value}");
    }
    let nonzero = cells.iter().filter(|(v, _)| *v > 0.0).count();
    assert!(nonzero * 2 > cells.len(), "most functions have hits: {cells:?}");
    assert!(
        dom.contains("<td>GET</td><td>hit</td>"),
        "latency rows rendered by the script"
    );
    assert!(dom.contains("<td>LOAD</td><td>ok</td>"));

    // A screenshot for people, in the target directory.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lms-web-cache-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[
        "--virtual-time-budget=4000".to_owned(),
        format!("--screenshot={}", shot.display()),
        url,
    ])
    .await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    traffic.abort();
}
