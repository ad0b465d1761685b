//! Building keys by hand: escaping of interpolated values.
//!
//! A full Redis key is `{namespace}:{key}`. The cache adds the namespace; the
//! functions here build the `key` part. Literal parts of a key are written as
//! they are; **interpolated values must go through [`escape`]** (or
//! [`push_escaped`]) so that no argument can forge another key or widen a
//! pattern: `:` `*` `?` `[` `]` `\` `{` `}` `%`, whitespace and control
//! characters are percent-encoded.
//!
//! ```
//! use cache_runtime::keys;
//! assert_eq!(keys::escape("a:b*"), "a%3Ab%2A");
//! assert_eq!(format!("course:{}", keys::escape(&42)), "course:42");
//! // A user-chosen name cannot reach another user's key or widen a pattern:
//! assert_ne!(format!("user:{}", keys::escape("1:admin")), "user:1:admin");
//! ```

use std::fmt::{self, Display, Write as _};

/// True for characters that are percent-encoded in interpolated values.
fn needs_escape(c: char) -> bool {
    matches!(c, ':' | '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '%') || c.is_whitespace() || c.is_control()
}

/// Writes `s` into `out` with every reserved character, and every character
/// of `also`, percent-encoded.
pub(crate) fn escape_str_into(out: &mut String, s: &str, also: &str) {
    for c in s.chars() {
        if needs_escape(c) || also.contains(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// Escapes one interpolated value (anything `Display`).
pub fn escape<T: Display + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    push_escaped(&mut out, value);
    out
}

/// Appends one escaped value to a key being built, without an intermediate
/// allocation for the unescaped text.
///
/// ```
/// let mut key = String::from("search:");
/// cache_runtime::keys::push_escaped(&mut key, &"rust async");
/// assert_eq!(key, "search:rust%20async");
/// ```
pub fn push_escaped<T: Display + ?Sized>(out: &mut String, value: &T) {
    push_escaped_with(out, value, "");
}

/// Like [`push_escaped`], and also percent-encodes every character of
/// `also`: the separators of the template the value goes into.
///
/// Escaping the reserved set keeps a value from forging another key; it
/// does not keep two values of one template apart when the template's own
/// separators are not reserved: with `pair:{a}-{b}`, `("x-y", "z")` and
/// `("x", "y-z")` would both give `pair:x-y-z`. Encoding the template's
/// separators in every value makes the key injective: a value never
/// contains the character that ends it. `#[cached]` passes each
/// template's separators, computed at compile time; code building keys by
/// hand does the same with its own separators.
///
/// ```
/// use cache_runtime::keys::push_escaped_with;
/// let key = |a: &str, b: &str| {
///     let mut k = String::from("pair:");
///     push_escaped_with(&mut k, a, "-");
///     k.push('-');
///     push_escaped_with(&mut k, b, "-");
///     k
/// };
/// assert_eq!(key("x-y", "z"), "pair:x%2Dy-z");
/// assert_eq!(key("x", "y-z"), "pair:x-y%2Dz");
/// assert_ne!(key("x-y", "z"), key("x", "y-z"));
/// // The reserved set is always encoded, `also` or not.
/// assert_eq!(key("a:b", ""), "pair:a%3Ab-");
/// ```
pub fn push_escaped_with<T: Display + ?Sized>(out: &mut String, value: &T, also: &str) {
    struct Escaper<'a> {
        out: &'a mut String,
        also: &'a str,
    }
    impl fmt::Write for Escaper<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            escape_str_into(self.out, s, self.also);
            Ok(())
        }
    }
    let _ = write!(Escaper { out, also }, "{value}");
}

/// How `None` is written where an `Option` is interpolated into a key or
/// tag (`#[cached(key = "feed:{viewer}")]` with `viewer: Option<UserId>`).
/// No escaped value can spell it: in an escaped value every `%` starts an
/// escape and is followed by two uppercase hex digits, never by `n`. So
/// `None` and `Some(v)` (written as `v`, escaped) never meet, whatever `v`
/// is, `"%none"` included.
///
/// ```
/// use cache_runtime::keys::{NONE, push_escaped_option};
/// let key = |viewer: Option<&str>| {
///     let mut k = String::from("feed:");
///     push_escaped_option(&mut k, viewer, "");
///     k
/// };
/// assert_eq!(key(None), "feed:%none");
/// assert_eq!(key(Some("ada")), "feed:ada");
/// assert_eq!(key(Some(NONE)), "feed:%25none");
/// ```
pub const NONE: &str = "%none";

/// The prefix of `Some(v)` when `v` is itself an `Option`
/// (`Option<Option<T>>`), so that `None`, `Some(None)` and `Some(Some(v))`
/// are three different keys: `%none`, `%some%none` and `%some` + `v`.
pub const SOME: &str = "%some";

/// Appends `value` escaped as [`push_escaped_with`] does, or [`NONE`].
pub fn push_escaped_option<T: Display + ?Sized>(out: &mut String, value: Option<&T>, also: &str) {
    match value {
        Some(v) => push_escaped_with(out, v, also),
        None => out.push_str(NONE),
    }
}

/// Checks a namespace: non-empty, and free of `:`, glob metacharacters,
/// whitespace and control characters, so that one namespace's keys and
/// patterns can never reach another's.
pub(crate) fn validate_namespace(ns: &str) -> Result<(), String> {
    if ns.is_empty() {
        return Err("the namespace must not be empty".into());
    }
    if let Some(c) = ns
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "namespace {ns:?} contains {c:?}; use letters, digits, `_`, `-` or `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reserved_characters() {
        assert_eq!(escape("plain-text_1.2"), "plain-text_1.2");
        assert_eq!(escape(":*?[]\\{}%"), "%3A%2A%3F%5B%5D%5C%7B%7D%25");
        assert_eq!(escape("a b\nc\td"), "a%20b%0Ac%09d");
        assert_eq!(escape("\u{a0}é"), "%C2%A0é");
        assert_eq!(escape(&-5i64), "-5");
    }

    #[test]
    fn escaping_with_separators() {
        let with = |v: &str, also: &str| {
            let mut s = String::new();
            push_escaped_with(&mut s, v, also);
            s
        };
        assert_eq!(with("a-b_c", "-_"), "a%2Db%5Fc");
        assert_eq!(with("a-b", ""), "a-b");
        assert_eq!(with("é-ü", "ü"), "é-%C3%BC");
        assert_eq!(with(":%", "-"), "%3A%25");
    }

    #[test]
    fn escaping_is_injective_on_samples() {
        let samples = ["a:b", "a%3Ab", "a", "a:", "%", "%25", "*", "", " "];
        let set: std::collections::HashSet<_> = samples.iter().map(|s| escape(*s)).collect();
        assert_eq!(set.len(), samples.len());
    }

    #[test]
    fn namespace_rules() {
        assert!(validate_namespace("app-1.v2_x").is_ok());
        for bad in ["", "a:b", "a*", "a b", "x{y}", "a#tag", "é"] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
    }
}
