//! Connection URLs without their secrets, for `Debug`, `Display`, logs and
//! error messages.
//!
//! A Redis URL can carry a password in three places: the userinfo
//! (`redis://user:pw@host`), the query (`redis+unix:///run/redis.sock?pass=pw`,
//! the form redis-rs reads for sockets; other tools use `?password=`), and, when
//! the URL is malformed, anywhere at all (`redis:/:pw@host`, a `/` or `#` in
//! an unescaped password). [`redact_url`] parses with the `url` crate and
//! rebuilds the URL from its parts, keeping what helps an operator (scheme,
//! username, host, port, database, socket path, harmless query parameters)
//! and replacing secrets with `***`. A URL that does not parse, or whose
//! parts are not in the shape a Redis URL gives them (a path that is no
//! database number, a fragment other than `#insecure`: signs of a malformed
//! userinfo), is never echoed: only its scheme, when it is one of Redis',
//! survives.

use std::fmt;

/// What replaces a secret.
const MASK: &str = "***";

/// URL schemes whose path is a Unix socket path (kept: it names a file, not a
/// secret). Every other scheme's path is a database number or a sentinel
/// service name, and is kept only in that shape.
const UNIX_SCHEMES: [&str; 3] = ["redis+unix", "unix", "valkey+unix"];

/// The schemes of Redis URLs (redis-rs' and the sentinel forms); a URL with
/// any other scheme is shown as unparseable.
const KNOWN_SCHEMES: [&str; 9] = [
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "valkey",
    "valkeys",
    "valkey+unix",
];

/// Query parameter names (lowercased substrings) whose values are secrets.
/// Generous on purpose: masking a harmless value costs nothing.
const SECRET_PARAMS: [&str; 10] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "key",
    "credential",
    "sig",
    "cookie",
    "session",
];

/// `url` with every secret replaced by `***`; never the password, whatever
/// the form (userinfo, `?pass=`, `?password=`, `?token=`, … or a malformed
/// URL, which becomes `scheme://<unparseable URL>`, or a URL of another
/// scheme: `<unparseable URL>`). Usernames are kept.
///
/// ```text
/// redis://user:pw@host:6379/0            → redis://user:***@host:6379/0
/// redis+unix:///run/r.sock?db=1&pass=pw  → redis+unix:///run/r.sock?db=1&pass=***
/// redis:/:pw@host                        → redis://<unparseable URL>
/// redis+sentinel://:pw@h1:1,h2:2/m       → redis+sentinel://<unparseable URL>
/// ```
pub(crate) fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return unparseable(raw);
    };
    if url.cannot_be_a_base() || !KNOWN_SCHEMES.contains(&url.scheme()) {
        // `redis:pw@host`: everything after the scheme is one opaque path;
        // an unknown scheme is no Redis URL (redis-rs rejects it too), and
        // could be anything.
        return unparseable(raw);
    }
    if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
        return unparseable(raw);
    }
    let unix = UNIX_SCHEMES.contains(&url.scheme());
    let path_ok = if url.scheme().contains("sentinel") {
        is_plain_path(url.path())
    } else {
        is_db_path(url.path())
    };
    if (!unix && !path_ok) || url.fragment().is_some_and(|f| f != "insecure") {
        // A database number or a service name is all a TCP URL's path holds,
        // `#insecure` the only fragment; anything else is a malformed
        // userinfo (`redis:/:pw@h`, `redis://u:12/pw@h`, `redis://u:1#pw@h`)
        // whose pieces may sit in any part, the port included.
        return unparseable(raw);
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                // Only values known to be harmless are shown: a password
                // typed into the wrong parameter must not leak either.
                let harmless = !is_secret_param(&name)
                    && match name.as_ref() {
                        "db" => value.bytes().all(|b| b.is_ascii_digit()),
                        "user" | "username" => true,
                        "protocol" => matches!(value.as_ref(), "2" | "3" | "resp2" | "resp3"),
                        _ => false,
                    };
                let value = if harmless { value.into_owned() } else { MASK.into() };
                (name.into_owned(), value)
            })
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    url.into()
}

/// `` or `/` or `/0`: a TCP URL's path is a database number or nothing.
fn is_db_path(path: &str) -> bool {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.bytes().all(|b| b.is_ascii_digit())
}

/// `/`, `/0`, `/mymaster`, `/mymaster/0`: segments of ASCII letters, digits,
/// `-`, `_` and `.`, at most two of them.
fn is_plain_path(path: &str) -> bool {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    path.is_empty()
        || (path.split('/').count() <= 2
            && path.split('/').all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            }))
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

/// The scheme, if it is one of Redis', and a placeholder: never the raw text.
fn unparseable(raw: &str) -> String {
    let scheme = raw.trim_start().split(':').next().unwrap_or("").to_ascii_lowercase();
    if KNOWN_SCHEMES.contains(&scheme.as_str()) {
        format!("{scheme}://<unparseable URL>")
    } else {
        "<unparseable URL>".to_owned()
    }
}

/// A connection URL that may hold a password. `Debug` and `Display` show
/// [`redact_url`]'s form; the URL itself only comes out through
/// [`SecretUrl::expose`], so a `#[derive(Debug)]` on a struct holding one
/// cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretUrl(String);

#[cfg_attr(
    not(test),
    expect(dead_code, reason = "holds builder URLs once the lead wires it (issue 9 item 6)")
)]
impl SecretUrl {
    /// Wraps a URL.
    pub(crate) fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL with its secrets, for the one place that connects with it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its secrets (what `Display` prints).
    pub(crate) fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "S3cr3t-pw";

    /// (URL, the secret's spellings that must not appear, what must remain).
    fn cases() -> Vec<(String, Vec<&'static str>, Vec<&'static str>)> {
        let pw = vec![PW];
        vec![
            (
                format!("redis://:{PW}@cache.internal:6379/0"),
                pw.clone(),
                vec!["redis://", "cache.internal:6379/0"],
            ),
            (
                format!("redis://app:{PW}@cache.internal:6379"),
                pw.clone(),
                vec!["app", "cache.internal:6379"],
            ),
            (
                format!("rediss://app:{PW}@cache.internal/#insecure"),
                pw.clone(),
                vec!["rediss://app", "#insecure"],
            ),
            (
                format!("rediss://:{PW}@cache.internal:6380/0?protocol=3"),
                pw.clone(),
                vec!["protocol=3", ":6380/0"],
            ),
            (
                format!("redis+unix:///run/redis.sock?db=1&pass={PW}"),
                pw.clone(),
                vec!["/run/redis.sock", "db=1"],
            ),
            (
                format!("unix:///run/redis.sock?user=app&pass={PW}"),
                pw.clone(),
                vec!["user=app", "unix://"],
            ),
            (
                format!("redis+unix:///run/redis.sock?pass={PW}&db=2&protocol=resp3"),
                pw.clone(),
                vec!["db=2"],
            ),
            (
                format!("redis+sentinel://:{PW}@sentinel-1:26379/mymaster/0"),
                pw.clone(),
                vec!["sentinel-1:26379/mymaster/0"],
            ),
            (
                format!("redis+sentinel://:{PW}@s1:26379,s2:26379/mymaster"),
                pw.clone(),
                vec!["redis+sentinel://"],
            ),
            (
                format!("redis://cache.internal/?password={PW}"),
                pw.clone(),
                vec!["cache.internal"],
            ),
            (
                format!("redis://cache.internal?auth={PW}&protocol=resp3"),
                pw.clone(),
                vec!["protocol=resp3"],
            ),
            (
                format!("redis://cache.internal/0?Token={PW}&x_api_key={PW}"),
                pw.clone(),
                vec!["/0"],
            ),
            (
                "redis://:S3%40cr3t@cache.internal".to_owned(),
                vec!["S3%40cr3t", "S3@cr3t"],
                vec!["cache.internal"],
            ),
            (
                "redis://:S3@cr3t@cache.internal".to_owned(),
                vec!["S3@cr3t", "S3%40cr3t"],
                vec!["cache.internal"],
            ),
            (
                format!("redis://app:{PW}@[::1]:6379/2"),
                pw.clone(),
                vec!["app", "[::1]:6379/2"],
            ),
            (
                format!("redis://:{PW}@cache.internal:notaport"),
                pw.clone(),
                vec!["redis://<unparseable URL>"],
            ),
            (format!("redis:/:{PW}@cache.internal"), pw.clone(), vec!["redis:"]),
            (
                format!("redis:{PW}@cache.internal"),
                pw.clone(),
                vec!["redis://<unparseable URL>"],
            ),
            (
                "redis://u:12/S3cr3t@cache.internal".to_owned(),
                vec!["12", "S3cr3t"],
                vec!["redis://"],
            ),
            (
                "redis://u:12#S3cr3t@cache.internal".to_owned(),
                vec!["12", "S3cr3t"],
                vec!["redis://"],
            ),
            (
                "redis://u:S3cr3t#frag@cache.internal".to_owned(),
                vec!["S3cr3t"],
                vec!["redis://"],
            ),
            (format!("redis://:{PW}@"), pw.clone(), vec!["redis://"]),
            (PW.to_owned(), pw.clone(), vec!["<unparseable URL>"]),
            (format!("{PW}://{PW}"), pw.clone(), vec!["<unparseable URL>"]),
            (
                format!("  REDIS://:{PW}@Cache.Internal  "),
                pw.clone(),
                vec!["redis://:***@Cache.Internal"],
            ),
            (
                format!("valkeys://app:{PW}@cache.internal"),
                pw.clone(),
                vec!["valkeys://app:***@"],
            ),
            (
                format!("redis://:{PW}@cache.internal/0?pass=other-{PW}"),
                pw.clone(),
                vec!["/0?pass=***"],
            ),
            (
                format!("redis://:{PW}@cache internal"),
                pw.clone(),
                vec!["redis://<unparseable URL>"],
            ),
            (format!("redis://:{PW}\n@cache.internal"), pw.clone(), vec!["redis://"]),
            (
                format!("http://app:{PW}@proxy:8080/x?sig={PW}"),
                pw.clone(),
                vec!["<unparseable URL>"],
            ),
            (
                format!("valkey://app:{PW}@h/0?sig={PW}"),
                pw.clone(),
                vec!["valkey://app:***@h/0?sig=***"],
            ),
        ]
    }

    #[test]
    fn the_password_never_appears() {
        let cases = cases();
        assert!(cases.len() >= 15);
        for (url, secrets, kept) in &cases {
            let shown = redact_url(url);
            for secret in secrets {
                assert!(!shown.contains(secret), "{url:?} → {shown:?} shows {secret:?}");
            }
            for part in kept {
                assert!(shown.contains(part), "{url:?} → {shown:?} lost {part:?}");
            }
            let wrapped = SecretUrl::new(url.clone());
            for text in [
                format!("{wrapped}"),
                format!("{wrapped:?}"),
                format!("{:?}", Some(&wrapped)),
            ] {
                assert!(!text.contains(PW) && !text.contains("S3cr3t"), "{url:?} → {text}");
            }
            assert_eq!(wrapped.expose(), url);
        }
    }

    #[test]
    fn exact_forms() {
        let cases = [
            ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
            ("redis://:pw@host", "redis://:***@host"),
            ("redis://host:6379", "redis://host:6379"),
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("rediss://host/#insecure", "rediss://host/#insecure"),
            (
                "redis+unix:///run/r.sock?db=1&pass=pw",
                "redis+unix:///run/r.sock?db=1&pass=***",
            ),
            ("redis:/:pw@host", "redis://<unparseable URL>"),
            ("redis://u:12/pw@host", "redis://<unparseable URL>"),
            (
                "redis+sentinel://:pw@h1:26379,h2:26379/m",
                "redis+sentinel://<unparseable URL>",
            ),
            ("redis://host/?password=", "redis://host/?password=***"),
            ("nonsense", "<unparseable URL>"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn secret_parameter_names() {
        for name in [
            "pass",
            "password",
            "PASSWORD",
            "pwd",
            "secret",
            "token",
            "auth",
            "api_key",
            "credentials",
        ] {
            assert!(is_secret_param(name), "{name}");
        }
        for name in ["db", "protocol", "user", "timeout"] {
            assert!(!is_secret_param(name), "{name}");
        }
    }
}
