use cache_runtime::cached;

// A suffix on a literal used to be ignored silently.
#[cached(key = "s:{id}", ttl = "90s"ms)]
async fn a(id: u32) -> u32 {
    id
}

#[cached(key = "s:{id}"x, version = 2ms)]
async fn b(id: u32) -> u32 {
    id
}

#[cached(key = "s:{id}", ttl = 90ms)]
async fn c(id: u32) -> u32 {
    id
}

fn main() {}
