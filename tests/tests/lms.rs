//! The LMS example's services against real Redis (issue 6): every page equals
//! its uncached result; each mutation makes the affected pages fresh on the
//! next read and leaves the others cached (proved with per-function stats and
//! the database's query counter); warming fills the expected keys.
//!
//! Each test has its own small SQLite database and its own cache namespace on
//! the binary's private redis-server.

use cache_runtime::Stats;
use examples::lms::CacheKeys;
use examples::lms::model::*;
use examples::lms::{Db, Lms, Mode, SeedConfig, warm};
use tests::{Backend, cache_for};

async fn lms(backend: Backend) -> Lms {
    let (db, seeded) = Db::sqlite_temp(SeedConfig::small()).await.expect("seed the database");
    assert_eq!(seeded.students, SeedConfig::small().students);
    assert!(
        seeded.enrollments > seeded.students && seeded.payments > 0,
        "{seeded:?}"
    );
    Lms::new(db, cache_for(backend).await)
}

/// The five pages for one student and one teacher.
#[derive(Debug, PartialEq)]
struct Pages {
    teacher_courses: TeacherCoursesPage,
    admin: AdminDashboardPage,
    student_dashboard: StudentDashboardPage,
    teacher_dashboard: TeacherDashboardPage,
    student_courses: StudentCoursesPage,
}

async fn pages(lms: &Lms, student: i64, teacher: i64, mode: Mode) -> Pages {
    Pages {
        teacher_courses: lms.teacher_courses_page(teacher, mode).await.expect("teacher courses"),
        admin: lms.admin_dashboard_page(mode).await.expect("admin dashboard"),
        student_dashboard: lms
            .student_dashboard_page(student, mode)
            .await
            .expect("student dashboard"),
        teacher_dashboard: lms
            .teacher_dashboard_page(teacher, mode)
            .await
            .expect("teacher dashboard"),
        student_courses: lms.student_courses_page(student, mode).await.expect("student courses"),
    }
}

/// Page by page, so that a failure names the stale page.
fn assert_same(cached: &Pages, uncached: &Pages, context: &str) {
    assert_eq!(
        cached.teacher_courses, uncached.teacher_courses,
        "teacher courses, {context}"
    );
    assert_eq!(cached.admin, uncached.admin, "admin dashboard, {context}");
    assert_eq!(
        cached.student_dashboard, uncached.student_dashboard,
        "student dashboard, {context}"
    );
    assert_eq!(
        cached.teacher_dashboard, uncached.teacher_dashboard,
        "teacher dashboard, {context}"
    );
    assert_eq!(
        cached.student_courses, uncached.student_courses,
        "student courses, {context}"
    );
}

/// Loads (body runs) of one cached function, by `Type::method`.
fn loads(stats: &Stats, function: &str) -> u64 {
    stats
        .per_function
        .iter()
        .find(|(name, _)| name.ends_with(&format!("::{function}")))
        .map_or(0, |(_, f)| f.loads)
}

/// Loads per cached function between two snapshots, functions with none
/// left out.
fn loads_between(before: &Stats, after: &Stats) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = after
        .per_function
        .keys()
        .map(|name| {
            let short: Vec<&str> = name.rsplit("::").take(2).collect();
            let short = format!("{}::{}", short[1], short[0]);
            let delta = loads(after, &short) - loads(before, &short);
            (short, delta)
        })
        .filter(|(_, d)| *d > 0)
        .collect();
    out.sort();
    out
}

fn owned(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = pairs.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect();
    v.sort();
    v
}

async fn pages_equal_uncached(backend: Backend) {
    let lms = lms(backend).await;
    for (student, teacher) in [(1, 1), (2, 2), (17, 3), (60, 4)] {
        let uncached = pages(&lms, student, teacher, Mode::Uncached).await;
        let first = pages(&lms, student, teacher, Mode::Cached).await;
        assert_same(
            &first,
            &uncached,
            &format!("first read (misses), student {student}, teacher {teacher}"),
        );
        let q = lms.db.queries();
        let second = pages(&lms, student, teacher, Mode::Cached).await;
        assert_same(
            &second,
            &uncached,
            &format!("cache hits, student {student}, teacher {teacher}"),
        );
        assert_eq!(lms.db.queries(), q, "the second read is answered by the cache alone");
    }
    let s = lms.cache.stats();
    assert!(s.total.hits > 0 && s.total.backend_errors == 0, "{s:?}");
}

#[tokio::test]
async fn pages_equal_uncached_on_redis() {
    pages_equal_uncached(Backend::Redis).await;
}

#[tokio::test]
async fn pages_equal_uncached_in_memory() {
    pages_equal_uncached(Backend::Memory).await;
}

#[tokio::test]
async fn pages_equal_uncached_on_a_cluster() {
    pages_equal_uncached(Backend::Cluster).await;
}

/// A student's first enrolled course, its teacher, and another teacher.
async fn subjects(lms: &Lms, student: i64) -> (Course, i64) {
    let page = lms.student_courses_page(student, Mode::Uncached).await.unwrap();
    let course = page.enrollments[0].1.clone();
    let other_teacher = (1..=4).find(|&t| t != course.teacher_id).unwrap();
    (course, other_teacher)
}

async fn course_update_refreshes_the_course_and_the_catalog_only_on(backend: Backend) {
    let lms = lms(backend).await;
    let student = 1;
    let (course, other_teacher) = subjects(&lms, student).await;
    let teacher = course.teacher_id;
    // Everything cached.
    pages(&lms, student, teacher, Mode::Cached).await;
    pages(&lms, 2, other_teacher, Mode::Cached).await;

    let title = format!("{} (revised)", course.title);
    lms.update_course(course.id, &title, course.price_cents + 100)
        .await
        .unwrap();

    let before = lms.cache.stats();
    let after = pages(&lms, student, teacher, Mode::Cached).await;
    let others = pages(&lms, 2, other_teacher, Mode::Cached).await;
    let loaded = loads_between(&before, &lms.cache.stats());
    // Only the course's own entry and the catalog were dropped: every list and
    // dashboard that shows the course holds its id and stayed cached.
    assert_eq!(
        loaded,
        owned(&[
            ("CourseRepository::active_courses", 1),
            ("CourseRepository::course_details", 1)
        ])
    );
    assert_same(
        &after,
        &pages(&lms, student, teacher, Mode::Uncached).await,
        "after the update",
    );
    assert_same(
        &others,
        &pages(&lms, 2, other_teacher, Mode::Uncached).await,
        "other pages",
    );
    let shown = after
        .student_courses
        .enrollments
        .iter()
        .find(|(_, c)| c.id == course.id);
    assert_eq!(shown.map(|(_, c)| c.title.as_str()), Some(title.as_str()));
    let listed = after.teacher_courses.courses.iter().find(|(c, _)| c.id == course.id);
    assert_eq!(listed.map(|(c, _)| c.price_cents), Some(course.price_cents + 100));
    if course.status == "active" {
        let in_catalog = lms.courses.active_courses().await.unwrap();
        assert!(in_catalog.iter().any(|c| c.id == course.id && c.title == title));
    }
}

/// An active paid course the student is not enrolled in, taught by someone
/// other than `not_teacher`.
async fn course_to_enroll(lms: &Lms, student: i64, not_teacher: i64) -> CourseSummary {
    let page = lms.student_courses_page(student, Mode::Uncached).await.unwrap();
    let catalog = lms.courses.active_courses_uncached().await.unwrap();
    catalog
        .into_iter()
        .find(|c| {
            c.price_cents > 0
                && c.teacher_id != not_teacher
                && !page.enrollments.iter().any(|(e, _)| e.course_id == c.id)
        })
        .expect("a course to enroll in")
}

async fn enrollment_refreshes_student_course_and_analytics_caches_on(backend: Backend) {
    let lms = lms(backend).await;
    let (student, other_student) = (5, 6);
    let other_teacher = 1;
    let target = course_to_enroll(&lms, student, other_teacher).await;
    let teacher = target.teacher_id;
    let before_pages = pages(&lms, student, teacher, Mode::Cached).await;
    let before_others = pages(&lms, other_student, other_teacher, Mode::Cached).await;

    let created = lms.enroll_student(student, target.id).await.unwrap();
    let payment = created.payment.expect("a paid course gets a pending payment");
    assert_eq!(payment.amount_cents, target.price_cents);

    let after = pages(&lms, student, teacher, Mode::Cached).await;
    assert_same(
        &after,
        &pages(&lms, student, teacher, Mode::Uncached).await,
        "affected pages are fresh",
    );
    assert_eq!(
        after.student_dashboard.dashboard.enrolled,
        before_pages.student_dashboard.dashboard.enrolled + 1
    );
    assert_eq!(
        after.student_dashboard.dashboard.pending_payments,
        before_pages.student_dashboard.dashboard.pending_payments + 1
    );
    assert!(
        after
            .student_courses
            .enrollments
            .iter()
            .any(|(e, _)| e.course_id == target.id)
    );
    assert_eq!(
        after.teacher_dashboard.dashboard.enrollments,
        before_pages.teacher_dashboard.dashboard.enrollments + 1
    );
    let row = after
        .teacher_courses
        .courses
        .iter()
        .find(|(c, _)| c.id == target.id)
        .unwrap();
    let row_before = before_pages
        .teacher_courses
        .courses
        .iter()
        .find(|(c, _)| c.id == target.id)
        .unwrap();
    assert_eq!(row.1.enrollments, row_before.1.enrollments + 1);
    assert_eq!(after.admin.stats.enrollments, before_pages.admin.stats.enrollments + 1);
    assert_eq!(
        lms.courses.course_stats(target.id).await.unwrap(),
        lms.courses.course_stats_uncached(target.id).await.unwrap()
    );

    // Another student's and another teacher's pages: answered by the cache
    // alone (the admin dashboard, shared, was refreshed above).
    let q = lms.db.queries();
    let others = pages(&lms, other_student, other_teacher, Mode::Cached).await;
    assert_eq!(lms.db.queries(), q, "unaffected pages stay cached");
    assert_eq!(others.student_courses, before_others.student_courses);
    assert_eq!(others.teacher_courses, before_others.teacher_courses);
    // The profiles and course details of the affected people stayed cached too.
    let before = lms.cache.stats();
    lms.students.student_profile(student).await.unwrap();
    lms.teachers.teacher_profile(teacher).await.unwrap();
    lms.courses.course_details(target.id).await.unwrap();
    assert_eq!(loads_between(&before, &lms.cache.stats()), vec![]);

    // A refused enrollment (already enrolled) changes nothing and invalidates
    // nothing.
    assert!(lms.enroll_student(student, target.id).await.is_err());
    let q = lms.db.queries();
    assert_eq!(pages(&lms, student, teacher, Mode::Cached).await, after);
    assert_eq!(lms.db.queries(), q);
}

async fn completed_payment_refreshes_student_and_analytics_caches_on(backend: Backend) {
    let lms = lms(backend).await;
    let mut found = None;
    for s in 1..=60 {
        if let Some(p) = lms.enrollments.pending_payments(s).await.unwrap().first() {
            found = Some(*p);
            break;
        }
    }
    let payment = found.expect("the generated data has pending payments");
    let (student, teacher) = (payment.student_id, payment.teacher_id);
    let other_student = if student == 1 { 2 } else { 1 };
    let other_teacher = (1..=4).find(|&t| t != teacher).unwrap();
    let before_pages = pages(&lms, student, teacher, Mode::Cached).await;
    let stats_before = lms.courses.course_stats(payment.course_id).await.unwrap();
    pages(&lms, other_student, other_teacher, Mode::Cached).await;

    lms.complete_payment(&payment).await.unwrap();

    let after = pages(&lms, student, teacher, Mode::Cached).await;
    assert_same(
        &after,
        &pages(&lms, student, teacher, Mode::Uncached).await,
        "affected pages are fresh",
    );
    let (d0, d1) = (
        &before_pages.student_dashboard.dashboard,
        &after.student_dashboard.dashboard,
    );
    assert_eq!(d1.total_spent_cents, d0.total_spent_cents + payment.amount_cents);
    assert_eq!(d1.pending_payments, d0.pending_payments - 1);
    assert_eq!(
        after.admin.stats.revenue_cents,
        before_pages.admin.stats.revenue_cents + payment.amount_cents
    );
    assert_eq!(
        after.teacher_dashboard.dashboard.revenue_cents,
        before_pages.teacher_dashboard.dashboard.revenue_cents + payment.amount_cents
    );
    let stats_after = lms.courses.course_stats(payment.course_id).await.unwrap();
    assert_eq!(
        stats_after.revenue_cents,
        stats_before.revenue_cents + payment.amount_cents
    );
    assert_eq!(
        stats_after,
        lms.courses.course_stats_uncached(payment.course_id).await.unwrap()
    );
    let paid = after
        .student_courses
        .enrollments
        .iter()
        .find(|(e, _)| e.course_id == payment.course_id);
    assert_eq!(paid.and_then(|(e, _)| e.payment_status.as_deref()), Some("completed"));

    let q = lms.db.queries();
    pages(&lms, other_student, other_teacher, Mode::Cached).await;
    assert_eq!(lms.db.queries(), q, "unaffected pages stay cached");
    let before = lms.cache.stats();
    lms.courses.active_courses().await.unwrap();
    lms.courses.course_details(payment.course_id).await.unwrap();
    lms.students.student_profile(student).await.unwrap();
    assert_eq!(loads_between(&before, &lms.cache.stats()), vec![]);
}

async fn warming_fills_the_expected_keys_on(backend: Backend) {
    let lms = lms(backend).await;
    let (teachers, students, courses) = (
        [1, 2, 3, 4],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        (1..=24).collect::<Vec<i64>>(),
    );
    let mut seen = Vec::new();
    let report = warm::warm_dashboards(&lms, &teachers, &students, 4, |p| seen.push((p.done, p.total))).await;
    assert_eq!((report.succeeded, report.failed.len()), (2 + 4 + 10, 0));
    assert_eq!(seen.len(), 16);
    assert_eq!(seen.last(), Some(&(16, 16)), "progress reaches the total");
    let report = warm::warm_courses(&lms, &courses, &teachers, 4, |_| {}).await;
    assert_eq!((report.succeeded, report.failed.len()), (1 + 24 + 4, 0));

    let mut expected = vec![
        CacheKeys::admin_dashboard(),
        CacheKeys::platform_stats(),
        CacheKeys::active_courses(),
    ];
    expected.extend(teachers.iter().map(CacheKeys::teacher_dashboard));
    expected.extend(teachers.iter().map(CacheKeys::teacher_courses));
    expected.extend(students.iter().map(CacheKeys::student_dashboard));
    expected.extend(courses.iter().map(CacheKeys::course_details));
    for key in &expected {
        assert!(lms.cache.exists(key).await.unwrap(), "{key} was warmed");
    }
    for key in [CacheKeys::student_dashboard(11), CacheKeys::student_profile(1)] {
        assert!(
            !lms.cache.exists(&key).await.unwrap(),
            "{key} was not part of the warm-up"
        );
    }

    // Warmed entries answer the next reads without the database.
    let before = lms.cache.stats();
    for &s in &students {
        lms.students.student_dashboard(s).await.unwrap();
    }
    for &t in &teachers {
        lms.teachers.teacher_dashboard(t).await.unwrap();
        lms.courses.teacher_courses(t).await.unwrap();
    }
    lms.analytics.admin_dashboard().await.unwrap();
    assert_eq!(loads_between(&before, &lms.cache.stats()), vec![]);

    // A second run finds everything in place and loads nothing.
    let q = lms.db.queries();
    let report = warm::warm_courses(&lms, &courses, &teachers, 4, |_| {}).await;
    assert_eq!(report.succeeded, 29);
    assert_eq!(lms.db.queries(), q);
}

#[tokio::test]
async fn course_update_refreshes_the_course_and_the_catalog_only() {
    course_update_refreshes_the_course_and_the_catalog_only_on(Backend::Redis).await;
}

#[tokio::test]
async fn course_update_refreshes_the_course_and_the_catalog_only_on_a_cluster() {
    course_update_refreshes_the_course_and_the_catalog_only_on(Backend::Cluster).await;
}

#[tokio::test]
async fn enrollment_refreshes_student_course_and_analytics_caches() {
    enrollment_refreshes_student_course_and_analytics_caches_on(Backend::Redis).await;
}

#[tokio::test]
async fn enrollment_refreshes_student_course_and_analytics_caches_on_a_cluster() {
    enrollment_refreshes_student_course_and_analytics_caches_on(Backend::Cluster).await;
}

#[tokio::test]
async fn completed_payment_refreshes_student_and_analytics_caches() {
    completed_payment_refreshes_student_and_analytics_caches_on(Backend::Redis).await;
}

#[tokio::test]
async fn completed_payment_refreshes_student_and_analytics_caches_on_a_cluster() {
    completed_payment_refreshes_student_and_analytics_caches_on(Backend::Cluster).await;
}

#[tokio::test]
async fn warming_fills_the_expected_keys() {
    warming_fills_the_expected_keys_on(Backend::Redis).await;
}

#[tokio::test]
async fn warming_fills_the_expected_keys_on_a_cluster() {
    warming_fills_the_expected_keys_on(Backend::Cluster).await;
}
