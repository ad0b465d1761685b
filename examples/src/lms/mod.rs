//! The original's learning platform (courses, students, teachers,
//! enrollments, payments) over a real SQL database, cached with
//! `#[cached]`: [`db`] (schema and generated data), [`keys`] (the key
//! set), [`repos`] (the cached
//! repositories), [`service`] (the five pages and the mutations), [`warm`]
//! (the warmers). The binary `lms` runs it all and prints what the cache buys.

pub mod db;
pub mod keys;
pub mod model;
pub mod repos;
pub mod service;
pub mod warm;

pub use db::{Db, DbKind, SeedConfig, SeedReport};
pub use keys::CacheKeys;
pub use repos::Freshness;
pub use service::{Lms, Mode};

/// What the repositories return.
pub type LmsResult<T> = Result<T, LmsError>;

/// A failed query or a refused operation.
#[derive(Debug)]
pub enum LmsError {
    /// The database failed.
    Db(sqlx::Error),
    /// No such row.
    NotFound(String),
    /// The operation conflicts with the data (already enrolled).
    Conflict(String),
    /// A bad `DATABASE_URL`.
    Config(String),
}

impl std::fmt::Display for LmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmsError::Db(e) => write!(f, "database: {e}"),
            LmsError::NotFound(what) => write!(f, "not found: {what}"),
            LmsError::Conflict(what) => write!(f, "conflict: {what}"),
            LmsError::Config(what) => write!(f, "configuration: {what}"),
        }
    }
}

impl std::error::Error for LmsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LmsError::Db(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for LmsError {
    fn from(e: sqlx::Error) -> Self {
        LmsError::Db(e)
    }
}
