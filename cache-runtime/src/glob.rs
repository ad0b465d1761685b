//! Redis' glob matching, for the in-process backend's `del_pattern`, so
//! that a pattern deletes the same keys on both backends.
//!
//! A port of `stringmatchlen` from Redis' `src/util.c` (case-sensitive, as
//! `SCAN … MATCH` and `KEYS` use it), kept faithful to its quirks rather than
//! to what a glob "should" do, because the point is to agree with the server:
//!
//! * `*` any run of bytes, `?` one byte, `\x` a literal `x` (a `\` at the
//!   end of the pattern is a literal `\`).
//! * `[…]` one byte from a class; `[^…]` negates it. Inside a class, `\x`
//!   is a literal `x`; `a-z` is a range wherever a byte is followed by `-`
//!   and at least one more pattern byte, even when that byte is `]` (`[a-]`
//!   is the range `a`..`]`, and the class is then unterminated); reversed
//!   ranges (`[z-a]`) are swapped; range bounds compare as C's signed
//!   `char`, so bytes from 0x80 sort before ASCII.
//! * A class ends at the first `]` that is not an escape or a range end, so
//!   `[]` is empty (never matches) and `[^]` matches any byte. An
//!   unterminated class (`[ab`, `[a-]`) ends with the pattern.
//! * Patterns nested more than [`MAX_NESTING`] `*`s deep stop matching (the
//!   protection Redis 7.2+ has against abusive patterns; it also bounds our
//!   recursion depth).
//! * `*` alone matches every key, the empty one included: `SCAN` and `KEYS`
//!   skip matching for it, although `stringmatchlen("*", "")` is false.

/// How deep `*`s may nest before a pattern stops matching (Redis'
/// `stringmatchlen_impl` limit).
const MAX_NESTING: u32 = 1000;

/// Whether `text` matches the glob `pattern` as `SCAN … MATCH pattern`
/// decides it on a Redis server.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer = false;
    string_match(pattern, text, &mut skip_longer, 0)
}

/// `stringmatchlen_impl`. `skip_longer` is Redis' `skipLongerMatches`: once
/// the rest of a pattern after some `*` failed at every position of the
/// rest of the text, no earlier `*` can make it match by absorbing more.
///
/// Redis reads one byte past a pattern's end in places (its strings end in
/// NUL); `at` answers 0 there, which is what Redis sees.
fn string_match(pat: &[u8], s: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    #[cfg(test)]
    tests::CALLS.with(|c| c.set(c.get() + 1));
    if nesting > MAX_NESTING {
        return false;
    }
    let at = |i: usize| pat.get(i).copied().unwrap_or(0);
    let (mut p, mut t) = (0usize, 0usize);
    while p < pat.len() && t < s.len() {
        match pat[p] {
            b'*' => {
                while at(p + 1) == b'*' {
                    p += 1;
                }
                if p + 1 == pat.len() {
                    return true;
                }
                while t < s.len() {
                    if string_match(&pat[p + 1..], &s[t..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    t += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => t += 1,
            b'[' => {
                p += 1;
                let negate = at(p) == b'^';
                if negate {
                    p += 1;
                }
                let c = s[t];
                let mut hit = false;
                loop {
                    let left = pat.len() - p;
                    if at(p) == b'\\' && left >= 2 {
                        p += 1;
                        hit |= pat[p] == c;
                    } else if at(p) == b']' {
                        break;
                    } else if left == 0 {
                        // Unterminated: end on the last byte, which the
                        // step after the class moves past.
                        p -= 1;
                        break;
                    } else if left >= 3 && pat[p + 1] == b'-' {
                        // Bounds compare as C `char`: signed on the
                        // platforms Redis runs on.
                        let (a, b) = (pat[p] as i8, pat[p + 2] as i8);
                        let (lo, hi) = if a > b { (b, a) } else { (a, b) };
                        p += 2;
                        hit |= (lo..=hi).contains(&(c as i8));
                    } else {
                        hit |= pat[p] == c;
                    }
                    p += 1;
                }
                if hit == negate {
                    return false;
                }
                t += 1;
            }
            b'\\' => {
                if pat.len() - p >= 2 {
                    p += 1;
                }
                if pat[p] != s[t] {
                    return false;
                }
                t += 1;
            }
            c => {
                if c != s[t] {
                    return false;
                }
                t += 1;
            }
        }
        p += 1;
        if t == s.len() {
            while at(p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pat.len() && t == s.len()
}

/// Whether a pattern can be embedded in a longer one without changing
/// what its own bytes mean: every class is closed (as Redis parses classes:
/// `[a-]` is the range `a`..`]`, so it is *not* closed) and no `\` is its
/// last byte (which would escape whatever follows it).
pub(crate) fn is_self_contained(pattern: &[u8]) -> bool {
    let mut p = 0;
    while p < pattern.len() {
        match pattern[p] {
            b'\\' if p + 1 == pattern.len() => return false,
            b'\\' => p += 2,
            b'[' => {
                p += 1;
                if pattern.get(p) == Some(&b'^') {
                    p += 1;
                }
                loop {
                    let left = pattern.len().saturating_sub(p);
                    match pattern.get(p) {
                        None => return false,
                        Some(b'\\') if left >= 2 => p += 2,
                        Some(b'\\') => return false,
                        Some(b']') => break,
                        Some(_) if left >= 3 && pattern[p + 1] == b'-' => p += 3,
                        Some(_) => p += 1,
                    }
                }
                p += 1;
            }
            _ => p += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_contained_patterns() {
        for ok in ["", "a*", "[ab]", "[^a]x", "[a-c]", "\\*", "[\\]]", "[]", "[^]", "[a-]]"] {
            assert!(super::is_self_contained(ok.as_bytes()), "{ok}");
        }
        for bad in ["[", "[ab", "[a-]", "*[a-]*", "a\\", "[a\\", "[^", "[a-"] {
            assert!(!super::is_self_contained(bad.as_bytes()), "{bad}");
        }
    }

    use super::*;

    thread_local! {
        /// Calls of `string_match` on this thread.
        pub(super) static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn ordinary_globs() {
        assert!(m("*", ""));
        assert!(m("course:*", "course:1"));
        assert!(!m("course:*", "courses:1"));
        assert!(m("c?urse", "course"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-c]llo", "hbllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*:1*", "x:y:1z"));
        assert!(!m("a*b", "acbd"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("?", ""));
    }

    /// The three forms issue 9 names, each checked against `redis-cli`
    /// (`SCAN 0 MATCH …`) on Redis 7.0.
    #[test]
    fn ranges_next_to_the_closing_bracket() {
        // `?-]` is the range `?`..`]`; the class is then unterminated.
        for t in ["?", "@", "A", "Z", "[", "\\", "]"] {
            assert!(m("[?-]", t), "{t}");
        }
        for t in ["-", ">", "^", "a"] {
            assert!(!m("[?-]", t), "{t}");
        }
        // `a-]` is the range `]`..`a`, then a literal `a`, then `]`.
        for t in ["]", "^", "_", "`", "a"] {
            assert!(m("[a-]a]", t), "{t}");
        }
        assert!(!m("[a-]a]", "-") && !m("[a-]a]", "b"));
        // `[^:-]`: `[`, then the range `^`..`:` (reversed: `:`..`^`),
        // unterminated.
        for t in ["[", ":", "A", "^"] {
            assert!(m("[[^:-]", t), "{t}");
        }
        assert!(!m("[[^:-]", "-") && !m("[[^:-]", "a"));
    }

    #[test]
    fn class_corners() {
        assert!(!m("[]", "]") && !m("[]", "a"));
        assert!(!m("[]a]", "a") && !m("[]a]", "]"));
        assert!(m("[^]", "x") && m("[^]", "]"));
        assert!(!m("[", "[") && !m("[", ""));
        assert!(m("[^", "x"));
        assert!(m("[ab", "b") && !m("[ab", "c"));
        assert!(m("[\\]]", "]") && !m("[\\]]", "\\"));
        assert!(m("[a\\-z]", "-") && !m("[a\\-z]", "b"));
        assert!(m("[z-a]", "m"));
        assert!(m("[-a]", "-") && m("[a-]", "]") && m("[a-]", "a") && !m("[a-]", "-"));
        assert!(m("[\\", "\\"));
        assert!(m("\\", "\\") && m("a\\", "a\\"));
        assert!(m("[^a-c]", "d") && !m("[^a-c]", "b"));
    }

    #[test]
    fn ranges_compare_as_signed_char() {
        let m = |p: &[u8], t: &[u8]| glob_match(p, t);
        // 0xFF is -1 as a C char: `[a-\xFF]` is -1..=97, which holds 0x00..=b'a'
        // and 0xFF, but neither `b` nor 0x80.
        assert!(m(b"[a-\xFF]", b"\xFF") && m(b"[a-\xFF]", b"0") && m(b"[a-\xFF]", b"a"));
        assert!(!m(b"[a-\xFF]", b"b") && !m(b"[a-\xFF]", b"\x80"));
    }

    #[test]
    fn nesting_is_bounded_like_redis_7_2() {
        let text = "a".repeat(1_200) + "b";
        assert!(m(&("a*".repeat(900) + "b"), &text));
        // Redis 7.0 (no limit) matches this one; 7.2 and later do not.
        assert!(!m(&("a*".repeat(1_100) + "b"), &text));
        assert!(!m(&("a*".repeat(20_000) + "b"), &"a".repeat(30_000)));
    }

    /// CVE-2022-36021: without `skip_longer` this pattern costs about
    /// C(60, 30) calls; with it, a few thousand.
    #[test]
    fn pathological_patterns_stay_polynomial() {
        CALLS.with(|c| c.set(0));
        assert!(!m(&("a*".repeat(30) + "b"), &"a".repeat(60)));
        let calls = CALLS.with(std::cell::Cell::get);
        assert!(calls < 10_000, "{calls} calls");
    }
}
