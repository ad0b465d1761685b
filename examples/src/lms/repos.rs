//! The repositories: plain sqlx queries, made cache-aside by `#[cached]`, with
//! the original's key set ([`CacheKeys`](super::CacheKeys)) and TTL policy:
//!
//! | data | TTL | keys |
//! | --- | --- | --- |
//! | dashboards | `MEDIUM` (5 min) | `dashboard:student:{id}`, `dashboard:teacher:{id}`, `dashboard:admin` |
//! | courses | `LONG` (30 min) | `course:{id}`, `courses:active`, `teacher:courses:{id}` |
//! | profiles | `LONG` (30 min) | `student:profile:{id}`, `teacher:profile:{id}`, `student:enrollments:{id}` |
//! | analytics | `VERY_LONG` (1 h) | `stats:platform`, `course:stats:{id}` |
//!
//! Tags group what one event changes: `student:{id}` (a student's dashboard
//! and enrollments), `teacher:{id}` (a teacher's dashboard and course list),
//! `courses` (the catalog), `analytics` (platform-wide numbers). The
//! mutations (`update_course`, `enroll`, `complete_payment`) name what they
//! invalidate with `#[cached(invalidates = [...])]`.
//!
//! Parts of a dashboard that compare with everyone else (a teacher's revenue
//! rank, a student's percentile and recommendations) are not invalidated by
//! other people's events: they follow the TTL, the original's "time-based"
//! freshness.
//!
//! Every body starts with `self.db.count_query()`: the example and the tests
//! read that counter to see whether a page reached the database.

use std::time::Duration;

use cache_runtime::{Cache, Ttl, cached};

use super::db::{Db, TODAY};
use super::model::*;
use super::{LmsError, LmsResult};

/// The dashboards' freshness policy: the original's by default (`MEDIUM`,
/// early refresh with β = 1). The load driver shortens the TTL and turns
/// early refresh off to measure expiry storms (`lms-web --load
/// --dashboard-ttl 1 --early-refresh 1,0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    /// TTL of the three dashboards.
    pub dashboard_ttl: Duration,
    /// XFetch's β for the dashboards (0: no early refresh).
    pub early_refresh: f64,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            dashboard_ttl: Ttl::MEDIUM,
            early_refresh: 1.0,
        }
    }
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn monthly(rows: Vec<(String, i64)>) -> Vec<Monthly> {
    rows.into_iter()
        .map(|(month, value)| Monthly { month, value })
        .collect()
}

// ----------------------------------------------------------------- courses

/// Courses: details, the catalog, per-course and per-teacher numbers.
#[derive(Debug, Clone)]
pub struct CourseRepository {
    db: Db,
    cache: Cache,
}

/// What `update_course` changes. `teacher_id` is carried for the event.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseUpdate {
    pub id: i64,
    pub teacher_id: i64,
    pub title: String,
    pub price_cents: i64,
}

type CourseRow = (i64, i64, String, String, String, i64, String, String, String);

impl CourseRepository {
    /// Over this database and cache.
    pub fn new(db: Db, cache: Cache) -> Self {
        CourseRepository { db, cache }
    }

    /// `course:{id}`, 30 min.
    #[cached(key = "course:{id}", ttl = LONG, cache = self.cache)]
    pub async fn course_details(&self, id: i64) -> LmsResult<Option<Course>> {
        self.db.count_query();
        let row: Option<CourseRow> = sqlx::query_as(
            "SELECT id, teacher_id, title, description, category, price_cents, status, created_at, updated_at
             FROM lms_courses WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(
            |(id, teacher_id, title, description, category, price_cents, status, created_at, updated_at)| Course {
                id,
                teacher_id,
                title,
                description,
                category,
                price_cents,
                status,
                created_at,
                updated_at,
            },
        ))
    }

    /// `courses:active`, 30 min, tag `courses`: the catalog.
    #[cached(key = "courses:active", ttl = LONG, tags = ["courses"], cache = self.cache)]
    pub async fn active_courses(&self) -> LmsResult<Vec<CourseSummary>> {
        self.db.count_query();
        let rows: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, teacher_id, title, category, price_cents FROM lms_courses
             WHERE status = 'active' ORDER BY title, id",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, teacher_id, title, category, price_cents)| CourseSummary {
                id,
                teacher_id,
                title,
                category,
                price_cents,
            })
            .collect())
    }

    /// `course:stats:{id}`, 1 h (analytics). Dropped by key when the course
    /// gets an enrollment or a payment.
    #[cached(key = "course:stats:{id}", ttl = VERY_LONG, cache = self.cache)]
    pub async fn course_stats(&self, id: i64) -> LmsResult<CourseStats> {
        self.db.count_query();
        let (enrollments, completions, avg_progress): (i64, i64, f64) = sqlx::query_as(
            "SELECT COUNT(*),
                    CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(AVG(progress), 0) AS DOUBLE PRECISION)
             FROM lms_enrollments WHERE course_id = $1",
        )
        .bind(id)
        .fetch_one(self.db.pool())
        .await?;
        let (revenue_cents, pending_cents): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN amount_cents ELSE 0 END), 0) AS BIGINT)
             FROM lms_payments WHERE course_id = $1",
        )
        .bind(id)
        .fetch_one(self.db.pool())
        .await?;
        Ok(CourseStats {
            course_id: id,
            enrollments,
            completions,
            avg_progress,
            revenue_cents,
            pending_cents,
        })
    }

    /// `teacher:courses:{teacher_id}`, 30 min, tag `teacher:{teacher_id}`.
    #[cached(key = "teacher:courses:{teacher_id}", ttl = LONG, tags = ["teacher:{teacher_id}"], cache = self.cache)]
    pub async fn teacher_courses(&self, teacher_id: i64) -> LmsResult<Vec<TeacherCourse>> {
        self.db.count_query();
        let rows: Vec<(i64, i64, i64, f64, i64)> = sqlx::query_as(
            "SELECT c.id,
                    COUNT(e.id),
                    CAST(COALESCE(SUM(CASE WHEN e.status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(AVG(e.progress), 0) AS DOUBLE PRECISION),
                    CAST(COALESCE((SELECT SUM(p.amount_cents) FROM lms_payments p
                                   WHERE p.course_id = c.id AND p.status = 'completed'), 0) AS BIGINT)
             FROM lms_courses c LEFT JOIN lms_enrollments e ON e.course_id = c.id
             WHERE c.teacher_id = $1
             GROUP BY c.id ORDER BY c.id",
        )
        .bind(teacher_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(course_id, enrollments, completions, avg_progress, revenue_cents)| TeacherCourse {
                    course_id,
                    enrollments,
                    completions,
                    avg_progress,
                    revenue_cents,
                },
            )
            .collect())
    }

    /// Course updated → its details and the catalog. Lists that show the
    /// course hold its id only, so they stay cached.
    #[cached(invalidates = ["course:{update.id}", tag("courses")], cache = self.cache)]
    pub async fn update_course(&self, update: &CourseUpdate) -> LmsResult<()> {
        self.db.count_query();
        let done = sqlx::query("UPDATE lms_courses SET title = $1, price_cents = $2, updated_at = $3 WHERE id = $4")
            .bind(update.title.clone())
            .bind(update.price_cents)
            .bind(TODAY)
            .bind(update.id)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(LmsError::NotFound(format!("course {}", update.id)));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- students

/// Students: profile and dashboard.
#[derive(Debug, Clone)]
pub struct StudentRepository {
    db: Db,
    cache: Cache,
    freshness: Freshness,
}

impl StudentRepository {
    /// Over this database and cache.
    pub fn new(db: Db, cache: Cache) -> Self {
        Self::with_freshness(db, cache, Freshness::default())
    }

    /// With the dashboard's freshness policy given.
    pub fn with_freshness(db: Db, cache: Cache, freshness: Freshness) -> Self {
        StudentRepository { db, cache, freshness }
    }

    /// `student:profile:{id}`, 30 min.
    #[cached(key = "student:profile:{id}", ttl = LONG, cache = self.cache)]
    pub async fn student_profile(&self, id: i64) -> LmsResult<Option<StudentProfile>> {
        self.db.count_query();
        let row: Option<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, name, email, joined_at FROM lms_students WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.map(|(id, name, email, joined_at)| StudentProfile {
            id,
            name,
            email,
            joined_at,
        }))
    }

    /// `dashboard:student:{id}`, 5 min ([`Freshness`]), tag `student:{id}`.
    #[cached(
        key = "dashboard:student:{id}",
        ttl = { self.freshness.dashboard_ttl },
        early_refresh = self.freshness.early_refresh,
        tags = ["student:{id}"],
        cache = self.cache
    )]
    pub async fn student_dashboard(&self, id: i64) -> LmsResult<StudentDashboard> {
        self.db.count_query();
        let pool = self.db.pool();
        let (enrolled, completed, avg_progress): (i64, i64, f64) = sqlx::query_as(
            "SELECT COUNT(*),
                    CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(AVG(progress), 0) AS DOUBLE PRECISION)
             FROM lms_enrollments WHERE student_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        let (total_spent_cents, pending_payments, pending_cents): (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN amount_cents ELSE 0 END), 0) AS BIGINT)
             FROM lms_payments WHERE student_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        let continue_learning: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT course_id, progress FROM lms_enrollments
             WHERE student_id = $1 AND status <> 'completed'
             ORDER BY progress DESC, course_id LIMIT 5",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let recommended: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT other.course_id, COUNT(*) AS n
             FROM lms_enrollments mine
             JOIN lms_enrollments peer ON peer.course_id = mine.course_id AND peer.student_id <> mine.student_id
             JOIN lms_enrollments other ON other.student_id = peer.student_id
             JOIN lms_courses c ON c.id = other.course_id AND c.status = 'active'
             WHERE mine.student_id = $1
               AND other.course_id NOT IN (SELECT course_id FROM lms_enrollments WHERE student_id = $1)
             GROUP BY other.course_id ORDER BY n DESC, other.course_id LIMIT 5",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        // Students with fewer completed courses than this one: a scan of
        // every enrollment.
        let (as_many, students): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM (SELECT student_id FROM lms_enrollments WHERE status = 'completed'
                                           GROUP BY student_id HAVING COUNT(*) >= $1) t),
                    (SELECT COUNT(*) FROM lms_students)",
        )
        .bind(completed)
        .fetch_one(pool)
        .await?;
        let fewer = if completed == 0 { 0 } else { students - as_many };
        let spending: Vec<(String, i64)> = sqlx::query_as(
            "SELECT substr(created_at, 1, 7) AS m, CAST(SUM(amount_cents) AS BIGINT)
             FROM lms_payments WHERE student_id = $1 AND status = 'completed'
             GROUP BY substr(created_at, 1, 7) ORDER BY m",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(StudentDashboard {
            student_id: id,
            enrolled,
            completed,
            avg_progress,
            total_spent_cents,
            pending_payments,
            pending_cents,
            continue_learning,
            recommended: recommended.into_iter().map(|(c, _)| c).collect(),
            completion_percentile: rate(fewer, students),
            monthly_spending: monthly(spending),
        })
    }
}

// ---------------------------------------------------------------- teachers

/// Teachers: profile and dashboard.
#[derive(Debug, Clone)]
pub struct TeacherRepository {
    db: Db,
    cache: Cache,
    freshness: Freshness,
}

impl TeacherRepository {
    /// Over this database and cache.
    pub fn new(db: Db, cache: Cache) -> Self {
        Self::with_freshness(db, cache, Freshness::default())
    }

    /// With the dashboard's freshness policy given.
    pub fn with_freshness(db: Db, cache: Cache, freshness: Freshness) -> Self {
        TeacherRepository { db, cache, freshness }
    }

    /// `teacher:profile:{id}`, 30 min.
    #[cached(key = "teacher:profile:{id}", ttl = LONG, cache = self.cache)]
    pub async fn teacher_profile(&self, id: i64) -> LmsResult<Option<TeacherProfile>> {
        self.db.count_query();
        let row: Option<(i64, String, String, String, String)> =
            sqlx::query_as("SELECT id, name, email, bio, joined_at FROM lms_teachers WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.map(|(id, name, email, bio, joined_at)| TeacherProfile {
            id,
            name,
            email,
            bio,
            joined_at,
        }))
    }

    /// `dashboard:teacher:{id}`, 5 min ([`Freshness`]), tag `teacher:{id}`.
    #[cached(
        key = "dashboard:teacher:{id}",
        ttl = { self.freshness.dashboard_ttl },
        early_refresh = self.freshness.early_refresh,
        tags = ["teacher:{id}"],
        cache = self.cache
    )]
    pub async fn teacher_dashboard(&self, id: i64) -> LmsResult<TeacherDashboard> {
        self.db.count_query();
        let pool = self.db.pool();
        let (courses, active_courses): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM lms_courses WHERE teacher_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        let (enrollments, students, completions, avg_progress): (i64, i64, i64, f64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT e.student_id),
                    CAST(COALESCE(SUM(CASE WHEN e.status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(AVG(e.progress), 0) AS DOUBLE PRECISION)
             FROM lms_enrollments e JOIN lms_courses c ON c.id = e.course_id
             WHERE c.teacher_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        let (revenue_cents, pending_cents): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN p.status = 'completed' THEN p.amount_cents ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN p.status = 'pending' THEN p.amount_cents ELSE 0 END), 0) AS BIGINT)
             FROM lms_payments p JOIN lms_courses c ON c.id = p.course_id
             WHERE c.teacher_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        // Teachers earning more than this one: a scan of every payment.
        let (ahead,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM (
                SELECT c.teacher_id, SUM(p.amount_cents) AS revenue
                FROM lms_payments p JOIN lms_courses c ON c.id = p.course_id
                WHERE p.status = 'completed'
                GROUP BY c.teacher_id) t
             WHERE t.revenue > $1",
        )
        .bind(revenue_cents)
        .fetch_one(pool)
        .await?;
        let months: Vec<(String, i64)> = sqlx::query_as(
            "SELECT substr(e.enrolled_at, 1, 7) AS m, COUNT(*)
             FROM lms_enrollments e JOIN lms_courses c ON c.id = e.course_id
             WHERE c.teacher_id = $1
             GROUP BY substr(e.enrolled_at, 1, 7) ORDER BY m",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let top_courses: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT c.id, COUNT(e.id) AS n
             FROM lms_courses c JOIN lms_enrollments e ON e.course_id = c.id
             WHERE c.teacher_id = $1
             GROUP BY c.id ORDER BY n DESC, c.id LIMIT 5",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(TeacherDashboard {
            teacher_id: id,
            courses,
            active_courses,
            enrollments,
            students,
            completions,
            avg_progress,
            revenue_cents,
            pending_cents,
            revenue_rank: ahead + 1,
            monthly_enrollments: monthly(months),
            top_courses,
        })
    }
}

// ------------------------------------------------------------- enrollments

/// Enrollments and payments: a student's list, and the two mutations.
#[derive(Debug, Clone)]
pub struct EnrollmentRepository {
    db: Db,
    cache: Cache,
}

/// The course a student enrolls in, with what the event needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseRef {
    pub id: i64,
    pub teacher_id: i64,
    pub price_cents: i64,
}

/// A payment, with what the event needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRef {
    pub id: i64,
    pub student_id: i64,
    pub course_id: i64,
    pub teacher_id: i64,
    pub amount_cents: i64,
}

/// What `enroll` created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEnrollment {
    pub enrollment_id: i64,
    /// A pending payment, for a paid course.
    pub payment: Option<PaymentRef>,
}

impl EnrollmentRepository {
    /// Over this database and cache.
    pub fn new(db: Db, cache: Cache) -> Self {
        EnrollmentRepository { db, cache }
    }

    /// `student:enrollments:{student_id}`, 30 min, tag `student:{student_id}`.
    #[cached(key = "student:enrollments:{student_id}", ttl = LONG, tags = ["student:{student_id}"], cache = self.cache)]
    pub async fn student_enrollments(&self, student_id: i64) -> LmsResult<Vec<Enrollment>> {
        self.db.count_query();
        let rows: Vec<(i64, i64, String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT e.id, e.course_id, e.enrolled_at, e.progress, e.status, p.status
             FROM lms_enrollments e
             LEFT JOIN lms_payments p ON p.student_id = e.student_id AND p.course_id = e.course_id
             WHERE e.student_id = $1
             ORDER BY e.enrolled_at DESC, e.id DESC",
        )
        .bind(student_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, course_id, enrolled_at, progress, status, payment_status)| Enrollment {
                    id,
                    course_id,
                    enrolled_at,
                    progress,
                    status,
                    payment_status,
                },
            )
            .collect())
    }

    /// Student enrolls → the student's caches (dashboard, enrollments), the
    /// course's (stats, its teacher's course list and dashboard), and the
    /// platform numbers, which count enrollments.
    #[cached(
        invalidates = [
            tag("student:{student_id}"),
            "course:stats:{course.id}",
            tag("teacher:{course.teacher_id}"),
            tag("analytics"),
        ],
        cache = self.cache
    )]
    pub async fn enroll(&self, student_id: i64, course: &CourseRef) -> LmsResult<NewEnrollment> {
        self.db.count_query();
        let mut tx = self.db.pool().begin().await?;
        let (already,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM lms_enrollments WHERE student_id = $1 AND course_id = $2")
                .bind(student_id)
                .bind(course.id)
                .fetch_one(&mut *tx)
                .await?;
        if already > 0 {
            return Err(LmsError::Conflict(format!(
                "student {student_id} is already enrolled in course {}",
                course.id
            )));
        }
        let enrollment_id = self.db.next_id();
        sqlx::query(
            "INSERT INTO lms_enrollments (id, student_id, course_id, enrolled_at, progress, status)
             VALUES ($1, $2, $3, $4, 0, 'active')",
        )
        .bind(enrollment_id)
        .bind(student_id)
        .bind(course.id)
        .bind(TODAY)
        .execute(&mut *tx)
        .await?;
        let mut payment = None;
        if course.price_cents > 0 {
            let id = self.db.next_id();
            sqlx::query(
                "INSERT INTO lms_payments (id, student_id, course_id, amount_cents, status, created_at)
                 VALUES ($1, $2, $3, $4, 'pending', $5)",
            )
            .bind(id)
            .bind(student_id)
            .bind(course.id)
            .bind(course.price_cents)
            .bind(TODAY)
            .execute(&mut *tx)
            .await?;
            payment = Some(PaymentRef {
                id,
                student_id,
                course_id: course.id,
                teacher_id: course.teacher_id,
                amount_cents: course.price_cents,
            });
        }
        tx.commit().await?;
        Ok(NewEnrollment { enrollment_id, payment })
    }

    /// Payment completed → the student's caches and analytics (platform
    /// numbers, admin dashboard, the course's stats, its teacher's revenue).
    #[cached(
        invalidates = [
            tag("student:{payment.student_id}"),
            tag("analytics"),
            "course:stats:{payment.course_id}",
            tag("teacher:{payment.teacher_id}"),
        ],
        cache = self.cache
    )]
    pub async fn complete_payment(&self, payment: &PaymentRef) -> LmsResult<()> {
        self.db.count_query();
        let done = sqlx::query(
            "UPDATE lms_payments SET status = 'completed', created_at = $1 WHERE id = $2 AND status = 'pending'",
        )
        .bind(TODAY)
        .bind(payment.id)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(LmsError::NotFound(format!("pending payment {}", payment.id)));
        }
        Ok(())
    }

    /// A student's pending payments (not cached: read before a mutation).
    pub async fn pending_payments(&self, student_id: i64) -> LmsResult<Vec<PaymentRef>> {
        self.db.count_query();
        let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT p.id, p.student_id, p.course_id, c.teacher_id, p.amount_cents
             FROM lms_payments p JOIN lms_courses c ON c.id = p.course_id
             WHERE p.student_id = $1 AND p.status = 'pending' ORDER BY p.id",
        )
        .bind(student_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, student_id, course_id, teacher_id, amount_cents)| PaymentRef {
                id,
                student_id,
                course_id,
                teacher_id,
                amount_cents,
            })
            .collect())
    }
}

// --------------------------------------------------------------- analytics

/// Platform-wide numbers: the admin's view.
#[derive(Debug, Clone)]
pub struct AnalyticsRepository {
    db: Db,
    cache: Cache,
    freshness: Freshness,
}

impl AnalyticsRepository {
    /// Over this database and cache.
    pub fn new(db: Db, cache: Cache) -> Self {
        Self::with_freshness(db, cache, Freshness::default())
    }

    /// With the dashboard's freshness policy given.
    pub fn with_freshness(db: Db, cache: Cache, freshness: Freshness) -> Self {
        AnalyticsRepository { db, cache, freshness }
    }

    /// `stats:platform`, 1 h, tag `analytics`.
    #[cached(key = "stats:platform", ttl = VERY_LONG, tags = ["analytics"], cache = self.cache)]
    pub async fn platform_stats(&self) -> LmsResult<PlatformStats> {
        self.db.count_query();
        let pool = self.db.pool();
        let (students, teachers, courses, active_courses): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM lms_students), (SELECT COUNT(*) FROM lms_teachers),
                    (SELECT COUNT(*) FROM lms_courses),
                    (SELECT COUNT(*) FROM lms_courses WHERE status = 'active')",
        )
        .fetch_one(pool)
        .await?;
        let (enrollments, completions): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM lms_enrollments",
        )
        .fetch_one(pool)
        .await?;
        let (paying_students, revenue_cents, pending_cents): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(DISTINCT CASE WHEN status = 'completed' THEN student_id END),
                    CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN amount_cents ELSE 0 END), 0) AS BIGINT)
             FROM lms_payments",
        )
        .fetch_one(pool)
        .await?;
        Ok(PlatformStats {
            students,
            teachers,
            courses,
            active_courses,
            enrollments,
            completions,
            paying_students,
            revenue_cents,
            pending_cents,
        })
    }

    /// `dashboard:admin`, 5 min ([`Freshness`]), tag `analytics`.
    #[cached(
        key = "dashboard:admin",
        ttl = { self.freshness.dashboard_ttl },
        early_refresh = self.freshness.early_refresh,
        tags = ["analytics"],
        cache = self.cache
    )]
    pub async fn admin_dashboard(&self) -> LmsResult<AdminDashboard> {
        self.db.count_query();
        let pool = self.db.pool();
        let revenue: Vec<(String, i64)> = sqlx::query_as(
            "SELECT substr(created_at, 1, 7) AS m, CAST(SUM(amount_cents) AS BIGINT)
             FROM lms_payments WHERE status = 'completed'
             GROUP BY substr(created_at, 1, 7) ORDER BY m",
        )
        .fetch_all(pool)
        .await?;
        let enrollments: Vec<(String, i64)> = sqlx::query_as(
            "SELECT substr(enrolled_at, 1, 7) AS m, COUNT(*)
             FROM lms_enrollments GROUP BY substr(enrolled_at, 1, 7) ORDER BY m",
        )
        .fetch_all(pool)
        .await?;
        let top_courses: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT course_id, CAST(SUM(amount_cents) AS BIGINT) AS r
             FROM lms_payments WHERE status = 'completed'
             GROUP BY course_id ORDER BY r DESC, course_id LIMIT 10",
        )
        .fetch_all(pool)
        .await?;
        let top_teachers: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT c.teacher_id, CAST(SUM(p.amount_cents) AS BIGINT) AS r
             FROM lms_payments p JOIN lms_courses c ON c.id = p.course_id
             WHERE p.status = 'completed'
             GROUP BY c.teacher_id ORDER BY r DESC, c.teacher_id LIMIT 10",
        )
        .fetch_all(pool)
        .await?;
        let categories: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT c.category, COUNT(*),
                    CAST(COALESCE(SUM((SELECT COUNT(*) FROM lms_enrollments e WHERE e.course_id = c.id)), 0) AS BIGINT),
                    CAST(COALESCE(SUM((SELECT SUM(p.amount_cents) FROM lms_payments p
                                       WHERE p.course_id = c.id AND p.status = 'completed')), 0) AS BIGINT)
             FROM lms_courses c GROUP BY c.category ORDER BY c.category",
        )
        .fetch_all(pool)
        .await?;
        Ok(AdminDashboard {
            revenue_by_month: monthly(revenue),
            enrollments_by_month: monthly(enrollments),
            top_courses,
            top_teachers,
            categories: categories
                .into_iter()
                .map(|(category, courses, enrollments, revenue_cents)| CategoryStats {
                    category,
                    courses,
                    enrollments,
                    revenue_cents,
                })
                .collect(),
        })
    }
}
