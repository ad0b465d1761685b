use cache_runtime::cached;

// `result` names the loaded value in tag templates: a parameter of that
// name would be ambiguous.
#[cached(key = "score:{result}", tags = ["score:{result}"])]
async fn score(result: u32) -> u32 {
    result
}

fn main() {}
