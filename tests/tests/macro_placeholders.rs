//! Placeholder paths as Rust writes them (issue 15 item 9): fields named by
//! keywords (`{item.type}` reads `item.r#type`), raw parameter names, and
//! nested tuple indices.

use cache_runtime::{Cache, cached};

/// A struct whose fields are keywords, as serde-mapped JSON often has.
#[derive(Debug)]
pub struct Item {
    pub r#type: String,
    pub r#async: bool,
    pub pair: (u8, (u16, u32)),
}

#[cached(key = "item:{item.type}:{item.async}:{item.pair.1.0}", covered = [item], skip = [cache], cache = cache)]
pub async fn describe(cache: &Cache, item: &Item) -> String {
    format!("{} {}", item.r#type, item.pair.1.1)
}

#[cached(key = "raw:{type}:<r#match>", skip = [cache], cache = cache)]
pub async fn raw_params(cache: &Cache, r#type: u8, r#match: u8) -> u8 {
    r#type + r#match
}

#[tokio::test]
async fn keyword_fields_and_raw_names() {
    let item = Item {
        r#type: "book".into(),
        r#async: true,
        pair: (1, (2, 3)),
    };
    assert_eq!(describe_key(&item), "item:book:true:2");
    assert_eq!(raw_params_key(1, 2), "raw:1:2");
    let cache = Cache::memory();
    assert_eq!(describe(&cache, &item).await, "book 3");
    assert_eq!(raw_params(&cache, 1, 2).await, 3);
    assert_eq!(cache.get::<u8>(&raw_params_key(1, 2)).await.expect("get"), Some(3));
}
