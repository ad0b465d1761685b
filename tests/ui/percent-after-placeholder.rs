use cache_runtime::cached;

// Escapes start with `%`, so `%` cannot end a value.
#[cached(key = "rate:{a}%{b}")]
async fn rate(a: String, b: String) -> String {
    a + &b
}

fn main() {}
