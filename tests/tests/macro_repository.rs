//! A realistic data layer, written as it would be without a cache, with
//! `#[cached]` added to it and nothing else changed (issue 3): several
//! structs, a generic repository, trait impls, `?`, early returns, borrowed
//! parameters, and callers that do not know about the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use serde::{Deserialize, Serialize};
use tests::{Backend, cache_for};

// ------------------------------------------------------------------ domain

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Course {
    pub id: i64,
    pub teacher_id: i64,
    pub title: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Enrollment {
    pub student_id: i64,
    pub course_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StudentDashboard {
    pub student_id: i64,
    pub courses: Vec<Course>,
}

#[derive(Debug, PartialEq)]
enum DbError {
    NotFound(i64),
    Closed,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NotFound(id) => write!(f, "row {id} not found"),
            DbError::Closed => f.write_str("database closed"),
        }
    }
}

type Result<T, E = DbError> = std::result::Result<T, E>;

// ---------------------------------------------------------------- "database"

/// Stands in for a connection pool; counts queries.
#[derive(Default)]
struct Db {
    courses: Mutex<HashMap<i64, Course>>,
    enrollments: Mutex<Vec<Enrollment>>,
    queries: AtomicUsize,
}

impl Db {
    fn query(&self) {
        self.queries.fetch_add(1, Ordering::SeqCst);
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// Anything that can look rows up by id.
trait Table: Send + Sync {
    type Row: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync;
    fn find(db: &Db, id: i64) -> Option<Self::Row>;
}

struct Courses;

impl Table for Courses {
    type Row = Course;
    fn find(db: &Db, id: i64) -> Option<Course> {
        db.courses.lock().expect("lock").get(&id).cloned()
    }
}

// ------------------------------------------------------------ repositories

/// A generic by-id repository.
struct ById<'a, T: Table> {
    db: &'a Db,
    cache: Cache,
    _table: std::marker::PhantomData<T>,
}

impl<'a, T: Table> ById<'a, T> {
    pub fn new(db: &'a Db, cache: Cache) -> Self {
        ById {
            db,
            cache,
            _table: std::marker::PhantomData,
        }
    }

    /// Generic over the table: the default key includes `Self`'s full type
    /// name, so `ById<Courses>` and another table never share entries.
    #[cached(ttl = LONG, cache = self.cache)]
    pub async fn find(&self, id: i64) -> Result<Option<T::Row>> {
        self.db.query();
        if id <= 0 {
            return Ok(None);
        }
        Ok(T::find(self.db, id))
    }
}

struct CourseRepository<'a> {
    db: &'a Db,
    cache: Cache,
}

impl<'a> CourseRepository<'a> {
    pub fn new(db: &'a Db, cache: Cache) -> Self {
        CourseRepository { db, cache }
    }

    #[cached(key = "course:{id}", ttl = LONG, tags = ["courses"], cache = self.cache)]
    pub async fn get_course_by_id(&self, id: i64) -> Result<Course> {
        self.db.query();
        let course = Courses::find(self.db, id).ok_or(DbError::NotFound(id))?;
        Ok(course)
    }

    #[cached(key = "teacher:courses:{teacher_id}", tags = ["courses", "teacher:{teacher_id}"], cache = self.cache)]
    pub async fn courses_of_teacher(&self, teacher_id: i64) -> Result<Vec<Course>> {
        self.db.query();
        let mut v: Vec<Course> = self
            .db
            .courses
            .lock()
            .map_err(|_| DbError::Closed)?
            .values()
            .filter(|c| c.teacher_id == teacher_id)
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        Ok(v)
    }

    #[cached(key = "courses:active", ttl = "10m", tags = ["courses"], cache = self.cache)]
    pub async fn active_courses(&self) -> Result<Vec<Course>> {
        self.db.query();
        let mut v: Vec<Course> = self
            .db
            .courses
            .lock()
            .expect("lock")
            .values()
            .filter(|c| c.active)
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        Ok(v)
    }

    #[cached(
        invalidates = ["course:{course.id}", tag("teacher:{course.teacher_id}"), "courses:active"],
        cache = self.cache
    )]
    pub async fn update_course(&self, course: &Course) -> Result<()> {
        self.db.query();
        let mut rows = self.db.courses.lock().map_err(|_| DbError::Closed)?;
        let row = rows.get_mut(&course.id).ok_or(DbError::NotFound(course.id))?;
        *row = course.clone();
        Ok(())
    }
}

/// Services are written against traits; the implementation caches.
trait DashboardService {
    async fn student_dashboard(&self, student_id: i64) -> Result<StudentDashboard>;
    async fn enroll(&self, student_id: i64, course_id: i64) -> Result<()>;
}

struct Dashboards<'a> {
    courses: CourseRepository<'a>,
    cache: Cache,
}

impl DashboardService for Dashboards<'_> {
    #[cached(key = "dashboard:student:{student_id}", ttl = MEDIUM, cache = self.cache)]
    async fn student_dashboard(&self, student_id: i64) -> Result<StudentDashboard> {
        self.courses.db.query();
        let ids: Vec<i64> = {
            let rows = self.courses.db.enrollments.lock().map_err(|_| DbError::Closed)?;
            rows.iter()
                .filter(|e| e.student_id == student_id)
                .map(|e| e.course_id)
                .collect()
        };
        let mut courses = Vec::with_capacity(ids.len());
        for id in ids {
            courses.push(self.courses.get_course_by_id(id).await?);
        }
        Ok(StudentDashboard { student_id, courses })
    }

    #[cached(invalidates = ["dashboard:student:{student_id}"], cache = self.cache)]
    async fn enroll(&self, student_id: i64, course_id: i64) -> Result<()> {
        self.courses.db.query();
        self.courses.get_course_by_id(course_id).await?;
        self.courses
            .db
            .enrollments
            .lock()
            .map_err(|_| DbError::Closed)?
            .push(Enrollment { student_id, course_id });
        Ok(())
    }
}

/// A trait whose futures must be `Send` (axum handlers, `tokio::spawn`).
trait CourseLookup: Send + Sync {
    fn title(&self, id: i64) -> impl std::future::Future<Output = Result<String>> + Send;
}

impl CourseLookup for CourseRepository<'static> {
    #[cached(key = "title:{id}", cache = self.cache)]
    async fn title(&self, id: i64) -> Result<String> {
        self.db.query();
        Ok(self.get_course_by_id(id).await?.title)
    }
}

// ------------------------------------------------------------------- tests

fn seed() -> Db {
    let db = Db::default();
    for (id, teacher_id, active) in [(1, 10, true), (2, 10, false), (3, 11, true)] {
        db.courses.lock().expect("lock").insert(
            id,
            Course {
                id,
                teacher_id,
                title: format!("course {id}"),
                active,
            },
        );
    }
    db
}

async fn repository(backend: Backend) {
    let db = seed();
    let cache = cache_for(backend).await;
    let repo = CourseRepository::new(&db, cache.clone());

    assert_eq!(repo.get_course_by_id(1).await.map(|c| c.title), Ok("course 1".into()));
    assert_eq!(repo.get_course_by_id(1).await.map(|c| c.id), Ok(1));
    assert_eq!(db.queries(), 1);
    assert_eq!(repo.get_course_by_id(9).await, Err(DbError::NotFound(9)));
    assert_eq!(repo.get_course_by_id(9).await, Err(DbError::NotFound(9)));
    assert_eq!(db.queries(), 3, "errors are not cached");

    assert_eq!(repo.courses_of_teacher(10).await.map(|v| v.len()), Ok(2));
    assert_eq!(repo.active_courses().await.map(|v| v.len()), Ok(2));
    assert_eq!(repo.courses_of_teacher(10).await.map(|v| v.len()), Ok(2));
    assert_eq!(repo.active_courses().await.map(|v| v.len()), Ok(2));
    assert_eq!(db.queries(), 5);

    // Updating course 2 (teacher 10) to active drops its key, teacher 10's
    // list and the active list; teacher 11's list stays.
    repo.courses_of_teacher(11).await.expect("load");
    let q = db.queries();
    let mut c2 = repo.get_course_by_id(2).await.expect("load");
    c2.active = true;
    repo.update_course(&c2).await.expect("update");
    assert_eq!(
        repo.active_courses().await.map(|v| v.len()),
        Ok(3),
        "fresh after update"
    );
    assert_eq!(repo.courses_of_teacher(10).await.map(|v| v[1].active), Ok(true));
    repo.courses_of_teacher(11).await.expect("hit");
    assert_eq!(
        db.queries(),
        q + 4,
        "get 2, update, active, teacher 10 reloaded; teacher 11 hit"
    );

    // A failed update invalidates nothing.
    let q = db.queries();
    let ghost = Course {
        id: 99,
        teacher_id: 10,
        title: String::new(),
        active: true,
    };
    assert_eq!(repo.update_course(&ghost).await, Err(DbError::NotFound(99)));
    repo.courses_of_teacher(10).await.expect("still cached");
    assert_eq!(db.queries(), q + 1);

    // Generic repository.
    let by_id = ById::<Courses>::new(&db, cache.clone());
    let q = db.queries();
    assert_eq!(by_id.find(3).await.map(|c| c.map(|c| c.teacher_id)), Ok(Some(11)));
    assert_eq!(by_id.find(3).await.map(|c| c.map(|c| c.teacher_id)), Ok(Some(11)));
    assert_eq!(by_id.find(0).await, Ok(None));
    assert_eq!(by_id.find(0).await, Ok(None));
    assert_eq!(db.queries(), q + 3, "Some cached, None not");
    let key = ById::<Courses>::find_key(3);
    assert!(key.contains("ById<") && key.ends_with("::find:3"), "{key}");
    assert!(cache.exists(&key).await.expect("exists"));

    // Trait impl: the service's callers see the trait only.
    async fn render(svc: &impl DashboardService, student: i64) -> usize {
        svc.student_dashboard(student)
            .await
            .map(|d| d.courses.len())
            .unwrap_or(0)
    }
    let svc = Dashboards {
        courses: CourseRepository::new(&db, cache.clone()),
        cache: cache.clone(),
    };
    assert_eq!(render(&svc, 5).await, 0);
    let q = db.queries();
    assert_eq!(render(&svc, 5).await, 0, "hit");
    assert_eq!(db.queries(), q);
    svc.enroll(5, 1).await.expect("enroll");
    svc.enroll(5, 3).await.expect("enroll");
    assert_eq!(render(&svc, 5).await, 2, "enroll invalidated the dashboard");
    assert_eq!(svc.enroll(5, 42).await, Err(DbError::NotFound(42)));
    let q = db.queries();
    assert_eq!(render(&svc, 5).await, 2);
    assert_eq!(db.queries(), q, "a failed enroll left the dashboard cached");
}

async fn spawned(backend: Backend) {
    let db: &'static Db = Box::leak(Box::new(seed()));
    let repo: &'static CourseRepository<'static> =
        Box::leak(Box::new(CourseRepository::new(db, cache_for(backend).await)));
    let handles: Vec<_> = (0..4).map(|_| tokio::spawn(repo.title(3))).collect();
    for h in handles {
        assert_eq!(h.await.expect("join"), Ok("course 3".to_owned()));
    }
    let q = db.queries();
    assert_eq!(
        tokio::spawn(repo.title(3)).await.expect("join"),
        Ok("course 3".to_owned())
    );
    assert_eq!(db.queries(), q, "hit from a spawned task");
}

#[tokio::test(flavor = "multi_thread")]
async fn spawned_memory() {
    spawned(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spawned_redis() {
    spawned(Backend::Redis).await;
}

#[tokio::test]
async fn repository_memory() {
    repository(Backend::Memory).await;
}

#[tokio::test]
async fn repository_redis() {
    repository(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spawned_cluster() {
    spawned(Backend::Cluster).await;
}

#[tokio::test]
async fn repository_cluster() {
    repository(Backend::Cluster).await;
}
