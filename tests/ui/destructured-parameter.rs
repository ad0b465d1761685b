use cache_runtime::cached;

#[cached(key = "point:{x}")]
async fn point((x, y): (i32, i32)) -> i32 {
    x + y
}

fn main() {}
