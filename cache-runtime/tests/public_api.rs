//! No type of the Redis client appears in this crate's public API, so a new
//! major version of redis-rs is never a breaking change of ours.
//!
//! A source-level listing (rustdoc's JSON output needs a nightly
//! toolchain): every `pub` item of `src/` (not `pub(crate)`), with its whole
//! signature, and the whole body of every `pub struct`, `pub enum` and
//! `pub trait` (the fields and variants users can name). The test fails if
//! any of them mentions the Redis client's crate.

use std::path::{Path, PathBuf};

/// Public item kinds whose signature ends at the first `{` or `;`.
const SIGNATURES: [&str; 6] = ["fn ", "async fn ", "const ", "static ", "type ", "use "];
/// Public item kinds whose whole braced body is public surface.
const BODIES: [&str; 3] = ["struct ", "enum ", "trait "];
/// What a mention of the Redis client looks like in Rust source.
const FORBIDDEN: [&str; 4] = ["redis::", "RedisError", "ConnectionManager", "RedisResult"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file without its `#[cfg(test)] mod tests { .. }` blocks and
/// without line comments.
fn code_of(text: &str) -> String {
    let without_comments = text
        .lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut code = without_comments.as_str();
    let mut out = String::new();
    while let Some(at) = code.find("#[cfg(test)]\nmod tests {") {
        out.push_str(&code[..at]);
        let body = &code[at..];
        let mut depth = 0usize;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        code = &body[end..];
    }
    out.push_str(code);
    out
}

/// Every public item of one file: its signature, or its whole body.
fn public_items(code: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("pub ") {
        let preceded_ok = rest[..at].chars().last().is_none_or(|c| c.is_whitespace());
        let after = &rest[at + 4..];
        rest = after;
        if !preceded_ok {
            continue;
        }
        if SIGNATURES.iter().any(|k| after.starts_with(k)) {
            let end = after.find(['{', ';']).unwrap_or(after.len());
            items.push(format!("pub {}", &after[..end]));
        } else if BODIES.iter().any(|k| after.starts_with(k)) {
            // Up to the end of the braced body (or `;` for a unit struct).
            let (mut depth, mut end) = (0usize, after.len());
            for (i, c) in after.char_indices() {
                match c {
                    ';' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            items.push(format!("pub {}", &after[..end]));
        }
    }
    items
}

#[test]
fn no_redis_type_in_the_public_api() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut listed = 0;
    let mut leaks = Vec::new();
    for file in &files {
        let code = code_of(&std::fs::read_to_string(file).expect("read"));
        for item in public_items(&code) {
            listed += 1;
            if FORBIDDEN.iter().any(|f| item.contains(f)) {
                leaks.push(format!("{}: {}", file.display(), item.lines().next().unwrap_or("")));
            }
        }
    }
    // The listing must see the API it guards (a scanner that finds nothing
    // would pass vacuously).
    assert!(listed > 100, "only {listed} public items found");
    assert!(
        leaks.is_empty(),
        "redis-rs types in the public API:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn the_scanner_sees_fields_and_signatures() {
    let code = "pub enum E {\n    Backend { source: redis::RedisError },\n}\n\
                pub(crate) fn hidden(c: redis::Client) {}\n\
                pub async fn f(x: u8)\n    -> Result<(), ::redis::RedisError> { todo() }\n\
                // pub fn commented(c: redis::Client) {}\n\
                #[cfg(test)]\nmod tests { pub fn t(c: redis::Client) { if x { } } }\n\
                pub fn after_tests(c: redis::Client) {}\n";
    let items = public_items(&code_of(code));
    assert_eq!(items.len(), 3, "{items:#?}");
    assert!(items.iter().all(|i| i.contains("redis::")), "{items:#?}");
}

/// The error's source is reachable through `std::error::Error` alone.
#[test]
fn error_sources_are_std_errors() {
    fn source_of(e: &cache_runtime::CacheError) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(e)
    }
    let e = cache_runtime::CacheError::Backend {
        key: "k".into(),
        source: "connection reset".into(),
    };
    assert_eq!(
        source_of(&e).map(ToString::to_string).as_deref(),
        Some("connection reset")
    );
}
