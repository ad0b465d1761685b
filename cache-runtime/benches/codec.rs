//! JSON against MessagePack (named fields) on a ~1 KB value: encode, decode,
//! size, and a full in-process hit through `Cache` with each codec.
//!
//! Then the compressors for large values (issue 14), on what the codec
//! would compress: the MessagePack payload of a list of course rows with
//! varied text, at 1 KiB, 16 KiB and 256 KiB. `lz4_flex` (block format)
//! against `zstd` at levels 1 and 3 (with a reused context, as a real
//! integration would keep one per thread): time to compress and to
//! decompress, and the compressed sizes (printed, for MessagePack and JSON
//! payloads).
//!
//! `cargo bench -p cache-runtime --bench codec`, then
//! `scripts/bench-medians.py encode decode memory_cache_get compress decompress`

use std::time::Duration;

use cache_runtime::{Cache, Codec, Ttl};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

mod common;

use common::{CourseDetails, course_details};

fn codecs(c: &mut Criterion) {
    let value = course_details(1);
    let json = serde_json::to_vec(&value).expect("json");
    let msgpack = rmp_serde::to_vec_named(&value).expect("msgpack");
    eprintln!(
        "encoded size: json {} bytes, msgpack {} bytes",
        json.len(),
        msgpack.len()
    );

    let mut g = c.benchmark_group("encode");
    g.bench_function("json", |b| b.iter(|| serde_json::to_vec(&value).expect("json")));
    g.bench_function("msgpack", |b| {
        b.iter(|| rmp_serde::to_vec_named(&value).expect("msgpack"))
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.bench_function("json", |b| {
        b.iter(|| serde_json::from_slice::<CourseDetails>(&json).expect("json"))
    });
    g.bench_function("msgpack", |b| {
        b.iter(|| rmp_serde::from_slice::<CourseDetails>(&msgpack).expect("msgpack"))
    });
    g.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("memory_cache_get");
    for (name, codec) in [("json", Codec::Json), ("msgpack", Codec::MessagePack)] {
        let cache = rt.block_on(async {
            let cache = Cache::builder().codec(codec).build().await.expect("cache");
            cache.set("course:1", &value, Ttl::LONG).await.expect("set");
            cache
        });
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { cache.get::<CourseDetails>("course:1").await.expect("get").expect("hit") })
        });
    }
    g.finish();
}

/// One row of a course listing: the shape of a typical large cached value
/// (a page of search results, a dashboard's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CourseRow {
    id: i64,
    title: String,
    teacher: String,
    category: String,
    price_cents: i64,
    rating: f64,
    enrolled: u32,
    published: bool,
    updated_at: String,
    tags: Vec<String>,
}

/// Rows with text drawn from a vocabulary by a seeded generator: repetitive
/// the way real listings are (field names, common words), not the way a
/// repeated string is.
fn course_rows(target_bytes: usize) -> Vec<CourseRow> {
    const WORDS: [&str; 48] = [
        "async",
        "rust",
        "systems",
        "design",
        "web",
        "data",
        "intro",
        "advanced",
        "practical",
        "patterns",
        "testing",
        "databases",
        "networks",
        "security",
        "cloud",
        "distributed",
        "compilers",
        "graphics",
        "machine",
        "learning",
        "functional",
        "programming",
        "concurrency",
        "performance",
        "embedded",
        "linux",
        "kernels",
        "storage",
        "caching",
        "queues",
        "streams",
        "api",
        "http",
        "grpc",
        "sql",
        "postgres",
        "redis",
        "tokio",
        "serde",
        "macros",
        "traits",
        "generics",
        "lifetimes",
        "ownership",
        "errors",
        "logging",
        "metrics",
        "tracing",
    ];
    const TEACHERS: [&str; 8] = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Barbara Liskov",
        "Edsger Dijkstra",
        "Donald Knuth",
        "Frances Allen",
        "Ken Thompson",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut rows = Vec::new();
    while rmp_serde::to_vec_named(&rows).expect("msgpack").len() < target_bytes {
        let id = rows.len() as i64 + 1;
        let title_words = 3 + next(4);
        rows.push(CourseRow {
            id,
            title: (0..title_words)
                .map(|_| WORDS[next(WORDS.len())])
                .collect::<Vec<_>>()
                .join(" "),
            teacher: TEACHERS[next(TEACHERS.len())].into(),
            category: WORDS[next(WORDS.len())].into(),
            price_cents: 990 + 100 * next(90) as i64,
            rating: 3.0 + next(200) as f64 / 100.0,
            enrolled: next(50_000) as u32,
            published: next(10) > 0,
            updated_at: format!(
                "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                1 + next(12),
                1 + next(28),
                next(24),
                next(60),
                next(60)
            ),
            tags: (0..1 + next(4)).map(|_| WORDS[next(WORDS.len())].to_owned()).collect(),
        });
    }
    rows
}

fn compressors(c: &mut Criterion) {
    let sizes = [("1KiB", 1024), ("16KiB", 16 * 1024), ("256KiB", 256 * 1024)];
    for (label, target) in sizes {
        let rows = course_rows(target);
        let msgpack = rmp_serde::to_vec_named(&rows).expect("msgpack");
        let json = serde_json::to_vec(&rows).expect("json");
        for (codec, payload) in [("msgpack", &msgpack), ("json", &json)] {
            eprintln!(
                "{label} {codec} payload {} B: lz4_flex {} B, zstd-1 {} B, zstd-3 {} B",
                payload.len(),
                lz4_flex::block::compress(payload).len(),
                zstd::bulk::compress(payload, 1).expect("zstd").len(),
                zstd::bulk::compress(payload, 3).expect("zstd").len(),
            );
        }
        let payload = msgpack;
        let lz4 = lz4_flex::block::compress(&payload);
        let z1 = zstd::bulk::compress(&payload, 1).expect("zstd");
        let z3 = zstd::bulk::compress(&payload, 3).expect("zstd");

        let mut g = c.benchmark_group("compress");
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_function(BenchmarkId::new("lz4_flex", label), |b| {
            b.iter(|| lz4_flex::block::compress(&payload))
        });
        for level in [1, 3] {
            // A context kept across calls (a thread-local in real use):
            // `zstd::bulk::compress` alone allocates one per call, ~20 µs.
            let mut ctx = zstd::bulk::Compressor::new(level).expect("zstd");
            g.bench_function(BenchmarkId::new(format!("zstd-{level}"), label), |b| {
                b.iter(|| ctx.compress(&payload).expect("zstd"))
            });
        }
        g.finish();

        let mut g = c.benchmark_group("decompress");
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_function(BenchmarkId::new("lz4_flex", label), |b| {
            b.iter(|| lz4_flex::block::decompress(&lz4, payload.len()).expect("lz4"))
        });
        let mut ctx = zstd::bulk::Decompressor::new().expect("zstd");
        for (level, z) in [(1, &z1), (3, &z3)] {
            g.bench_function(BenchmarkId::new(format!("zstd-{level}"), label), |b| {
                b.iter(|| ctx.decompress(z, payload.len()).expect("zstd"))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = codecs, compressors
}
criterion_main!(benches);
