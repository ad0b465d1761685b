use cache_runtime::cached;

// `"ab" + ""` and `"a" + "b"` would give one key; the same in tags and
// invalidated keys.
#[cached(key = "cat:{a}{b}")]
async fn cat(a: String, b: String) -> String {
    a + &b
}

#[cached(invalidates = ["cat:{a}<b>"])]
async fn touch(a: String, b: String) {
    let _ = (a, b);
}

fn main() {}
