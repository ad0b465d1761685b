//! Shared by the benches: a ~1 KB value like a course-details page, and a
//! private `redis-server` with a cache on it.

#![allow(dead_code)]

use cache_runtime::Cache;
use serde::{Deserialize, Serialize};

#[path = "../../tests/src/harness.rs"]
pub mod harness;

/// A private `redis-server` on a free port, a one-worker runtime, and a cache
/// with namespace `bench` on that server.
#[derive(Debug)]
pub struct RedisBench {
    pub server: harness::RedisServer,
    pub rt: tokio::runtime::Runtime,
    pub cache: Cache,
}

pub fn redis_bench() -> RedisBench {
    let server = harness::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cache = rt
        .block_on(Cache::builder().namespace("bench").redis(&server.url()).build())
        .expect("cache");
    RedisBench { server, rt, cache }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    pub id: i64,
    pub title: String,
    pub minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseDetails {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub teacher_id: i64,
    pub teacher_name: String,
    pub price_cents: i64,
    pub published: bool,
    pub rating: f64,
    pub tags: Vec<String>,
    pub lessons: Vec<Lesson>,
}

/// A value whose MessagePack encoding is close to 1 KB.
pub fn course_details(id: i64) -> CourseDetails {
    CourseDetails {
        id,
        title: format!("Asynchronous Rust in Production, part {id}"),
        description: "Futures, executors, cancellation, back-pressure and everything between. ".repeat(5),
        teacher_id: 17,
        teacher_name: "Ada Lovelace".into(),
        price_cents: 4_900,
        published: true,
        rating: 4.75,
        tags: vec!["rust".into(), "async".into(), "tokio".into(), "backend".into()],
        lessons: (0..8)
            .map(|i| Lesson {
                id: i,
                title: format!("Lesson {i}: the details"),
                minutes: 12 + i as u32,
            })
            .collect(),
    }
}
