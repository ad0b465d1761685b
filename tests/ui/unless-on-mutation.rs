use cache_runtime::cached;

#[cached(invalidates = ["course:{id}"], unless = |ok: &()| *ok == ())]
async fn rename(id: u32, title: &str) {
    let _ = (id, title);
}

fn main() {}
