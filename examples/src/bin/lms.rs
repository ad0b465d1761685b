//! The LMS example: the original's learning platform over a real SQL
//! database, cached with `#[cached]`.
//!
//! ```sh
//! cargo run --release -p examples --bin lms                                  # SQLite + in-process cache
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p examples --bin lms # SQLite + Redis
//! DATABASE_URL=postgres://user:pw@127.0.0.1/db cargo run …                   # Postgres (its lms_* tables are recreated)
//! CACHE_LOG=1 cargo run …                                                    # every cache operation, [Cache] GET …: HIT (0.21ms)
//! REDIS_URL=… NEAR_CACHE_MB=64 cargo run …                                   # Redis with a near cache: near hits beside Redis hits
//! ```
//!
//! It generates the data, then for each of the five pages times the uncached
//! page (straight to the database) against the cache hit, warms the
//! dashboards and courses, serves a burst of page views, runs the three
//! mutations showing each affected page before and after, and prints the
//! cache's stats.

use std::future::Future;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Stats};
use examples::lms::{Db, DbKind, Lms, LmsResult, Mode, SeedConfig, warm};

const UNCACHED_RUNS: usize = 7;
const HIT_RUNS: usize = 25;
const STUDENT: i64 = 42;
const OTHER_STUDENT: i64 = 43;
const TEACHER: i64 = 3;
const OTHER_TEACHER: i64 = 4;
const WARM_TEACHERS: i64 = 40;
const WARM_STUDENTS: i64 = 120;
const TRAFFIC_TEACHERS: i64 = 50;
const TRAFFIC_STUDENTS: i64 = 150;
const TRAFFIC_VIEWS: usize = 1_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    examples::cache_log::init();
    let started = Instant::now();

    // ------------------------------------------------------------ set-up
    let (db, seeded) = Db::from_env(SeedConfig::full()).await?;
    let db_name = match db.kind() {
        DbKind::Sqlite if std::env::var("DATABASE_URL").is_ok_and(|u| !u.trim().is_empty()) => "SQLite (DATABASE_URL)",
        DbKind::Sqlite => "SQLite (temporary file; set DATABASE_URL=postgres://… for Postgres)",
        DbKind::Postgres => "Postgres (DATABASE_URL)",
    };
    let near_mb = near_cache_mb()?;
    let cache = cache_from_env(near_mb).await?;
    // With a near cache, a second handle without one times Redis hits.
    let redis_only = match near_mb {
        Some(_) if cache.backend().is_redis() => Some(cache_from_env(None).await?),
        _ => None,
    };
    let cache_name = match (cache.backend().is_redis(), near_mb) {
        (true, Some(mb)) => format!("Redis (REDIS_URL) with a {mb} MiB near cache (NEAR_CACHE_MB)"),
        (true, None) => "Redis (REDIS_URL; NEAR_CACHE_MB=64 adds a near cache)".to_owned(),
        (false, _) => "in-process (set REDIS_URL=redis://… for Redis)".to_owned(),
    };
    println!("LMS example: the original's five pages, cached with #[cached]");
    println!("  database: {db_name}");
    println!("  cache:    {cache_name}, namespace `{}`", cache.namespace());
    println!(
        "  data:     {} teachers, {} students, {} courses, {} enrollments, {} payments (generated in {:.2?})",
        seeded.teachers, seeded.students, seeded.courses, seeded.enrollments, seeded.payments, seeded.elapsed
    );
    cache.invalidator().all().await?; // a clean namespace: the first reads are misses
    if redis_only.is_some() {
        let until = Instant::now() + Duration::from_secs(5);
        while !cache.near_cache_live() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let lms_redis = redis_only.map(|c| Lms::new(db.clone(), c));
    let lms = Lms::new(db, cache.clone());

    // --------------------------------------------------------- the pages
    println!();
    println!(
        "Pages: median of {UNCACHED_RUNS} uncached runs (database only) vs median of {HIT_RUNS} cache hits, same process"
    );
    println!(
        "  {:<34} {:>12} {:>13} {:>12} {:>9}  same data",
        "page", "uncached", "first (miss)", "cache hit", "speed-up"
    );
    let mut rows = Vec::new();
    rows.push(
        bench(&format!("teacher courses (teacher {TEACHER})"), |m| {
            lms.teacher_courses_page(TEACHER, m)
        })
        .await?,
    );
    rows.push(bench("admin dashboard", |m| lms.admin_dashboard_page(m)).await?);
    rows.push(
        bench(&format!("student dashboard (student {STUDENT})"), |m| {
            lms.student_dashboard_page(STUDENT, m)
        })
        .await?,
    );
    rows.push(
        bench(&format!("teacher dashboard (teacher {TEACHER})"), |m| {
            lms.teacher_dashboard_page(TEACHER, m)
        })
        .await?,
    );
    rows.push(
        bench(&format!("student courses (student {STUDENT})"), |m| {
            lms.student_courses_page(STUDENT, m)
        })
        .await?,
    );
    let n = rows.len() as f64;
    let avg = |f: fn(&Row) -> Duration| rows.iter().map(f).sum::<Duration>().as_secs_f64() / n;
    let (u, h) = (avg(|r| r.uncached), avg(|r| r.hit));
    println!(
        "  {:<34} {:>12} {:>13} {:>12} {:>8.0}x",
        "average",
        ms(Duration::from_secs_f64(u)),
        ms(Duration::from_secs_f64(avg(|r| r.first))),
        ms(Duration::from_secs_f64(h)),
        u / h
    );
    print_stats("after the page runs", &cache.stats());
    if let Some(lms_redis) = &lms_redis {
        near_vs_redis(&lms, lms_redis).await?;
    }

    // ----------------------------------------------------------- warming
    println!();
    let teachers: Vec<i64> = (1..=WARM_TEACHERS).collect();
    let students: Vec<i64> = (1..=WARM_STUDENTS).collect();
    let courses: Vec<i64> = (1..=seeded.courses as i64).collect();
    let q0 = lms.db.queries();
    let report = warm::warm_dashboards(&lms, &teachers, &students, 8, progress("warming dashboards")).await;
    println!(
        "warm dashboards: {} jobs ok, {} failed, {:.2?}",
        report.succeeded,
        report.failed.len(),
        report.elapsed
    );
    let all_teachers: Vec<i64> = (1..=seeded.teachers as i64).collect();
    let report = warm::warm_courses(&lms, &courses, &all_teachers, 8, progress("warming courses")).await;
    println!(
        "warm courses:    {} jobs ok, {} failed, {:.2?} ({} database queries for both)",
        report.succeeded,
        report.failed.len(),
        report.elapsed,
        lms.db.queries() - q0
    );

    // ----------------------------------------------------------- traffic
    let before = cache.stats();
    let q0 = lms.db.queries();
    let t = Instant::now();
    traffic(&lms, TRAFFIC_TEACHERS, TRAFFIC_STUDENTS, TRAFFIC_VIEWS).await?;
    let spent = t.elapsed();
    let after = cache.stats();
    let (hits, misses) = (
        after.total.hits - before.total.hits,
        after.total.misses - before.total.misses,
    );
    println!(
        "traffic: {TRAFFIC_VIEWS} page views over the 5 pages, students 1..={TRAFFIC_STUDENTS}, teachers 1..={TRAFFIC_TEACHERS}, \
         in {spent:.2?}: {hits} hits, {misses} misses, hit rate {:.1}%, {} database queries",
        pct(hits, hits + misses),
        lms.db.queries() - q0
    );

    // --------------------------------------------------------- mutations
    println!();
    println!("Mutations: the next read after each one is fresh (event-based invalidation)");
    mutations(&lms).await?;

    // ------------------------------------------------------------- stats
    println!();
    print_stats("final", &cache.stats());
    print_per_function(&cache.stats());
    println!("\ndone in {:.2?}", started.elapsed());
    Ok(())
}

/// `REDIS_URL` → Redis, else in-process; namespace `CACHE_NAMESPACE` or
/// `lms-example`; a near cache of `near_mb` MiB in front of Redis.
async fn cache_from_env(near_mb: Option<u64>) -> Result<Cache, cache_runtime::CacheError> {
    let ns = std::env::var("CACHE_NAMESPACE").unwrap_or_else(|_| "lms-example".to_owned());
    let b = Cache::builder().namespace(ns.trim()).env_overrides();
    match near_mb {
        Some(mb) => b.near_cache(mb << 20).build().await,
        None => b.build().await,
    }
}

/// `NEAR_CACHE_MB`, when set.
fn near_cache_mb() -> Result<Option<u64>, BoxError> {
    match std::env::var("NEAR_CACHE_MB") {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse().map_err(|_| {
                format!("NEAR_CACHE_MB must be a number of MiB, got {v:?}")
            })?))
        }
        _ => Ok(None),
    }
}

/// With a near cache: each page's hit from the near tier beside the same
/// hit from Redis (a handle without a near cache), medians of `HIT_RUNS`.
async fn near_vs_redis(near: &Lms, redis: &Lms) -> LmsResult<()> {
    async fn median_of<T, Fut: Future<Output = LmsResult<T>>>(f: impl Fn() -> Fut) -> LmsResult<Duration> {
        f().await?; // make sure it is cached (and near-cached)
        f().await?;
        let mut times = Vec::with_capacity(HIT_RUNS);
        for _ in 0..HIT_RUNS {
            let t = Instant::now();
            f().await?;
            times.push(t.elapsed());
        }
        Ok(median(&mut times))
    }
    println!();
    println!("Near cache: median of {HIT_RUNS} page hits from the near tier vs from Redis, same process");
    println!(
        "  {:<34} {:>12} {:>12} {:>9}",
        "page", "Redis hit", "near hit", "speed-up"
    );
    let c = Mode::Cached;
    let pages: [(&str, Duration, Duration); 5] = [
        (
            "teacher courses",
            median_of(|| redis.teacher_courses_page(TEACHER, c)).await?,
            median_of(|| near.teacher_courses_page(TEACHER, c)).await?,
        ),
        (
            "admin dashboard",
            median_of(|| redis.admin_dashboard_page(c)).await?,
            median_of(|| near.admin_dashboard_page(c)).await?,
        ),
        (
            "student dashboard",
            median_of(|| redis.student_dashboard_page(STUDENT, c)).await?,
            median_of(|| near.student_dashboard_page(STUDENT, c)).await?,
        ),
        (
            "teacher dashboard",
            median_of(|| redis.teacher_dashboard_page(TEACHER, c)).await?,
            median_of(|| near.teacher_dashboard_page(TEACHER, c)).await?,
        ),
        (
            "student courses",
            median_of(|| redis.student_courses_page(STUDENT, c)).await?,
            median_of(|| near.student_courses_page(STUDENT, c)).await?,
        ),
    ];
    for (name, r, n) in pages {
        println!(
            "  {:<34} {:>12} {:>12} {:>8.0}x",
            name,
            ms(r),
            ms(n),
            r.as_secs_f64() / n.as_secs_f64()
        );
    }
    let s = near.cache.stats().total;
    println!("  near hits so far: {} of {} hits", s.near_hits, s.hits);
    Ok(())
}

struct Row {
    uncached: Duration,
    first: Duration,
    hit: Duration,
}

/// Times one page: uncached runs, the first cached call (a miss), cache
/// hits; checks that the cached page equals the uncached one.
async fn bench<'a, T, F, Fut>(name: &str, page: F) -> LmsResult<Row>
where
    T: PartialEq,
    F: Fn(Mode) -> Fut + 'a,
    Fut: Future<Output = LmsResult<T>> + 'a,
{
    let mut uncached = Vec::new();
    let mut reference = None;
    for _ in 0..UNCACHED_RUNS {
        let t = Instant::now();
        let v = page(Mode::Uncached).await?;
        uncached.push(t.elapsed());
        reference = Some(v);
    }
    let t = Instant::now();
    let first_value = page(Mode::Cached).await?;
    let first = t.elapsed();
    let mut hits = Vec::new();
    let mut same = Some(&first_value) == reference.as_ref();
    for _ in 0..HIT_RUNS {
        let t = Instant::now();
        let v = page(Mode::Cached).await?;
        hits.push(t.elapsed());
        same &= Some(&v) == reference.as_ref();
    }
    let row = Row {
        uncached: median(&mut uncached),
        first,
        hit: median(&mut hits),
    };
    println!(
        "  {:<34} {:>12} {:>13} {:>12} {:>8.0}x  {}",
        name,
        ms(row.uncached),
        ms(row.first),
        ms(row.hit),
        row.uncached.as_secs_f64() / row.hit.as_secs_f64(),
        if same { "yes" } else { "NO" }
    );
    if !same {
        return Err(examples::lms::LmsError::Conflict(format!(
            "{name}: the cached page differs from the uncached one"
        )));
    }
    Ok(row)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Warm-up progress on stderr: one line redrawn in place on a terminal, a
/// line per quarter otherwise.
fn progress(label: &'static str) -> impl FnMut(&cache_runtime::WarmProgress<'_>) + Send {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut quarter = 0;
    move |p| {
        if tty {
            if p.done == p.total || p.done % 25 == 0 {
                eprint!("\r  {label}: {}/{} ({})\x1b[K", p.done, p.total, p.name);
            }
            if p.done == p.total {
                eprintln!();
            }
        } else if p.done * 4 >= p.total * (quarter + 1) {
            quarter += 1;
            eprintln!("  {label}: {}/{} ({})", p.done, p.total, p.name);
        }
    }
}

/// Page views spread over the five pages, these students and teachers (the
/// first of them were warmed), the admin. Eight at a time.
async fn traffic(lms: &Lms, teachers: i64, students: i64, views: usize) -> LmsResult<()> {
    use futures::StreamExt;
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let plan: Vec<(u64, i64, i64)> = (0..views)
        .map(|_| {
            (
                next() % 5,
                1 + (next() % students as u64) as i64,
                1 + (next() % teachers as u64) as i64,
            )
        })
        .collect();
    let results: Vec<LmsResult<()>> = futures::stream::iter(plan)
        .map(|(page, student, teacher)| async move {
            match page {
                0 => lms.teacher_courses_page(teacher, Mode::Cached).await.map(drop),
                1 => lms.admin_dashboard_page(Mode::Cached).await.map(drop),
                2 => lms.student_dashboard_page(student, Mode::Cached).await.map(drop),
                3 => lms.teacher_dashboard_page(teacher, Mode::Cached).await.map(drop),
                _ => lms.student_courses_page(student, Mode::Cached).await.map(drop),
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Database queries a future ran.
async fn queries<T>(lms: &Lms, f: impl Future<Output = LmsResult<T>>) -> LmsResult<(T, u64)> {
    let q0 = lms.db.queries();
    let v = f.await?;
    Ok((v, lms.db.queries() - q0))
}

fn check(fresh: bool) -> &'static str {
    if fresh { "fresh, equals the database" } else { "STALE" }
}

async fn still_cached<T>(lms: &Lms, label: &str, f: impl Future<Output = LmsResult<T>>) -> LmsResult<()> {
    let (_, q) = queries(lms, f).await?;
    println!("    unaffected, still cached: {label} ({q} database queries)");
    Ok(())
}

async fn mutations(lms: &Lms) -> LmsResult<()> {
    // Everything read below is cached first.
    let page = lms.student_courses_page(STUDENT, Mode::Cached).await?;
    lms.teacher_courses_page(TEACHER, Mode::Cached).await?;
    lms.student_dashboard_page(OTHER_STUDENT, Mode::Cached).await?;
    lms.teacher_dashboard_page(OTHER_TEACHER, Mode::Cached).await?;

    // 1. Course updated → course caches.
    let course = page.enrollments[0].1.clone();
    let new_title = format!("{} (2nd edition)", course.title);
    println!(
        "1. update course {}: title {:?} → {:?}, price {} → {}",
        course.id,
        course.title,
        new_title,
        course.price_cents,
        course.price_cents + 1000
    );
    lms.update_course(course.id, &new_title, course.price_cents + 1000)
        .await?;
    let (after, q) = queries(lms, lms.student_courses_page(STUDENT, Mode::Cached)).await?;
    let shown = after
        .enrollments
        .iter()
        .find(|(_, c)| c.id == course.id)
        .map(|(_, c)| c);
    println!(
        "    student courses page (student {STUDENT}): before {:?}, after {:?} ({q} queries: the course and the catalog reloaded), {}",
        course.title,
        shown.map(|c| c.title.as_str()).unwrap_or("?"),
        check(after == lms.student_courses_page(STUDENT, Mode::Uncached).await?)
    );
    let (after, q) = queries(lms, lms.course(course.id, Mode::Cached)).await?;
    println!(
        "    course {} details: price {} → {} ({q} queries), {}",
        course.id,
        course.price_cents,
        after.price_cents,
        check(after == lms.course(course.id, Mode::Uncached).await?)
    );
    still_cached(
        lms,
        &format!("student dashboard of student {OTHER_STUDENT}"),
        lms.student_dashboard_page(OTHER_STUDENT, Mode::Cached),
    )
    .await?;

    // 2. Student enrolls → student + course caches (and the platform numbers).
    let target = page
        .browse
        .iter()
        .find(|c| c.price_cents > 0 && c.teacher_id != OTHER_TEACHER)
        .or(page.browse.first())
        .cloned()
        .ok_or_else(|| examples::lms::LmsError::NotFound("a course to enroll in".into()))?;
    let dash_before = lms.student_dashboard_page(STUDENT, Mode::Cached).await?;
    let teacher_before = lms.teacher_dashboard_page(target.teacher_id, Mode::Cached).await?;
    let stats_before = lms.admin_dashboard_page(Mode::Cached).await?;
    println!(
        "2. student {STUDENT} enrolls in course {} {:?} (teacher {}, price {})",
        target.id, target.title, target.teacher_id, target.price_cents
    );
    let enrollment = lms.enroll_student(STUDENT, target.id).await?;
    let dash_after = lms.student_dashboard_page(STUDENT, Mode::Cached).await?;
    println!(
        "    student dashboard: enrolled {} → {}, pending payments {} → {}, {}",
        dash_before.dashboard.enrolled,
        dash_after.dashboard.enrolled,
        dash_before.dashboard.pending_payments,
        dash_after.dashboard.pending_payments,
        check(dash_after == lms.student_dashboard_page(STUDENT, Mode::Uncached).await?)
    );
    let teacher_after = lms.teacher_dashboard_page(target.teacher_id, Mode::Cached).await?;
    println!(
        "    teacher {} dashboard: enrollments {} → {}, {}",
        target.teacher_id,
        teacher_before.dashboard.enrollments,
        teacher_after.dashboard.enrollments,
        check(teacher_after == lms.teacher_dashboard_page(target.teacher_id, Mode::Uncached).await?)
    );
    let stats_after = lms.admin_dashboard_page(Mode::Cached).await?;
    println!(
        "    admin dashboard: enrollments {} → {}, {}",
        stats_before.stats.enrollments,
        stats_after.stats.enrollments,
        check(stats_after == lms.admin_dashboard_page(Mode::Uncached).await?)
    );
    still_cached(
        lms,
        &format!("student dashboard of student {OTHER_STUDENT}"),
        lms.student_dashboard_page(OTHER_STUDENT, Mode::Cached),
    )
    .await?;
    still_cached(
        lms,
        &format!("teacher dashboard of teacher {OTHER_TEACHER}"),
        lms.teacher_dashboard_page(OTHER_TEACHER, Mode::Cached),
    )
    .await?;

    // 3. Payment completed → student + analytics caches.
    let payment = match enrollment.payment {
        Some(p) => p,
        None => match lms.enrollments.pending_payments(STUDENT).await?.first() {
            Some(p) => *p,
            None => {
                println!("3. (no pending payment to complete)");
                return Ok(());
            }
        },
    };
    let dash_before = lms.student_dashboard_page(STUDENT, Mode::Cached).await?;
    let stats_before = lms.admin_dashboard_page(Mode::Cached).await?;
    println!(
        "3. payment {} completed ({} cents, student {}, course {})",
        payment.id, payment.amount_cents, payment.student_id, payment.course_id
    );
    lms.complete_payment(&payment).await?;
    let dash_after = lms.student_dashboard_page(STUDENT, Mode::Cached).await?;
    println!(
        "    student dashboard: total spent {} → {}, pending payments {} → {}, {}",
        dash_before.dashboard.total_spent_cents,
        dash_after.dashboard.total_spent_cents,
        dash_before.dashboard.pending_payments,
        dash_after.dashboard.pending_payments,
        check(dash_after == lms.student_dashboard_page(STUDENT, Mode::Uncached).await?)
    );
    let stats_after = lms.admin_dashboard_page(Mode::Cached).await?;
    println!(
        "    admin dashboard: revenue {} → {}, {}",
        stats_before.stats.revenue_cents,
        stats_after.stats.revenue_cents,
        check(stats_after == lms.admin_dashboard_page(Mode::Uncached).await?)
    );
    still_cached(
        lms,
        &format!("student courses page of student {OTHER_STUDENT}"),
        lms.student_courses_page(OTHER_STUDENT, Mode::Cached),
    )
    .await?;
    Ok(())
}

fn print_stats(label: &str, s: &Stats) {
    println!(
        "cache stats ({label}): {} hits, {} misses, {} loads, {} coalesced waits, {} backend errors, hit rate {:.1}%",
        s.total.hits,
        s.total.misses,
        s.total.loads,
        s.total.coalesced_waits,
        s.total.backend_errors,
        s.hit_rate() * 100.0
    );
}

fn print_per_function(s: &Stats) {
    println!(
        "  {:<42} {:>8} {:>8} {:>8} {:>9}",
        "cached function", "hits", "misses", "loads", "hit rate"
    );
    for (name, f) in &s.per_function {
        // `examples::lms::repos::CourseRepository::course_details` → the last two parts.
        let short: Vec<&str> = name.rsplit("::").take(2).collect();
        let short = format!("{}::{}", short.get(1).unwrap_or(&""), short[0]);
        println!(
            "  {:<42} {:>8} {:>8} {:>8} {:>8.1}%",
            short,
            f.hits,
            f.misses,
            f.loads,
            f.hit_rate() * 100.0
        );
    }
}
