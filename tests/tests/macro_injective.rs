//! Keys are injective (DESIGN §10.4, issue 9 item 5): for every template
//! the macro accepts, distinct argument values give distinct keys. Each
//! template's values encode its separators, so `pair:{a}-{b}` keeps
//! `("x-y", "z")` and `("x", "y-z")` apart.
//!
//! A property test over adversarial strings (separators, `%`, braces,
//! escapes spelled out, unicode, empty), exhaustive on short strings and
//! seeded-random on longer ones, and a behaviour test for tags and
//! `invalidates` on both backends.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use tests::{Backend, cache_for};

macro_rules! templated {
    ($($name:ident = $tmpl:literal ($($p:ident),+);)*) => {$(
        #[cached(key = $tmpl, skip = [cache], cache = cache)]
        #[allow(clippy::unused_async)]
        pub async fn $name(cache: &Cache, $($p: &str),+) -> String {
            let parts: Vec<&str> = vec![$($p),+];
            parts.join("|")
        }
    )*};
}

templated! {
    pair = "pair:{a}-{b}" (a, b);
    cat = "cat:{a}_{b}" (a, b);
    colon = "{a}:{b}" (a, b);
    letters = "x{a}y{b}z" (a, b);
    digit = "{a}2{b}" (a, b);
    hex = "{a}A{b}" (a, b);
    braces = "lit:{{{a}}}<b>" (a, b);
    unicode = "é{a}日{b}💥" (a, b);
    words = "user{a}name{b}" (a, b);
    triple = "t:{a}-{b}.{c}" (a, b, c);
    same_sep = "s:{a}-{b}-{c}" (a, b, c);
}

/// The characters adversarial values are made of: every template's
/// separators, the reserved set, hex digits of escapes, unicode.
const ALPHABET: &[&str] = &[
    ":", "-", "_", "{", "}", "%", ".", "<", ">", "2", "A", "a", "y", "é", "日", "💥", " ", "|",
];
/// Whole escapes spelled out, so that a value may look like another's escape.
const TOKENS: &[&str] = &["%2D", "%3A", "%25", "%32", "%5F", "%41", "user", "name", ""];

/// A small seeded generator (xorshift64*): reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }

    fn string(&mut self) -> String {
        let len = self.below(7);
        (0..len)
            .map(|_| {
                if self.below(4) == 0 {
                    TOKENS[self.below(TOKENS.len())]
                } else {
                    ALPHABET[self.below(ALPHABET.len())]
                }
            })
            .collect()
    }
}

/// Every string of at most two characters of `ALPHABET`.
fn short_strings() -> Vec<String> {
    let mut out = vec![String::new()];
    for a in ALPHABET {
        out.push((*a).to_owned());
        for b in ALPHABET {
            out.push(format!("{a}{b}"));
        }
    }
    out
}

/// Inserts `key → args`; panics when two different argument tuples gave one key.
fn record<A: Clone + PartialEq + Debug>(seen: &mut HashMap<String, A>, template: &str, key: String, args: A) {
    if let Some(other) = seen.get(&key) {
        assert_eq!(
            other, &args,
            "template {template:?}: {other:?} and {args:?} give the same key {key:?}"
        );
    } else {
        seen.insert(key, args);
    }
}

type Key2 = fn(&str, &str) -> String;
type Key3 = fn(&str, &str, &str) -> String;

const PAIRS: &[(&str, Key2)] = &[
    ("pair:{a}-{b}", pair_key),
    ("cat:{a}_{b}", cat_key),
    ("{a}:{b}", colon_key),
    ("x{a}y{b}z", letters_key),
    ("{a}2{b}", digit_key),
    ("{a}A{b}", hex_key),
    ("lit:{{{a}}}<b>", braces_key),
    ("é{a}日{b}💥", unicode_key),
    ("user{a}name{b}", words_key),
];

const TRIPLES: &[(&str, Key3)] = &[("t:{a}-{b}.{c}", triple_key), ("s:{a}-{b}-{c}", same_sep_key)];

#[test]
fn the_issues_collisions_are_gone() {
    assert_ne!(pair_key("x-y", "z"), pair_key("x", "y-z"));
    assert_eq!(pair_key("x-y", "z"), "pair:x%2Dy-z");
    assert_ne!(cat_key("a_b", ""), cat_key("a", "b_"));
    assert_ne!(same_sep_key("a-b", "c", "d"), same_sep_key("a", "b-c", "d"));
    // Letters and digits of the literal text stay readable in values, but
    // the one that ends a value (`n`, `2` here) is encoded.
    assert_eq!(words_key("ada", "x"), "useradanamex");
    assert_eq!(words_key("ann", "name"), "usera%6E%6Ename%6Eame");
    assert_eq!(digit_key("12", "3"), "1%3223");
}

#[test]
fn pairs_are_injective_on_every_short_pair() {
    let short = short_strings();
    for (template, key) in PAIRS {
        let mut seen = HashMap::new();
        for a in &short {
            for b in &short {
                record(&mut seen, template, key(a, b), (a.clone(), b.clone()));
            }
        }
        assert_eq!(seen.len(), short.len() * short.len(), "{template}");
    }
}

#[test]
fn templates_are_injective_on_random_adversarial_values() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (template, key) in PAIRS {
        let mut seen = HashMap::new();
        for _ in 0..20_000 {
            let (a, b) = (rng.string(), rng.string());
            record(&mut seen, template, key(&a, &b), (a, b));
        }
    }
    for (template, key) in TRIPLES {
        let mut seen = HashMap::new();
        for _ in 0..30_000 {
            let (a, b, c) = (rng.string(), rng.string(), rng.string());
            record(&mut seen, template, key(&a, &b, &c), (a, b, c));
        }
        // Exhaustive on one-character values too.
        let one: Vec<String> = std::iter::once(String::new())
            .chain(ALPHABET.iter().map(|s| (*s).to_owned()))
            .collect();
        for a in &one {
            for b in &one {
                for c in &one {
                    record(&mut seen, template, key(a, b, c), (a.clone(), b.clone(), c.clone()));
                }
            }
        }
    }
}

#[cached(key = "opt:{a}-{b}", skip = [cache], cache = cache)]
pub async fn optional(cache: &Cache, a: Option<&str>, b: &Option<String>) -> String {
    format!("{a:?}{b:?}")
}

#[cached(key = "nested:{a}:{b}", skip = [cache], cache = cache)]
pub async fn nested(cache: &Cache, a: Option<Option<&str>>, b: Box<Option<&str>>) -> String {
    format!("{a:?}{b:?}")
}

/// `None`, `Some(v)` and nested options never meet, whatever `v` is (the
/// renderings of `None` spelled out included) (issue 15 item 1).
#[test]
fn options_are_injective() {
    let mut values: Vec<String> = short_strings();
    values.extend(["%none", "%some", "%some%none", "%25none"].map(String::from));
    let options: Vec<Option<String>> = std::iter::once(None).chain(values.iter().cloned().map(Some)).collect();
    let mut seen = HashMap::new();
    for a in &options {
        for b in &options {
            let key = optional_key(a.as_deref(), b);
            record(&mut seen, "opt:{a}-{b}", key, (a.clone(), b.clone()));
        }
    }
    assert_eq!(optional_key(None, &None), "opt:%none-%none");
    assert_eq!(optional_key(Some("x-y"), &Some("%none".into())), "opt:x%2Dy-%25none");

    let nested_values: Vec<Option<Option<&str>>> = std::iter::once(None)
        .chain(std::iter::once(Some(None)))
        .chain(values.iter().map(|v| Some(Some(v.as_str()))))
        .collect();
    let mut seen = HashMap::new();
    for a in &nested_values {
        for b in options.iter().take(40) {
            let key = nested_key(*a, Box::new(b.as_deref()));
            record(&mut seen, "nested:{a}:{b}", key, (*a, b.clone()));
        }
    }
    assert_eq!(nested_key(None, Box::new(None)), "nested:%none:%none");
    assert_eq!(nested_key(Some(None), Box::new(Some("1"))), "nested:%some%none:1");
    assert_eq!(nested_key(Some(Some("")), Box::new(Some(""))), "nested:%some:");
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

/// Tagged with a two-placeholder tag template.
#[cached(key = "entry:{a}:{b}", tags = ["pair:{a}-{b}"], skip = [cache], cache = cache)]
pub async fn tagged(cache: &Cache, a: &str, b: &str) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("{a}|{b}")
}

/// Invalidates the tag, and a key of the same shape.
#[cached(invalidates = [tag("pair:{a}-{b}"), "pair:{a}-{b}"], cache = cache)]
pub async fn touch(cache: &Cache, a: &str, b: &str) -> Result<(), String> {
    let _ = (a, b);
    Ok(())
}

/// Tags and invalidation templates are injective too: invalidating the tag of
/// `("x-y", "z")` leaves the entry tagged for `("x", "y-z")` alone.
async fn tags_and_invalidates(backend: Backend) {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = LOCK.lock().await;
    let cache = cache_for(backend).await;
    let c = &cache;
    let base = LOADS.load(Ordering::SeqCst);
    let loads = || LOADS.load(Ordering::SeqCst) - base;
    assert_eq!(tagged(c, "x", "y-z").await, "x|y-z");
    assert_eq!(tagged(c, "x-y", "z").await, "x-y|z");
    assert_eq!(loads(), 2, "two keys");
    c.set(&pair_key("x", "y-z"), &1, std::time::Duration::from_secs(60))
        .await
        .expect("set");

    touch(c, "x-y", "z").await.expect("touch");
    assert_eq!(tagged(c, "x-y", "z").await, "x-y|z");
    assert_eq!(loads(), 3, "the touched tag's entry was dropped");
    assert_eq!(tagged(c, "x", "y-z").await, "x|y-z");
    assert_eq!(loads(), 3, "the other tag's entry is still there");
    assert!(
        c.exists(&pair_key("x", "y-z")).await.expect("exists"),
        "the invalidated key template did not reach the other key"
    );
    touch(c, "x", "y-z").await.expect("touch");
    assert!(!c.exists(&pair_key("x", "y-z")).await.expect("exists"));
}

#[tokio::test]
async fn tags_and_invalidates_memory() {
    tags_and_invalidates(Backend::Memory).await;
}

#[tokio::test]
async fn tags_and_invalidates_redis() {
    tags_and_invalidates(Backend::Redis).await;
}
