use cache_runtime::cached;

pub struct Page {
    pub limit: u32,
    pub offset: u32,
}

// Page 1 and page 2 (another `offset`) would share one entry.
#[cached(key = "list:{params.limit}")]
pub async fn list(params: Page) -> Vec<u32> {
    (params.offset..params.offset + params.limit).collect()
}

#[cached(key = format!("list:{}", params.limit))]
pub async fn list_expr(params: &Page) -> Vec<u32> {
    (params.offset..params.offset + params.limit).collect()
}

fn main() {}
