//! A cache hit through a `#[cached]` method vs the same `get_or_load` call
//! written by hand, on `Cache::memory()`. The macro must add nothing on the
//! hot path (target: ratio at most 1.02).

use std::hint::black_box;

use cache_runtime::{Cache, Policy, Ttl, cached, keys};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Course {
    id: i64,
    title: String,
}

#[derive(Debug)]
struct DbError;

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "course:{id}", ttl = LONG, cache = self.cache)]
    async fn by_macro(&self, id: i64) -> Result<Course, DbError> {
        Ok(Course {
            id,
            title: "Rust 101".into(),
        })
    }

    async fn by_hand(&self, id: i64) -> Result<Course, DbError> {
        let mut key = String::with_capacity(16);
        key.push_str("course:");
        keys::push_escaped(&mut key, &id);
        self.cache
            .get_or_load(
                &key,
                Policy::ttl(Ttl::LONG).name("macro_hit::Repo::by_macro"),
                || async {
                    Ok(Course {
                        id,
                        title: "Rust 101".into(),
                    })
                },
            )
            .await
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let repo = Repo { cache: Cache::memory() };
    rt.block_on(async {
        repo.by_macro(1).await.expect("warm");
        repo.by_hand(1).await.expect("warm");
    });
    let mut g = c.benchmark_group("hit");
    g.bench_function("macro", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.by_macro(black_box(1)).await.expect("hit")) })
    });
    g.bench_function("by_hand", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.by_hand(black_box(1)).await.expect("hit")) })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
