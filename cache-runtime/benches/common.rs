//! Shared by the benches: a ~1 KB value like a course-details page.

#![allow(dead_code)]

use serde::{Deserialize, Serialize};

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
