use cache_runtime::cached;

// `{x.01}` is not `x.1`; an index past u32 used to panic the macro.
#[cached(key = "p:{x.01}")]
async fn first(x: (u8, u8)) -> u8 {
    x.1
}

#[cached(key = "p:{id.4294967296}")]
async fn huge(id: (u8, u8)) -> u8 {
    id.0
}

fn main() {}
