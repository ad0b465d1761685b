use cache_runtime::cached;

// Text inside string literals is not a use of a parameter: both keys are
// constants, which would serve one entry to every caller.
#[cached(key = format!("c:{{id}}:{{x}}"))]
async fn escaped(id: u32, x: u32) -> u32 {
    id + x
}

#[cached(key = ("c:{id}:{x}"))]
async fn plain_string(id: u32, x: u32) -> u32 {
    id + x
}

fn main() {}
