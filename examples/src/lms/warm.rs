//! The original's `CacheWarmer.warmDashboards()` and `warmCourses()`, with
//! [`cache_runtime::Warmer`]: bounded concurrency, a progress callback, and a
//! report. Jobs are the cached methods themselves, so a warm run loads what is
//! missing and leaves fresh entries alone; each job is named by its key.

use cache_runtime::{WarmProgress, WarmReport, Warmer};

use super::CacheKeys;

use super::service::Lms;

/// Dashboards: the admin's (with the platform numbers), and those of these
/// teachers and students.
pub async fn warm_dashboards(
    lms: &Lms,
    teachers: &[i64],
    students: &[i64],
    concurrency: usize,
    on_progress: impl FnMut(&WarmProgress<'_>) + Send,
) -> WarmReport {
    let mut w = Warmer::new()
        .concurrency(concurrency)
        .job(CacheKeys::admin_dashboard(), lms.analytics.admin_dashboard())
        .job(CacheKeys::platform_stats(), lms.analytics.platform_stats());
    for &id in teachers {
        w = w.job(CacheKeys::teacher_dashboard(id), lms.teachers.teacher_dashboard(id));
    }
    for &id in students {
        w = w.job(CacheKeys::student_dashboard(id), lms.students.student_dashboard(id));
    }
    w.on_progress(on_progress).run().await
}

/// Courses: the catalog, these courses' details, and these teachers' course
/// lists.
pub async fn warm_courses(
    lms: &Lms,
    courses: &[i64],
    teachers: &[i64],
    concurrency: usize,
    on_progress: impl FnMut(&WarmProgress<'_>) + Send,
) -> WarmReport {
    let mut w = Warmer::new()
        .concurrency(concurrency)
        .job(CacheKeys::active_courses(), lms.courses.active_courses());
    for &id in courses {
        w = w.job(CacheKeys::course_details(id), lms.courses.course_details(id));
    }
    for &id in teachers {
        w = w.job(CacheKeys::teacher_courses(id), lms.courses.teacher_courses(id));
    }
    w.on_progress(on_progress).run().await
}
