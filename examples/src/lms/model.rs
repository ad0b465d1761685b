//! What the repositories return and the pages show. Everything cached is
//! `Serialize + Deserialize`; nothing needs `Clone` for the cache.
//!
//! Cached aggregates refer to courses by id; pages resolve the ids through the
//! cached `course:{id}` entries. So a course's title lives in one entry, and an
//! update of it invalidates that entry and the catalog, not every dashboard
//! that lists the course.

use serde::{Deserialize, Serialize};

/// A course (`course:{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Course {
    pub id: i64,
    pub teacher_id: i64,
    pub title: String,
    pub description: String,
    pub category: String,
    pub price_cents: i64,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A line of the catalog of active courses (`courses:active`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseSummary {
    pub id: i64,
    pub teacher_id: i64,
    pub title: String,
    pub category: String,
    pub price_cents: i64,
}

/// A course's numbers (`course:stats:{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseStats {
    pub course_id: i64,
    pub enrollments: i64,
    pub completions: i64,
    pub avg_progress: f64,
    pub revenue_cents: i64,
    pub pending_cents: i64,
}

/// One course of a teacher with its numbers (`teacher:courses:{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherCourse {
    pub course_id: i64,
    pub enrollments: i64,
    pub completions: i64,
    pub avg_progress: f64,
    pub revenue_cents: i64,
}

/// `student:profile:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentProfile {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub joined_at: String,
}

/// `teacher:profile:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherProfile {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub bio: String,
    pub joined_at: String,
}

/// One enrollment of a student (`student:enrollments:{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub id: i64,
    pub course_id: i64,
    pub enrolled_at: String,
    pub progress: i64,
    pub status: String,
    /// `completed`, `pending`, or `None` for a free course.
    pub payment_status: Option<String>,
}

/// An amount per month (`YYYY-MM`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monthly {
    pub month: String,
    pub value: i64,
}

/// `dashboard:student:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentDashboard {
    pub student_id: i64,
    pub enrolled: i64,
    pub completed: i64,
    pub avg_progress: f64,
    pub total_spent_cents: i64,
    pub pending_payments: i64,
    pub pending_cents: i64,
    /// Courses in progress, furthest first: (course id, progress).
    pub continue_learning: Vec<(i64, i64)>,
    /// "Students who took your courses also took": course ids.
    pub recommended: Vec<i64>,
    /// Share of students with fewer completed courses, in percent.
    pub completion_percentile: f64,
    pub monthly_spending: Vec<Monthly>,
}

/// `dashboard:teacher:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherDashboard {
    pub teacher_id: i64,
    pub courses: i64,
    pub active_courses: i64,
    pub enrollments: i64,
    pub students: i64,
    pub completions: i64,
    pub avg_progress: f64,
    pub revenue_cents: i64,
    pub pending_cents: i64,
    /// 1 = the teacher with the highest revenue.
    pub revenue_rank: i64,
    pub monthly_enrollments: Vec<Monthly>,
    /// Most enrolled courses: (course id, enrollments).
    pub top_courses: Vec<(i64, i64)>,
}

/// `stats:platform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformStats {
    pub students: i64,
    pub teachers: i64,
    pub courses: i64,
    pub active_courses: i64,
    pub enrollments: i64,
    pub completions: i64,
    pub paying_students: i64,
    pub revenue_cents: i64,
    pub pending_cents: i64,
}

/// Numbers of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryStats {
    pub category: String,
    pub courses: i64,
    pub enrollments: i64,
    pub revenue_cents: i64,
}

/// `dashboard:admin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminDashboard {
    pub revenue_by_month: Vec<Monthly>,
    pub enrollments_by_month: Vec<Monthly>,
    /// (course id, revenue), highest first.
    pub top_courses: Vec<(i64, i64)>,
    /// (teacher id, revenue), highest first.
    pub top_teachers: Vec<(i64, i64)>,
    pub categories: Vec<CategoryStats>,
}

// ------------------------------------------------------------------ pages

/// Page 1: a teacher's courses with their numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherCoursesPage {
    pub teacher: TeacherProfile,
    pub courses: Vec<(Course, TeacherCourse)>,
}

/// Page 2: the admin dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminDashboardPage {
    pub stats: PlatformStats,
    pub dashboard: AdminDashboard,
    pub top_courses: Vec<Course>,
}

/// Page 3: a student's dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentDashboardPage {
    pub student: StudentProfile,
    pub dashboard: StudentDashboard,
    pub continue_learning: Vec<Course>,
    pub recommended: Vec<Course>,
}

/// Page 4: a teacher's dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherDashboardPage {
    pub teacher: TeacherProfile,
    pub dashboard: TeacherDashboard,
    pub top_courses: Vec<(Course, CourseStats)>,
}

/// Page 5: a student's courses, and active courses to browse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentCoursesPage {
    pub student: StudentProfile,
    pub enrollments: Vec<(Enrollment, Course)>,
    pub catalog_total: usize,
    /// The first active courses the student is not enrolled in.
    pub browse: Vec<CourseSummary>,
}
