//! Issue 9 item 13: the in-process backend's glob matches Redis' on every
//! pattern. A differential test against a real `redis-server`: seeded random
//! patterns and texts over an alphabet dense in metacharacters
//! (`a b : - ] [ ^ ? * \ x`), the server's `SCAN … MATCH` against the
//! in-process matcher, and `del_pattern` on a memory cache against a Redis
//! cache through the public API.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use tests::{Backend, cache_for, shared_redis};

/// Pattern and text bytes: every glob metacharacter, the class
/// punctuation, and a few ordinary letters (some adjacent in ASCII so that
/// ranges have something to include or exclude).
const ALPHABET: &[u8] = b"ab:-][^?*\\x";

/// A small seeded generator (splitmix64): the same patterns every run, so a
/// failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn string(&mut self, alphabet: &[u8], min: usize, max: usize) -> Vec<u8> {
        let len = min + self.below(max - min + 1);
        (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
    }
}

/// Patterns the issue names, and the corners of Redis' class parsing:
/// ranges next to `]`, reversed ranges, `-` at either end, escapes inside
/// classes, `^` alone, empty and unterminated classes, a trailing `\`.
const HAND_PICKED: &[&str] = &[
    "[?-]", "[a-]a]", "[[^:-]", "[a-]", "[-a]", "[-]", "[]", "[]a]", "[^]", "[^]a]", "[", "[^", "[a", "[a-", "[a-b",
    "[\\]]", "[\\]", "[\\", "[a\\-z]", "[a-\\]", "[\\a-b]", "[b-a]", "[x-a]", "[^b-a]", "[]-a]", "[a-]-b]", "\\",
    "a\\", "\\*", "\\[a]", "*[", "*\\", "?*?", "[*]", "[?]", "[^-]", "[--]", "[---]", "[a-b-x]", "*[a-]*", "**",
    "*a*b*", "[[]", "[[-]]", "[^^]", "[]-]", "a[", "[:-b]", "[b-:]",
];

/// With bytes above 0x7F, which Redis' ranges compare as signed `char`.
const HIGH_ALPHABET: &[u8] = b"a-][^*?\\\x00\x7f\x80\xc3\xff";

/// Texts: every single byte, every string of length 0 to 2 over the
/// alphabet, and random longer ones.
fn texts(rng: &mut Rng, alphabet: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut set = BTreeSet::new();
    set.insert(Vec::new());
    for b in 0..=255u8 {
        set.insert(vec![b]);
    }
    for &a in alphabet {
        for &b in alphabet {
            set.insert(vec![a, b]);
        }
    }
    while set.len() < n {
        set.insert(rng.string(alphabet, 3, 7));
    }
    set.into_iter().collect()
}

fn patterns(rng: &mut Rng, alphabet: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = HAND_PICKED.iter().map(|p| p.as_bytes().to_vec()).collect();
    while v.len() < n {
        v.push(rng.string(alphabet, 1, 8));
    }
    v
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every key of the connection's database that `SCAN … MATCH pattern`
/// returns.
async fn scan_match(conn: &mut redis::aio::MultiplexedConnection, pattern: &[u8]) -> BTreeSet<Vec<u8>> {
    let mut found = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(100_000)
            .query_async(conn)
            .await
            .expect("SCAN");
        found.extend(keys);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_matches_redis_scan_on_generated_patterns() {
    let mut rng = Rng(0x5eed_0913);
    let texts = texts(&mut rng, ALPHABET, 700);
    let patterns = patterns(&mut rng, ALPHABET, 4_000);
    compare_with_scan(9, &texts, &patterns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_matches_redis_scan_on_bytes_above_ascii() {
    let mut rng = Rng(0x5eed_0080);
    let texts = texts(&mut rng, HIGH_ALPHABET, 600);
    let patterns = patterns(&mut rng, HIGH_ALPHABET, 2_000);
    compare_with_scan(10, &texts, &patterns).await;
}

/// Raw comparison: the texts as keys of database `db` of the test server,
/// then for each pattern the set `SCAN MATCH` returns against the set the
/// in-process matcher accepts.
async fn compare_with_scan(db: u8, texts: &[Vec<u8>], patterns: &[Vec<u8>]) {
    // A database of its own on the private server: nothing else uses it.
    let client = redis::Client::open(format!("{}{db}", shared_redis().url())).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.expect("FLUSHDB");
    let mut pipe = redis::pipe();
    for t in texts {
        pipe.cmd("SET").arg(t).arg(1).ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.expect("SET texts");

    let mut disagreements = Vec::new();
    let mut matched_somewhere = 0;
    for p in patterns {
        let redis = scan_match(&mut conn, p).await;
        let ours: BTreeSet<Vec<u8>> = texts
            .iter()
            .filter(|t| cache_runtime::__private::glob_match(p, t))
            .cloned()
            .collect();
        if !redis.is_empty() {
            matched_somewhere += 1;
        }
        if redis != ours {
            let only_redis: Vec<String> = redis.difference(&ours).map(|t| show(t)).collect();
            let only_ours: Vec<String> = ours.difference(&redis).map(|t| show(t)).collect();
            disagreements.push(format!(
                "{:?}: only Redis matches {only_redis:?}, only ours {only_ours:?}",
                show(p)
            ));
        }
    }
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.expect("FLUSHDB");
    println!(
        "{} patterns × {} texts; {} patterns matched at least one text; {} disagreed",
        patterns.len(),
        texts.len(),
        matched_somewhere,
        disagreements.len()
    );
    assert!(
        matched_somewhere > patterns.len() / 4,
        "the generator must produce patterns that match: {matched_somewhere}"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} patterns disagree with Redis, e.g.:\n{}",
        disagreements.len(),
        patterns.len(),
        disagreements.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Through the public API: the same keys in a memory cache and a Redis
/// cache, `del_pattern` on both, then the same count and the same keys left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_pattern_removes_the_same_keys_on_both_backends() {
    let mut rng = Rng(0x0de1_9a77);
    // Keys are texts after the namespace; none starts with the `__` of the
    // cache's own bookkeeping (the alphabet has no `_`).
    let mut keys = BTreeSet::new();
    for &a in ALPHABET {
        keys.insert(vec![a]);
    }
    while keys.len() < 60 {
        keys.insert(rng.string(ALPHABET, 2, 5));
    }
    let keys: Vec<String> = keys.into_iter().map(|k| String::from_utf8(k).expect("ASCII")).collect();
    let patterns: Vec<String> = patterns(&mut rng, ALPHABET, 400)
        .into_iter()
        .map(|p| String::from_utf8(p).expect("ASCII"))
        .collect();

    let memory = cache_for(Backend::Memory).await;
    let redis = cache_for(Backend::Redis).await;
    let mut disagreements = Vec::new();
    let mut deleted_somewhere = 0;
    let mut refused = 0;
    'patterns: for p in &patterns {
        let mut outcome = Vec::new();
        for cache in [&memory, &redis] {
            let sets = keys.iter().map(|k| cache.set(k, &1u8, Duration::from_secs(600)));
            for r in join_all(sets).await {
                r.expect("set");
            }
            // A malformed glob (unterminated `[`, trailing `\`) could reach
            // past the key into the cache's bookkeeping: both refuse it.
            let n = match cache.del_pattern(p).await {
                Ok(n) => n,
                Err(cache_runtime::CacheError::Config(_)) => {
                    assert!(
                        matches!(memory.del_pattern(p).await, Err(cache_runtime::CacheError::Config(_)))
                            && matches!(redis.del_pattern(p).await, Err(cache_runtime::CacheError::Config(_))),
                        "{p:?}: refused by one backend only"
                    );
                    refused += 1;
                    continue 'patterns;
                }
                Err(e) => panic!("{p:?}: {e}"),
            };
            let left: Vec<bool> = join_all(keys.iter().map(|k| cache.exists(k)))
                .await
                .into_iter()
                .map(|r| r.expect("exists"))
                .collect();
            outcome.push((n, left));
        }
        let (mem, red) = (&outcome[0], &outcome[1]);
        if red.0 > 0 {
            deleted_somewhere += 1;
        }
        if mem != red {
            let differ: Vec<&str> = keys
                .iter()
                .zip(mem.1.iter().zip(&red.1))
                .filter(|(_, (m, r))| m != r)
                .map(|(k, _)| k.as_str())
                .collect();
            disagreements.push(format!(
                "{p:?}: memory deleted {}, Redis {}; kept differently: {differ:?}",
                mem.0, red.0
            ));
        }
        assert_eq!(
            red.0 as usize,
            red.1.iter().filter(|kept| !**kept).count(),
            "{p:?}: Redis' count is the keys it removed"
        );
    }
    println!(
        "{} patterns × {} keys; {} malformed (refused by both); {} deleted something; {} disagreed",
        patterns.len(),
        keys.len(),
        refused,
        deleted_somewhere,
        disagreements.len()
    );
    assert!(
        refused < patterns.len() / 2,
        "most generated patterns are well-formed: {refused}"
    );
    assert!(
        deleted_somewhere > (patterns.len() - refused) / 4,
        "{deleted_somewhere}"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} patterns disagree between the backends, e.g.:\n{}",
        disagreements.len(),
        patterns.len(),
        disagreements.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
}
