use cache_runtime::cached;

pub struct Page {
    pub limit: u32,
}

// `covered` names parameters the key uses through fields, and nothing else.
#[cached(key = "list:{params.limit}:{id}", covered = [params, id, nope])]
pub async fn list(params: Page, id: u32) -> u32 {
    params.limit + id
}

fn main() {}
