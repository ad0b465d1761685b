use std::future::Future;
use std::pin::Pin;

use cache_runtime::cached;

// A hand-written boxed future is not the shape `#[async_trait]` writes.
#[cached(key = "n:{n}")]
fn boxed(n: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    let fut = async move { n };
    Box::pin(fut)
}

fn main() {}
