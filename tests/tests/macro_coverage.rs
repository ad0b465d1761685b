//! Partial key coverage (issue 15 item 3): a parameter the key uses only
//! through some fields must be declared with `covered = [..]`; then calls
//! that differ only in other fields share one entry, as declared, and calls
//! that differ in a field of the key do not. On Redis and in memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use tests::{Backend, cache_for};

/// A paged query; `trace_id` does not change the result.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: u32,
    pub offset: u32,
    pub trace_id: String,
}

struct Repo {
    cache: Cache,
    runs: AtomicUsize,
}

impl Repo {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// `limit` and `offset` determine the page; `trace_id` does not.
    #[cached(key = "list:{params.limit}:{params.offset}", covered = [params], cache = self.cache)]
    pub async fn list(&self, params: Page) -> Vec<u32> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (params.offset..params.offset + params.limit).collect()
    }

    /// The same through a key expression.
    #[cached(key = format!("list2:{}:{}", params.limit, params.offset), covered = [params], cache = self.cache)]
    pub async fn list_expr(&self, params: &Page) -> Vec<u32> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (params.offset..params.offset + params.limit).collect()
    }
}

fn page(limit: u32, offset: u32, trace: &str) -> Page {
    Page {
        limit,
        offset,
        trace_id: trace.to_owned(),
    }
}

async fn covered(backend: Backend) {
    let repo = Repo {
        cache: cache_for(backend).await,
        runs: AtomicUsize::new(0),
    };
    assert_eq!(repo.list(page(2, 0, "a")).await, [0, 1]);
    assert_eq!(repo.list(page(2, 0, "b")).await, [0, 1]);
    assert_eq!(
        repo.runs(),
        1,
        "only trace_id differs: one entry, as `covered` declares"
    );
    assert_eq!(repo.list(page(2, 2, "a")).await, [2, 3], "page 2 is not page 1");
    assert_eq!(repo.runs(), 2);
    assert_eq!(repo.list(page(3, 2, "a")).await, [2, 3, 4]);
    assert_eq!(repo.runs(), 3);
    assert_eq!(Repo::list_key(page(2, 2, "zzz")), "list:2:2");

    assert_eq!(repo.list_expr(&page(2, 0, "a")).await, [0, 1]);
    assert_eq!(repo.list_expr(&page(2, 0, "b")).await, [0, 1]);
    assert_eq!(repo.list_expr(&page(2, 4, "b")).await, [4, 5]);
    assert_eq!(repo.runs(), 5);
}

#[tokio::test]
async fn covered_memory() {
    covered(Backend::Memory).await;
}

#[tokio::test]
async fn covered_redis() {
    covered(Backend::Redis).await;
}
