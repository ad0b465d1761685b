use cache_runtime::cached;

struct Filter {
    a: u32,
}

// A field segment must be a Rust identifier (this used to panic the macro).
#[cached(key = "f:{f.ⓐ}")]
async fn find(f: Filter) -> u32 {
    f.a
}

fn main() {}
