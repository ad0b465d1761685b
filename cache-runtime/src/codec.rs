//! How values are stored: a small header, then a serde payload.
//!
//! ```text
//! byte 0       magic 0xC7
//! byte 1       format version (2)
//! byte 2       codec id (1 = JSON, 2 = MessagePack with field names)
//! byte 3       flags (none defined: must be 0)
//! bytes 4..12  type fingerprint: FNV-1a of the Rust type name, little endian
//! bytes 12..16 payload length in bytes, u32 little endian
//! bytes 16..   payload: exactly that many bytes
//! ```
//!
//! An entry stored with tags has a tag section in front of that:
//!
//! ```text
//! byte 0      0xC8
//! bytes 1..3  tag count, u16 little endian
//! per tag     u16 LE length, the tag key, u64 LE version at load time
//! then        the value as above
//! ```
//!
//! Both codecs are self-describing: fields are matched by name, so a field
//! added, removed or reordered can never decode into the wrong field. A value
//! whose header or fingerprint does not match the requested type is rejected
//! before its payload is read, so one type's bytes are never read as another's.
//!
//! A value decodes to exactly what was stored or not at all. The payload
//! length is checked before the payload is read, so bytes cut off at the end
//! (JSON reads `100` from a cut `1000000000000007`) or appended after it
//! (MessagePack stops after one value and ignores the rest) are decode errors,
//! that is misses. A length rather than a checksum: what goes wrong with
//! stored bytes in practice is their end (a write cut short, a value spliced
//! or appended to by another client, `SETRANGE`/`APPEND`); Redis and TCP do
//! not flip bits in the middle, and a checksum would cost a pass over every
//! value on every hit.
//!
//! Format version 1 (the header without flags and length) and any other
//! unknown version are decode errors: misses, overwritten by the next store.

use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: u8 = 0xC7;
const FORMAT_VERSION: u8 = 2;
/// Length of the header in front of every stored value.
pub(crate) const HEADER_LEN: usize = 16;
/// Where the fingerprint and the payload length sit in the header.
const FINGERPRINT_AT: usize = 4;
const LENGTH_AT: usize = 12;

/// The serialization format of cached values.
///
/// Reading decodes with whatever codec the stored header names, so changing
/// the codec of a running system is safe: old entries still decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// `serde_json`: human-readable in `redis-cli`.
    Json,
    /// `rmp-serde` with field names (MessagePack maps): smaller and faster;
    /// the default (see `BENCHMARKS.md`).
    #[cfg(feature = "msgpack")]
    MessagePack,
}

impl Default for Codec {
    fn default() -> Self {
        #[cfg(feature = "msgpack")]
        return Codec::MessagePack;
        #[cfg(not(feature = "msgpack"))]
        return Codec::Json;
    }
}

impl Codec {
    fn id(self) -> u8 {
        match self {
            Codec::Json => 1,
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => 2,
        }
    }

    fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::Json),
            #[cfg(feature = "msgpack")]
            2 => Some(Codec::MessagePack),
            _ => None,
        }
    }

    /// Encodes `value` with its header.
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(256);
        out.push(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.id());
        out.push(0); // flags
        out.extend_from_slice(&fingerprint::<T>().to_le_bytes());
        out.extend_from_slice(&[0; 4]); // payload length, written below
        debug_assert_eq!(out.len(), HEADER_LEN);
        match self {
            Codec::Json => serde_json::to_writer(&mut out, value).map_err(|e| e.to_string())?,
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::encode::write_named(&mut out, value).map_err(|e| e.to_string())?,
        }
        let len = u32::try_from(out.len() - HEADER_LEN).map_err(|_| {
            format!(
                "payload of {} bytes does not fit the header's u32 length",
                out.len() - HEADER_LEN
            )
        })?;
        out[LENGTH_AT..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
        Ok(out)
    }
}

const TAGGED: u8 = 0xC8;

/// Prefixes an encoded value with the tag versions it was loaded under.
pub(crate) fn with_tags(tag_keys: &[String], versions: &[u64], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + tag_keys.iter().map(|t| t.len() + 10).sum::<usize>() + value.len());
    out.push(TAGGED);
    out.extend_from_slice(&(tag_keys.len() as u16).to_le_bytes());
    for (t, v) in tag_keys.iter().zip(versions) {
        out.extend_from_slice(&(t.len() as u16).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// An entry's (tag key, version) pairs and its value bytes.
pub(crate) type TagSplit<'a> = (Vec<(&'a str, u64)>, &'a [u8]);

/// The tag versions an entry was stored under (empty for an untagged entry),
/// and the value after them.
pub(crate) fn split_tags(bytes: &[u8]) -> Result<TagSplit<'_>, String> {
    if bytes.first() != Some(&TAGGED) {
        return Ok((Vec::new(), bytes));
    }
    let truncated = || "truncated tag section".to_owned();
    let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(truncated);
    let count = u16::from_le_bytes(take(1, 2)?.try_into().map_err(|_| truncated())?) as usize;
    let mut at = 3;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u16::from_le_bytes(take(at, 2)?.try_into().map_err(|_| truncated())?) as usize;
        let name = std::str::from_utf8(take(at + 2, len)?).map_err(|_| "tag is not UTF-8".to_owned())?;
        let version = u64::from_le_bytes(take(at + 2 + len, 8)?.try_into().map_err(|_| truncated())?);
        tags.push((name, version));
        at += 2 + len + 8;
    }
    Ok((tags, &bytes[at..]))
}

/// Decodes bytes written by [`Codec::encode`] for the same type.
///
/// A bare integer (what `INCR` leaves behind) decodes as JSON, so counters
/// made with [`Cache::incr`](crate::Cache::incr) can be read with `get`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() < HEADER_LEN || bytes[0] != MAGIC {
        if is_integer(bytes) {
            return serde_json::from_slice(bytes).map_err(|e| e.to_string());
        }
        return Err("not a cache value (missing or truncated header)".into());
    }
    if bytes[1] != FORMAT_VERSION {
        return Err(format!("unknown format version {}", bytes[1]));
    }
    let codec = Codec::from_id(bytes[2]).ok_or_else(|| format!("unknown codec id {}", bytes[2]))?;
    if bytes[3] != 0 {
        return Err(format!("unknown flags {:#04x}", bytes[3]));
    }
    if read_u64(bytes, FINGERPRINT_AT) != fingerprint::<T>() {
        return Err(format!("stored value is not a {}", std::any::type_name::<T>()));
    }
    let declared = read_u32(bytes, LENGTH_AT) as usize;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != declared {
        return Err(format!(
            "payload is {} bytes, the header says {declared} (truncated or appended to)",
            payload.len()
        ));
    }
    match codec {
        Codec::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        #[cfg(feature = "msgpack")]
        Codec::MessagePack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
    }
}

/// The u32 LE at `at`; the caller has checked that the header is complete.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The u64 LE at `at`; the caller has checked that the header is complete.
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn is_integer(bytes: &[u8]) -> bool {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit)
}

/// FNV-1a of the type's name, canonicalised so that types serde writes the
/// same way share a fingerprint: references are transparent (`&T` = `T`),
/// `String` = `str`, `Vec<T>` = `[T]`, and `Box`/`Arc`/`Rc`/`Cow` wrappers
/// are dropped. So `set(k, &"text")` reads back as `String`, `set(k,
/// &items[..])` as `Vec<_>`; a different type gets a different value.
pub(crate) fn fingerprint<T: ?Sized>() -> u64 {
    canonical_hash(std::any::type_name::<T>())
}

fn canonical_hash(name: &str) -> u64 {
    const TRANSPARENT: [&str; 4] = [
        "alloc::boxed::Box",
        "alloc::sync::Arc",
        "alloc::rc::Rc",
        "alloc::borrow::Cow",
    ];
    let mut h = Fnv::new();
    // What each open `<` closes with: "" (a dropped wrapper), "]" (Vec), ">".
    let mut closers: [&str; 32] = [">"; 32];
    let mut depth = 0usize;
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() || c == b'_' || c == b':' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                i += 1;
            }
            let path = &name[start..i];
            let opens = bytes.get(i) == Some(&b'<');
            if path == "mut" && bytes.get(i) == Some(&b' ') {
                i += 1; // `&mut T`
            } else if path == "alloc::string::String" {
                h.write(b"str");
            } else if opens && depth < closers.len() && path == "alloc::vec::Vec" {
                h.write(b"[");
                closers[depth] = "]";
                depth += 1;
                i += 1;
            } else if opens && depth < closers.len() && TRANSPARENT.contains(&path) {
                closers[depth] = "";
                depth += 1;
                i += 1;
            } else {
                h.write(path.as_bytes());
            }
            continue;
        }
        match c {
            b'&' => {}
            b'<' if depth < closers.len() => {
                closers[depth] = ">";
                depth += 1;
                h.write(b"<");
            }
            b'>' if depth > 0 => {
                depth -= 1;
                h.write(closers[depth].as_bytes());
            }
            _ => h.write(&[c]),
        }
        i += 1;
    }
    h.0
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct V1 {
        id: u32,
        name: String,
    }

    fn codecs() -> Vec<Codec> {
        vec![
            Codec::Json,
            #[cfg(feature = "msgpack")]
            Codec::MessagePack,
        ]
    }

    #[test]
    fn round_trips() {
        for c in codecs() {
            let v = V1 {
                id: 7,
                name: "x".into(),
            };
            let bytes = c.encode(&v).unwrap();
            assert_eq!(decode::<V1>(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn other_type_is_rejected() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Other {
            id: u32,
            name: String,
        }
        for c in codecs() {
            let bytes = c
                .encode(&V1 {
                    id: 1,
                    name: "a".into(),
                })
                .unwrap();
            assert!(decode::<Other>(&bytes).is_err());
            assert!(decode::<String>(&bytes).is_err());
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for c in codecs() {
            let bytes = c
                .encode(&V1 {
                    id: 1,
                    name: "abc".into(),
                })
                .unwrap();
            for n in 0..bytes.len() {
                assert!(decode::<V1>(&bytes[..n]).is_err(), "prefix {n}");
            }
        }
        assert!(decode::<V1>(b"\xC7\x09garbage-garbage").is_err());
        assert!(decode::<u64>(b"hello").is_err());
    }

    /// Issue 9 item 10: JSON read `100` from a `1000000000000007` cut after
    /// three digits.
    #[test]
    fn truncated_number_is_rejected() {
        for c in codecs() {
            let bytes = c.encode(&1_000_000_000_000_007u64).unwrap();
            assert_eq!(decode::<u64>(&bytes).unwrap(), 1_000_000_000_000_007);
            for n in 0..bytes.len() {
                assert!(decode::<u64>(&bytes[..n]).is_err(), "{c:?} prefix {n} of {bytes:?}");
            }
        }
        let json = Codec::Json.encode(&1_000_000_000_000_007u64).unwrap();
        let cut = &json[..json.len() - 13];
        assert!(cut.ends_with(b"100"), "{cut:?}");
        assert!(decode::<u64>(cut).is_err());
    }

    /// Issue 9 item 10: MessagePack stopped after one value and ignored what
    /// followed; JSON skipped trailing whitespace.
    #[test]
    fn every_appended_byte_is_rejected() {
        let values = [
            V1 {
                id: 7,
                name: "x".into(),
            },
            V1 {
                id: 0,
                name: String::new(),
            },
        ];
        for c in codecs() {
            for v in &values {
                let bytes = c.encode(v).unwrap();
                for extra in 0..=255u8 {
                    let mut longer = bytes.clone();
                    longer.push(extra);
                    assert!(decode::<V1>(&longer).is_err(), "{c:?} + {extra:#04x}");
                    longer.extend_from_slice(&bytes[HEADER_LEN..]);
                    assert!(decode::<V1>(&longer).is_err(), "{c:?} + {extra:#04x} + payload");
                }
            }
            let n = c.encode(&5u32).unwrap();
            for extra in 0..=255u8 {
                let mut longer = n.clone();
                longer.push(extra);
                assert!(decode::<u32>(&longer).is_err(), "{c:?} 5 + {extra:#04x}");
            }
        }
    }

    #[test]
    fn every_prefix_and_suffix_of_a_tagged_value_is_rejected() {
        for c in codecs() {
            let value = c
                .encode(&V1 {
                    id: 9,
                    name: "abc".into(),
                })
                .unwrap();
            let bytes = with_tags(&["ns:__tag:a".to_owned()], &[3], &value);
            for n in 0..bytes.len() {
                let ok = split_tags(&bytes[..n]).and_then(|(_, rest)| decode::<V1>(rest));
                assert!(ok.is_err(), "{c:?} prefix {n}");
            }
            let mut longer = bytes.clone();
            longer.push(b' ');
            let (_, rest) = split_tags(&longer).unwrap();
            assert!(decode::<V1>(rest).is_err(), "{c:?} appended");
        }
    }

    /// A value written before the length field existed (format version 1:
    /// magic, version, codec, fingerprint, payload) is a clean error.
    #[test]
    fn format_version_1_is_a_decode_error() {
        let mut v1 = vec![MAGIC, 1, 1];
        v1.extend_from_slice(&fingerprint::<V1>().to_le_bytes());
        v1.extend_from_slice(br#"{"id":1,"name":"a"}"#);
        let err = decode::<V1>(&v1).unwrap_err();
        assert!(err.contains("format version 1"), "{err}");
        let mut n = vec![MAGIC, 1, 1];
        n.extend_from_slice(&fingerprint::<u64>().to_le_bytes());
        n.extend_from_slice(b"1000000000000007");
        assert!(decode::<u64>(&n).is_err());
        for len in 0..v1.len() {
            assert!(decode::<V1>(&v1[..len]).is_err(), "v1 prefix {len}");
        }
    }

    #[test]
    fn unknown_flags_and_lying_lengths_are_errors() {
        for c in codecs() {
            let bytes = c.encode(&42u16).unwrap();
            for bit in 0..8 {
                let mut flagged = bytes.clone();
                flagged[3] |= 1 << bit;
                assert!(decode::<u16>(&flagged).is_err(), "{c:?} flag bit {bit}");
            }
            let actual = (bytes.len() - HEADER_LEN) as u32;
            for declared in [0, 1, 2, actual - 1, actual + 1, u32::MAX]
                .into_iter()
                .filter(|&d| d != actual)
            {
                let mut lying = bytes.clone();
                lying[LENGTH_AT..HEADER_LEN].copy_from_slice(&declared.to_le_bytes());
                assert!(decode::<u16>(&lying).is_err(), "{c:?} length {declared}");
            }
        }
    }

    /// Arbitrary bytes and single-byte corruptions of real values never
    /// panic (a seeded xorshift, so a failure reproduces).
    #[test]
    fn corrupt_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for c in codecs() {
            let bytes = c
                .encode(&vec![
                    V1 {
                        id: 1,
                        name: "a".into()
                    };
                    3
                ])
                .unwrap();
            for _ in 0..2_000 {
                let mut b = bytes.clone();
                let at = next() as usize % b.len();
                b[at] = next() as u8;
                let _ = decode::<Vec<V1>>(&b);
                let _ = split_tags(&b);
            }
        }
        for _ in 0..2_000 {
            let len = next() as usize % 40;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next() % 2 == 0 && !b.is_empty() {
                b[0] = MAGIC;
                if b.len() > 1 {
                    b[1] = FORMAT_VERSION;
                }
            }
            let _ = decode::<V1>(&b);
            let _ = decode::<u64>(&b);
        }
    }

    #[test]
    fn tag_section_round_trips_and_rejects_truncation() {
        let value = Codec::Json.encode(&5u8).unwrap();
        let tags = vec!["ns:__tag:a".to_owned(), "ns:__tag:bc".to_owned()];
        let bytes = with_tags(&tags, &[1, u64::MAX], &value);
        let (found, rest) = split_tags(&bytes).unwrap();
        assert_eq!(found, vec![("ns:__tag:a", 1), ("ns:__tag:bc", u64::MAX)]);
        assert_eq!(decode::<u8>(rest).unwrap(), 5);
        for n in 1..bytes.len() - value.len() {
            assert!(split_tags(&bytes[..n]).is_err(), "prefix {n}");
        }
        assert_eq!(split_tags(&value).unwrap().0, vec![]);
    }

    #[test]
    fn fingerprints_follow_serde_not_spelling() {
        use std::sync::Arc;
        assert_eq!(fingerprint::<&str>(), fingerprint::<String>());
        assert_eq!(fingerprint::<&&mut String>(), fingerprint::<str>());
        assert_eq!(fingerprint::<[V1]>(), fingerprint::<Vec<V1>>());
        assert_eq!(fingerprint::<Box<V1>>(), fingerprint::<V1>());
        assert_eq!(fingerprint::<Arc<Vec<Box<str>>>>(), fingerprint::<Vec<String>>());
        assert_eq!(fingerprint::<Option<&[u8]>>(), fingerprint::<Option<Vec<u8>>>());
        assert_ne!(fingerprint::<V1>(), fingerprint::<Option<V1>>());
        assert_ne!(fingerprint::<Vec<u8>>(), fingerprint::<Vec<u16>>());
        assert_ne!(fingerprint::<(u8, String)>(), fingerprint::<(String, u8)>());
        assert_ne!(
            fingerprint::<std::collections::HashMap<String, u8>>(),
            fingerprint::<Vec<(String, u8)>>()
        );
        let bytes = Codec::Json.encode("text").unwrap();
        assert_eq!(decode::<String>(&bytes).unwrap(), "text");
    }

    #[test]
    fn bare_integers_decode() {
        assert_eq!(decode::<i64>(b"-42").unwrap(), -42);
        assert!(decode::<String>(b"42").is_err());
    }
}
