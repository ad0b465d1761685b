//! The service layer: the original's five pages, aggregated from the cached
//! repositories, and the three mutations.
//!
//! Every page takes a [`Mode`]: `Cached` goes through the repositories'
//! `#[cached]` methods; `Uncached` calls the `_uncached` companions that the
//! macro generates (the raw bodies), which is what the app did before the
//! cache and what the example and the tests compare against.

use cache_runtime::Cache;
use futures::future::try_join_all;

use super::db::Db;
use super::model::*;
use super::repos::*;
use super::{LmsError, LmsResult};

/// Through the cache, or straight to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `#[cached]` methods.
    Cached,
    /// Their `_uncached` companions.
    Uncached,
}

/// `via!(mode, repo.method(args))`: the cached method, or its `_uncached`
/// companion.
macro_rules! via {
    ($mode:expr, $repo:expr, $cached:ident / $uncached:ident ( $($arg:expr),* )) => {
        match $mode {
            Mode::Cached => $repo.$cached($($arg),*).await,
            Mode::Uncached => $repo.$uncached($($arg),*).await,
        }
    };
}

/// The application: one database, one cache, five repositories.
#[derive(Debug, Clone)]
pub struct Lms {
    pub db: Db,
    pub cache: Cache,
    pub courses: CourseRepository,
    pub students: StudentRepository,
    pub teachers: TeacherRepository,
    pub enrollments: EnrollmentRepository,
    pub analytics: AnalyticsRepository,
}

impl Lms {
    /// Wires the repositories to `db` and `cache`.
    pub fn new(db: Db, cache: Cache) -> Self {
        Self::with_freshness(db, cache, Freshness::default())
    }

    /// Like [`new`](Self::new), with the dashboards' TTL and early refresh
    /// given (load experiments).
    pub fn with_freshness(db: Db, cache: Cache, freshness: Freshness) -> Self {
        Lms {
            courses: CourseRepository::new(db.clone(), cache.clone()),
            students: StudentRepository::with_freshness(db.clone(), cache.clone(), freshness),
            teachers: TeacherRepository::with_freshness(db.clone(), cache.clone(), freshness),
            enrollments: EnrollmentRepository::new(db.clone(), cache.clone()),
            analytics: AnalyticsRepository::with_freshness(db.clone(), cache.clone(), freshness),
            db,
            cache,
        }
    }

    /// A course by id (an error if it does not exist).
    pub async fn course(&self, id: i64, mode: Mode) -> LmsResult<Course> {
        via!(mode, self.courses, course_details / course_details_uncached(id))?
            .ok_or_else(|| LmsError::NotFound(format!("course {id}")))
    }

    /// Several courses, looked up concurrently.
    pub async fn courses(&self, ids: impl IntoIterator<Item = i64>, mode: Mode) -> LmsResult<Vec<Course>> {
        try_join_all(ids.into_iter().map(|id| self.course(id, mode))).await
    }

    async fn student(&self, id: i64, mode: Mode) -> LmsResult<StudentProfile> {
        via!(mode, self.students, student_profile / student_profile_uncached(id))?
            .ok_or_else(|| LmsError::NotFound(format!("student {id}")))
    }

    async fn teacher(&self, id: i64, mode: Mode) -> LmsResult<TeacherProfile> {
        via!(mode, self.teachers, teacher_profile / teacher_profile_uncached(id))?
            .ok_or_else(|| LmsError::NotFound(format!("teacher {id}")))
    }

    // ---------------------------------------------------------------- pages

    /// Page 1: a teacher's courses, each with its numbers.
    pub async fn teacher_courses_page(&self, teacher_id: i64, mode: Mode) -> LmsResult<TeacherCoursesPage> {
        let (teacher, rows) = tokio::try_join!(self.teacher(teacher_id, mode), async {
            via!(
                mode,
                self.courses,
                teacher_courses / teacher_courses_uncached(teacher_id)
            )
        },)?;
        let courses = self.courses(rows.iter().map(|r| r.course_id), mode).await?;
        Ok(TeacherCoursesPage {
            teacher,
            courses: courses.into_iter().zip(rows).collect(),
        })
    }

    /// Page 2: the admin dashboard.
    pub async fn admin_dashboard_page(&self, mode: Mode) -> LmsResult<AdminDashboardPage> {
        let (stats, dashboard) = tokio::try_join!(
            async { via!(mode, self.analytics, platform_stats / platform_stats_uncached()) },
            async { via!(mode, self.analytics, admin_dashboard / admin_dashboard_uncached()) },
        )?;
        let top_courses = self.courses(dashboard.top_courses.iter().map(|c| c.0), mode).await?;
        Ok(AdminDashboardPage {
            stats,
            dashboard,
            top_courses,
        })
    }

    /// Page 3: a student's dashboard.
    pub async fn student_dashboard_page(&self, student_id: i64, mode: Mode) -> LmsResult<StudentDashboardPage> {
        let (student, dashboard) = tokio::try_join!(self.student(student_id, mode), async {
            via!(
                mode,
                self.students,
                student_dashboard / student_dashboard_uncached(student_id)
            )
        },)?;
        let (continue_learning, recommended) = tokio::try_join!(
            self.courses(dashboard.continue_learning.iter().map(|c| c.0), mode),
            self.courses(dashboard.recommended.iter().copied(), mode),
        )?;
        Ok(StudentDashboardPage {
            student,
            dashboard,
            continue_learning,
            recommended,
        })
    }

    /// Page 4: a teacher's dashboard.
    pub async fn teacher_dashboard_page(&self, teacher_id: i64, mode: Mode) -> LmsResult<TeacherDashboardPage> {
        let (teacher, dashboard) = tokio::try_join!(self.teacher(teacher_id, mode), async {
            via!(
                mode,
                self.teachers,
                teacher_dashboard / teacher_dashboard_uncached(teacher_id)
            )
        },)?;
        let top_courses = try_join_all(dashboard.top_courses.iter().map(|&(id, _)| async move {
            tokio::try_join!(self.course(id, mode), async {
                via!(mode, self.courses, course_stats / course_stats_uncached(id))
            })
        }))
        .await?;
        Ok(TeacherDashboardPage {
            teacher,
            dashboard,
            top_courses,
        })
    }

    /// Page 5: a student's courses, and active courses to browse.
    pub async fn student_courses_page(&self, student_id: i64, mode: Mode) -> LmsResult<StudentCoursesPage> {
        let (student, enrollments, catalog) = tokio::try_join!(
            self.student(student_id, mode),
            async {
                via!(
                    mode,
                    self.enrollments,
                    student_enrollments / student_enrollments_uncached(student_id)
                )
            },
            async { via!(mode, self.courses, active_courses / active_courses_uncached()) },
        )?;
        let courses = self.courses(enrollments.iter().map(|e| e.course_id), mode).await?;
        let browse = catalog
            .iter()
            .filter(|c| !enrollments.iter().any(|e| e.course_id == c.id))
            .take(12)
            .cloned()
            .collect();
        Ok(StudentCoursesPage {
            student,
            enrollments: enrollments.into_iter().zip(courses).collect(),
            catalog_total: catalog.len(),
            browse,
        })
    }

    // ------------------------------------------------------------ mutations

    /// Renames a course and sets its price. Reads the course from the
    /// database (never from the cache) before writing.
    pub async fn update_course(&self, course_id: i64, title: &str, price_cents: i64) -> LmsResult<()> {
        let current = self.course(course_id, Mode::Uncached).await?;
        self.courses
            .update_course(&CourseUpdate {
                id: course_id,
                teacher_id: current.teacher_id,
                title: title.to_owned(),
                price_cents,
            })
            .await
    }

    /// Enrolls a student in a course; a paid course gets a pending payment.
    pub async fn enroll_student(&self, student_id: i64, course_id: i64) -> LmsResult<NewEnrollment> {
        let course = self.course(course_id, Mode::Uncached).await?;
        self.enrollments
            .enroll(
                student_id,
                &CourseRef {
                    id: course.id,
                    teacher_id: course.teacher_id,
                    price_cents: course.price_cents,
                },
            )
            .await
    }

    /// Marks a pending payment completed.
    pub async fn complete_payment(&self, payment: &PaymentRef) -> LmsResult<()> {
        self.enrollments.complete_payment(payment).await
    }
}
