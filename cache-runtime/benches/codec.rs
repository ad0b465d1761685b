//! JSON against MessagePack (named fields) on a ~1 KB value: encode, decode,
//! size, and a full in-process hit through `Cache` with each codec.
//!
//! `cargo bench -p cache-runtime --bench codec`

use std::time::Duration;

use cache_runtime::{Cache, Codec, Ttl};
use criterion::{Criterion, criterion_group, criterion_main};

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

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = codecs
}
criterion_main!(benches);
