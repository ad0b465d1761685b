//! The database: a pool over SQLite (embedded, a temporary file created and
//! filled on start) or Postgres (`DATABASE_URL=postgres://…`), the schema, and
//! a deterministic generator of realistic data.
//!
//! Queries are runtime queries through sqlx's `Any` driver, written once in the
//! SQL both databases accept (`$1` placeholders, `CAST(… AS BIGINT)` and
//! `CAST(… AS DOUBLE PRECISION)` around aggregates, dates as `YYYY-MM-DD` text).
//! Tables are prefixed `lms_` so that a Postgres database given to the example
//! only ever loses (and regains) its `lms_*` tables.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::LmsError;

/// The date the generated data treats as "today".
pub const TODAY: &str = "2025-01-31";

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite through sqlx's bundled library.
    Sqlite,
    /// Postgres.
    Postgres,
}

/// How much data to generate. Same seed, same data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedConfig {
    /// Teachers.
    pub teachers: usize,
    /// Students.
    pub students: usize,
    /// Courses.
    pub courses: usize,
    /// Each student enrolls in 2..=this many courses.
    pub max_enrollments_per_student: usize,
    /// RNG seed.
    pub seed: u64,
}

impl SeedConfig {
    /// The example's volume: thousands of courses and students, tens of
    /// thousands of enrollments and payments.
    pub fn full() -> Self {
        SeedConfig {
            teachers: 150,
            students: 8_000,
            courses: 2_000,
            max_enrollments_per_student: 13,
            seed: 42,
        }
    }

    /// A small data set for tests: seeds in milliseconds.
    pub fn small() -> Self {
        SeedConfig {
            teachers: 4,
            students: 60,
            courses: 24,
            max_enrollments_per_student: 6,
            seed: 7,
        }
    }
}

/// Row counts after seeding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Teachers inserted.
    pub teachers: usize,
    /// Students inserted.
    pub students: usize,
    /// Courses inserted.
    pub courses: usize,
    /// Enrollments inserted.
    pub enrollments: usize,
    /// Payments inserted.
    pub payments: usize,
    /// Time spent creating and filling the tables.
    pub elapsed: Duration,
}

/// A cheap-to-clone handle on the pool, with a counter of the queries the
/// repositories ran (each call of a repository's uncached body counts one),
/// which lets tests prove that a page was answered by the cache.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<DbInner>,
}

#[derive(Debug)]
struct DbInner {
    pool: AnyPool,
    kind: DbKind,
    queries: AtomicU64,
    next_id: AtomicI64,
    file: Option<PathBuf>,
}

impl Drop for DbInner {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Db {
    /// `DATABASE_URL` when set (`postgres://…` or `sqlite:…`), else a fresh
    /// SQLite file in the temp directory, removed when the last handle drops.
    /// The schema is (re)created and filled with `config`'s data.
    pub async fn from_env(config: SeedConfig) -> Result<(Db, SeedReport), LmsError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Db::open(url.trim(), None, config).await,
            _ => Db::sqlite_temp(config).await,
        }
    }

    /// A fresh SQLite file in the temp directory (removed on drop), filled with
    /// `config`'s data.
    pub async fn sqlite_temp(config: SeedConfig) -> Result<(Db, SeedReport), LmsError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "lms-example-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Db::open(&url, Some(path), config).await
    }

    async fn open(url: &str, file: Option<PathBuf>, config: SeedConfig) -> Result<(Db, SeedReport), LmsError> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            DbKind::Postgres
        } else if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            return Err(LmsError::Config(format!(
                "DATABASE_URL must start with postgres:// or sqlite:, got {:?}",
                url.split(':').next().unwrap_or("")
            )));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if kind == DbKind::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if kind == DbKind::Sqlite {
                        // A page cache that holds the whole database (the default
                        // is 2 MiB), as a server database would have.
                        for pragma in ["PRAGMA cache_size = -131072", "PRAGMA temp_store = MEMORY"] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let db = Db {
            inner: Arc::new(DbInner {
                pool,
                kind,
                queries: AtomicU64::new(0),
                next_id: AtomicI64::new(1),
                file,
            }),
        };
        let report = db.seed(config).await?;
        Ok((db, report))
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// SQLite or Postgres.
    pub fn kind(&self) -> DbKind {
        self.inner.kind
    }

    /// Counts one repository query (called at the top of every uncached body).
    pub fn count_query(&self) {
        self.inner.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// Repository queries run so far.
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(Ordering::Relaxed)
    }

    /// A new primary key for inserted enrollments and payments.
    pub fn next_id(&self) -> i64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn seed(&self, config: SeedConfig) -> Result<SeedReport, LmsError> {
        let start = Instant::now();
        let mut tx = self.pool().begin().await?;
        for stmt in SCHEMA.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        let data = generate(config);
        insert(
            &mut tx,
            "lms_teachers",
            &["id", "name", "email", "bio", "joined_at"],
            &data.teachers,
        )
        .await?;
        insert(
            &mut tx,
            "lms_students",
            &["id", "name", "email", "joined_at"],
            &data.students,
        )
        .await?;
        insert(
            &mut tx,
            "lms_courses",
            &[
                "id",
                "teacher_id",
                "title",
                "description",
                "category",
                "price_cents",
                "status",
                "created_at",
                "updated_at",
            ],
            &data.courses,
        )
        .await?;
        insert(
            &mut tx,
            "lms_enrollments",
            &["id", "student_id", "course_id", "enrolled_at", "progress", "status"],
            &data.enrollments,
        )
        .await?;
        insert(
            &mut tx,
            "lms_payments",
            &["id", "student_id", "course_id", "amount_cents", "status", "created_at"],
            &data.payments,
        )
        .await?;
        for stmt in INDEXES.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        // Fresh planner statistics, so that the first queries use the indexes.
        sqlx::query("ANALYZE").execute(self.pool()).await?;
        self.inner.next_id.store(data.next_id, Ordering::Relaxed);
        Ok(SeedReport {
            teachers: data.teachers.len(),
            students: data.students.len(),
            courses: data.courses.len(),
            enrollments: data.enrollments.len(),
            payments: data.payments.len(),
            elapsed: start.elapsed(),
        })
    }
}

const SCHEMA: &str = "
DROP TABLE IF EXISTS lms_payments;
DROP TABLE IF EXISTS lms_enrollments;
DROP TABLE IF EXISTS lms_courses;
DROP TABLE IF EXISTS lms_students;
DROP TABLE IF EXISTS lms_teachers;
CREATE TABLE lms_teachers (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    bio TEXT NOT NULL,
    joined_at TEXT NOT NULL
);
CREATE TABLE lms_students (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    joined_at TEXT NOT NULL
);
CREATE TABLE lms_courses (
    id BIGINT PRIMARY KEY,
    teacher_id BIGINT NOT NULL REFERENCES lms_teachers(id),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE lms_enrollments (
    id BIGINT PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES lms_students(id),
    course_id BIGINT NOT NULL REFERENCES lms_courses(id),
    enrolled_at TEXT NOT NULL,
    progress BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE lms_payments (
    id BIGINT PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES lms_students(id),
    course_id BIGINT NOT NULL REFERENCES lms_courses(id),
    amount_cents BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
)";

const INDEXES: &str = "
CREATE INDEX lms_courses_teacher ON lms_courses(teacher_id);
CREATE UNIQUE INDEX lms_enrollments_student_course ON lms_enrollments(student_id, course_id);
CREATE INDEX lms_enrollments_course ON lms_enrollments(course_id);
CREATE INDEX lms_payments_student ON lms_payments(student_id);
CREATE INDEX lms_payments_course ON lms_payments(course_id)";

/// One value of a generated row.
#[derive(Debug, Clone)]
enum Val {
    I(i64),
    S(String),
}

type Row = Vec<Val>;

/// Multi-row INSERTs with `$n` placeholders, in chunks that stay under both
/// databases' limits on bound parameters.
async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    columns: &[&str],
    rows: &[Row],
) -> Result<(), LmsError> {
    let per_chunk = (3000 / columns.len()).max(1);
    for chunk in rows.chunks(per_chunk) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..columns.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    Val::I(i) => q.bind(*i),
                    Val::S(s) => q.bind(s.clone()),
                };
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// SplitMix64: small, fast, deterministic; no dependency needed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// `YYYY-MM-DD` of a day number counted from 1970-01-01 (Hinnant's
/// `civil_from_days`).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Day number of 2022-01-01.
const DAY_2022: i64 = 18_993;

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Guido",
    "Katherine",
    "Bjarne",
    "Hedy",
    "Tim",
    "Annie",
    "Donald",
    "Mary",
    "John",
    "Sophie",
    "Niklaus",
    "Joan",
    "Yukihiro",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "van Rossum",
    "Johnson",
    "Stroustrup",
    "Lamarr",
    "Berners-Lee",
    "Easley",
    "Knuth",
    "Kenneth",
    "McCarthy",
    "Wilson",
    "Wirth",
    "Clarke",
    "Matsumoto",
];
const ADJECTIVES: &[&str] = &[
    "Practical",
    "Modern",
    "Hands-on",
    "Advanced",
    "Essential",
    "Applied",
    "Complete",
    "Intro to",
    "Mastering",
    "Fearless",
];
const CATEGORIES: &[&str] = &[
    "Rust",
    "Web Development",
    "Data Science",
    "Machine Learning",
    "Databases",
    "DevOps",
    "Security",
    "Mobile",
    "Design",
    "Cloud",
    "Algorithms",
    "Networking",
];
const LEVELS: &[&str] = &[
    "for Beginners",
    "in Depth",
    "Bootcamp",
    "Workshop",
    "Fundamentals",
    "Patterns",
];
const PRICES: &[i64] = &[0, 1900, 2900, 4900, 4900, 7900, 9900, 14900];

struct Generated {
    teachers: Vec<Row>,
    students: Vec<Row>,
    courses: Vec<Row>,
    enrollments: Vec<Row>,
    payments: Vec<Row>,
    next_id: i64,
}

fn person(rng: &mut Rng, id: usize, domain: &str) -> (String, String) {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let email = format!(
        "{}.{}{id}@{domain}",
        first.to_lowercase(),
        last.to_lowercase().replace([' ', '-'], "")
    );
    (format!("{first} {last}"), email)
}

fn generate(c: SeedConfig) -> Generated {
    let mut rng = Rng(c.seed);
    let teachers = (1..=c.teachers)
        .map(|id| {
            let (name, email) = person(&mut rng, id, "teach.example");
            let topic = rng.pick(CATEGORIES);
            vec![
                Val::I(id as i64),
                Val::S(name),
                Val::S(email),
                Val::S(format!("Teaches {topic} since {}.", 2005 + rng.below(18))),
                Val::S(date(DAY_2022 + rng.below(365) as i64)),
            ]
        })
        .collect();
    let students = (1..=c.students)
        .map(|id| {
            let (name, email) = person(&mut rng, id, "learn.example");
            vec![
                Val::I(id as i64),
                Val::S(name),
                Val::S(email),
                Val::S(date(DAY_2022 + rng.below(730) as i64)),
            ]
        })
        .collect();
    // Course: (id, teacher, price, active)
    let mut course_meta = Vec::with_capacity(c.courses);
    let courses = (1..=c.courses)
        .map(|id| {
            // Some teachers have many courses: square the uniform draw.
            let teacher = 1 + ((rng.unit().powi(2)) * c.teachers as f64) as usize;
            let teacher = teacher.min(c.teachers);
            let category = rng.pick(CATEGORIES);
            let title = format!("{} {category} {}", rng.pick(ADJECTIVES), rng.pick(LEVELS));
            let price = PRICES[rng.below(PRICES.len())];
            let roll = rng.below(100);
            let status = if roll < 85 {
                "active"
            } else if roll < 95 {
                "draft"
            } else {
                "archived"
            };
            let created = DAY_2022 + rng.below(730) as i64;
            course_meta.push((id as i64, price, status == "active"));
            vec![
                Val::I(id as i64),
                Val::I(teacher as i64),
                Val::S(title.clone()),
                Val::S(format!(
                    "{title}: {} lessons, projects and a final exam.",
                    8 + rng.below(30)
                )),
                Val::S(category.to_owned()),
                Val::I(price),
                Val::S(status.to_owned()),
                Val::S(date(created)),
                Val::S(date(created + rng.below(300) as i64)),
            ]
        })
        .collect();
    let active: Vec<(i64, i64)> = course_meta
        .iter()
        .filter(|m| m.2)
        .map(|&(id, price, _)| (id, price))
        .collect();
    let mut enrollments = Vec::new();
    let mut payments = Vec::new();
    let mut next_id = 1i64;
    for student in 1..=c.students as i64 {
        let k = 2 + rng.below(c.max_enrollments_per_student.saturating_sub(1).max(1));
        let mut taken: Vec<usize> = Vec::with_capacity(k);
        while taken.len() < k.min(active.len()) {
            // Popular courses are picked more often.
            let i = ((rng.unit().powf(1.6)) * active.len() as f64) as usize;
            let i = i.min(active.len() - 1);
            if !taken.contains(&i) {
                taken.push(i);
            }
        }
        for i in taken {
            let (course, price) = active[i];
            let day = DAY_2022 + 365 + rng.below(760) as i64;
            let progress = if rng.below(4) == 0 { 100 } else { rng.below(100) as i64 };
            let status = if progress == 100 { "completed" } else { "active" };
            enrollments.push(vec![
                Val::I(next_id),
                Val::I(student),
                Val::I(course),
                Val::S(date(day)),
                Val::I(progress),
                Val::S(status.to_owned()),
            ]);
            next_id += 1;
            if price > 0 {
                let paid = if rng.below(10) == 0 { "pending" } else { "completed" };
                payments.push(vec![
                    Val::I(next_id),
                    Val::I(student),
                    Val::I(course),
                    Val::I(price),
                    Val::S(paid.to_owned()),
                    Val::S(date(day)),
                ]);
                next_id += 1;
            }
        }
    }
    Generated {
        teachers,
        students,
        courses,
        enrollments,
        payments,
        next_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(DAY_2022), "2022-01-01");
        assert_eq!(date(DAY_2022 + 365 + 365 + 59), "2024-02-29");
    }

    #[test]
    fn generation_is_deterministic() {
        let a = generate(SeedConfig::small());
        let b = generate(SeedConfig::small());
        assert_eq!(format!("{:?}", a.enrollments), format!("{:?}", b.enrollments));
        assert!(a.enrollments.len() >= 2 * SeedConfig::small().students);
    }
}
