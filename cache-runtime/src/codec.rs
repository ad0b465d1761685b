//! How values are stored: a small header, then a serde payload.
//!
//! ```text
//! byte 0       magic 0xC7
//! byte 1       format version (2)
//! byte 2       codec id (1 = JSON, 2 = MessagePack with field names)
//! byte 3       flags: bit 0 = payload compressed (LZ4); other bits must be 0
//! bytes 4..12  type fingerprint: FNV-1a of the canonical type name
//!              (`fingerprint`), little endian
//! bytes 12..16 payload length in bytes, u32 little endian
//! bytes 16..   payload: exactly that many bytes
//! ```
//!
//! A compressed payload is the serialized value's length (u32 LE), then the
//! serialized value as one LZ4 block (`lz4_flex` block format). Values
//! larger than a threshold are compressed when the writer asks for it
//! ([`Codec::encode_with`]) and only when that makes them smaller; every
//! reader decompresses whatever the flag says, so writers with and without
//! compression share entries. The declared length is checked against a
//! limit before anything is allocated ([`decode_with`]), so a small value
//! cannot inflate into gigabytes, and the block must decompress to exactly
//! that length. `lz4_flex` rather than `zstd`: every hit pays the
//! decompression, and LZ4 decompressed these values 2–9× faster (0.4 µs
//! against 3.3 µs at 1 KiB, 205 µs against 365 µs at 256 KiB) for output
//! 17–47 % larger than zstd's; it is also pure Rust (`benches/codec.rs`
//! measures both).
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
//! An entry stored by cache-aside has a freshness section between the tags
//! and the value (the physical TTL in Redis can be longer than the logical
//! one, for stale-while-revalidate and stale-if-error):
//!
//! ```text
//! byte 0      0xC9
//! bytes 1..9  logical expiry, ms since the Unix epoch, u64 LE
//! bytes 9..13 how long the load took, µs, u32 LE (saturating)
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
/// Flag: the payload is LZ4-compressed, after its decompressed length.
const FLAG_LZ4: u8 = 0b0000_0001;
/// Every flag this version understands; a value with any other is a miss.
const KNOWN_FLAGS: u8 = FLAG_LZ4;
/// The largest decompressed payload [`decode`] accepts (what
/// [`decode_with`] takes as a parameter).
pub(crate) const DEFAULT_MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

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
    /// the default (for a typical 1 KB record: 13 % smaller than JSON and
    /// about 1.6× faster to encode and decode).
    #[cfg(feature = "msgpack")]
    #[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
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

    /// Encodes `value` with its header, uncompressed.
    #[cfg(test)]
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        self.encode_with(value, None)
    }

    /// Encodes `value` with its header; with `compress_above: Some(n)`, a
    /// payload larger than `n` bytes is stored LZ4-compressed when that makes
    /// it smaller.
    pub(crate) fn encode_with<T: Serialize + ?Sized>(
        self,
        value: &T,
        compress_above: Option<usize>,
    ) -> Result<Vec<u8>, String> {
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
        let raw_len = out.len() - HEADER_LEN;
        let too_long = |n: usize| format!("payload of {n} bytes does not fit the header's u32 length");
        if compress_above.is_some_and(|above| raw_len > above) {
            let raw = u32::try_from(raw_len).map_err(|_| too_long(raw_len))?;
            let bound = lz4_flex::block::get_maximum_output_size(raw_len);
            let mut packed = vec![0; HEADER_LEN + 4 + bound];
            packed[..HEADER_LEN].copy_from_slice(&out[..HEADER_LEN]);
            packed[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&raw.to_le_bytes());
            let n = lz4_flex::block::compress_into(&out[HEADER_LEN..], &mut packed[HEADER_LEN + 4..])
                .map_err(|e| format!("compressing: {e}"))?;
            packed.truncate(HEADER_LEN + 4 + n);
            if packed.len() < out.len() {
                packed[3] |= FLAG_LZ4;
                out = packed;
            }
        }
        let len = u32::try_from(out.len() - HEADER_LEN).map_err(|_| too_long(out.len() - HEADER_LEN))?;
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

const FRESHNESS: u8 = 0xC9;

/// When a cache-aside entry stops being fresh, and what reloading it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Logical expiry, ms since the Unix epoch.
    pub(crate) expires_at_ms: u64,
    /// Duration of the load that produced the value, µs.
    pub(crate) load_us: u32,
}

/// Prefixes an encoded value with its freshness section.
pub(crate) fn with_freshness(f: Freshness, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + value.len());
    out.push(FRESHNESS);
    out.extend_from_slice(&f.expires_at_ms.to_le_bytes());
    out.extend_from_slice(&f.load_us.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// The freshness section of an entry (none for values written by `set` or
/// write-through), and the value after it.
pub(crate) fn split_freshness(bytes: &[u8]) -> Result<(Option<Freshness>, &[u8]), String> {
    if bytes.first() != Some(&FRESHNESS) {
        return Ok((None, bytes));
    }
    let head = bytes.get(..13).ok_or("truncated freshness section")?;
    let expires_at_ms = u64::from_le_bytes(head[1..9].try_into().map_err(|_| "truncated freshness section")?);
    let load_us = u32::from_le_bytes(head[9..13].try_into().map_err(|_| "truncated freshness section")?);
    Ok((Some(Freshness { expires_at_ms, load_us }), &bytes[13..]))
}

/// Decodes bytes written by [`Codec::encode`] for the same type, accepting
/// compressed values up to [`DEFAULT_MAX_DECOMPRESSED`] bytes.
///
/// A bare integer (what `INCR` leaves behind) decodes as JSON, so counters
/// made with [`Cache::incr`](crate::Cache::incr) can be read with `get`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    decode_with(bytes, DEFAULT_MAX_DECOMPRESSED)
}

/// [`decode`], rejecting a compressed value whose payload declares more than
/// `max_decompressed` bytes (before allocating them).
pub(crate) fn decode_with<T: DeserializeOwned>(bytes: &[u8], max_decompressed: usize) -> Result<T, String> {
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
    let flags = bytes[3];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(format!("unknown flags {flags:#04x}"));
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
    let decompressed;
    let payload = if flags & FLAG_LZ4 != 0 {
        decompressed = decompress(payload, max_decompressed)?;
        &decompressed[..]
    } else {
        payload
    };
    match codec {
        Codec::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        #[cfg(feature = "msgpack")]
        Codec::MessagePack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
    }
}

/// A compressed payload's serialized bytes: exactly as many as it declares,
/// and no more than `max` of them.
fn decompress(payload: &[u8], max: usize) -> Result<Vec<u8>, String> {
    if payload.len() < 4 {
        return Err("compressed payload without its length".into());
    }
    let size = read_u32(payload, 0) as usize;
    if size > max {
        return Err(format!(
            "compressed value declares {size} bytes, over the limit of {max}"
        ));
    }
    let mut out = vec![0; size];
    let n = lz4_flex::block::decompress_into(&payload[4..], &mut out)
        .map_err(|e| format!("corrupt compressed payload: {e}"))?;
    if n != size {
        return Err(format!("compressed payload holds {n} bytes, it declares {size}"));
    }
    Ok(out)
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

/// The type fingerprint stored in every value's header: FNV-1a of the
/// type's canonical name ([`canonical_name`]).
///
/// What is guaranteed: the same Rust type, named by the same path, has the
/// same fingerprint on every compiler version and platform, so instances of
/// one service built with different toolchains (a rolling upgrade) read
/// each other's entries. [`std::any::type_name`], which the name comes
/// from, does not promise a stable output; the canonical form removes what
/// may change between compilers: the crate and module path of
/// standard-library types (`alloc::string::String` and a future
/// `std::string::String` are both `String`), default allocator arguments,
/// lifetimes, and whitespace.
///
/// What is not: moving or renaming one of your types changes its
/// fingerprint, and so does changing the arguments of a generic type. Old
/// entries then fail the fingerprint check, which is a miss, never an error:
/// they are overwritten by the next load. A change of shape under the same
/// name is not detected by the fingerprint (the self-describing codecs
/// usually reject it, also as a miss); bump `#[cached(version = N)]` (or
/// put a version in the key) when a cached type changes shape.
///
/// Types serde writes the same way share a fingerprint: references are
/// transparent (`&T` = `T`), `String` = `str`, `Vec<T>` = `[T]`, and `Box`,
/// `Arc`, `Rc`, `Cow` are dropped. So `set(k, &"text")` reads back as
/// `String`, `set(k, &items[..])` as `Vec<_>`; a different type gets a
/// different value. Two standard-library types with the same name (say
/// `core::ops::Range` and a future `core::range::Range`) share one.
pub(crate) fn fingerprint<T: ?Sized>() -> u64 {
    let mut h = Fnv::new();
    h.write(canonical_name(std::any::type_name::<T>()).as_bytes());
    h.0
}

/// The crates of the standard library, whose internal module paths are not
/// part of a type's identity.
const STD_CRATES: [&str; 3] = ["core", "alloc", "std"];

/// Standard-library wrappers serde serializes as their content.
const TRANSPARENT: [&str; 4] = ["Box", "Arc", "Rc", "Cow"];

/// The canonical spelling of a `type_name`: see [`fingerprint`].
///
/// One pass over the name: paths of the standard library are cut to their
/// last segment; `String` becomes `str` and `Vec<T>` becomes `[T]`;
/// transparent wrappers, `&`, `mut`, lifetimes, the `Global` allocator
/// argument and whitespace are dropped; everything else is kept as is.
pub(crate) fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // What each open `<` closes with: "" (a dropped wrapper), "]" (Vec), ">".
    let mut closers: Vec<&str> = Vec::new();
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' {
            // A lifetime (`'a`, `'static`) and the comma or space after it.
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b':' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                i += 1;
            }
            let path = &name[start..i];
            let opens = bytes.get(i) == Some(&b'<');
            let (is_std, ident) = match path.split_once("::") {
                Some((root, _)) if STD_CRATES.contains(&root) => (true, path.rsplit("::").next().unwrap_or(path)),
                _ => (false, path),
            };
            if path == "mut" || path == "const" && out.ends_with('*') {
                continue; // `&mut T`, `*const T`
            }
            if is_std && ident == "Global" && out.ends_with(',') {
                out.pop(); // `Vec<T, Global>`: the default allocator
                continue;
            }
            if is_std && ident == "String" {
                out.push_str("str");
            } else if opens && is_std && ident == "Vec" {
                out.push('[');
                closers.push("]");
                i += 1;
            } else if opens && is_std && TRANSPARENT.contains(&ident) {
                closers.push("");
                i += 1;
            } else {
                if out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    out.push(' '); // `dyn Trait`
                }
                out.push_str(ident);
            }
            continue;
        }
        match c {
            b'&' | b' ' | b'\t' | b'\n' => {}
            b'<' => {
                closers.push(">");
                out.push('<');
            }
            b'>' => match closers.pop() {
                Some(closer) => out.push_str(closer),
                None => out.push('>'),
            },
            _ => out.push(char::from(c)),
        }
        i += 1;
    }
    out
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

    fn big() -> Vec<V1> {
        (0..200)
            .map(|i| V1 {
                id: i,
                name: format!("course number {i} of the catalogue"),
            })
            .collect()
    }

    fn is_compressed(bytes: &[u8]) -> bool {
        bytes[3] & FLAG_LZ4 != 0
    }

    #[test]
    fn compressed_values_round_trip_smaller() {
        for c in codecs() {
            let v = big();
            let plain = c.encode(&v).unwrap();
            let packed = c.encode_with(&v, Some(1024)).unwrap();
            assert!(!is_compressed(&plain) && is_compressed(&packed), "{c:?}");
            assert!(
                packed.len() * 2 < plain.len(),
                "{c:?}: {} vs {}",
                packed.len(),
                plain.len()
            );
            assert_eq!(decode::<Vec<V1>>(&packed).unwrap(), v);
            // Tagged entries wrap compressed values like any other.
            let tagged = with_tags(&["ns:__tag:t".to_owned()], &[4], &packed);
            let (tags, rest) = split_tags(&tagged).unwrap();
            assert_eq!(tags, vec![("ns:__tag:t", 4)]);
            assert_eq!(decode::<Vec<V1>>(rest).unwrap(), v);
        }
    }

    #[test]
    fn the_threshold_is_respected() {
        for c in codecs() {
            let v = big();
            let payload = c.encode(&v).unwrap().len() - HEADER_LEN;
            assert!(!is_compressed(&c.encode_with(&v, None).unwrap()));
            assert!(!is_compressed(&c.encode_with(&v, Some(payload)).unwrap()), "not larger");
            assert!(is_compressed(&c.encode_with(&v, Some(payload - 1)).unwrap()), "larger");
            assert!(
                !is_compressed(&c.encode_with(&5u8, Some(0)).unwrap()),
                "no gain on tiny values"
            );
            // Incompressible text (LZ4 only finds repeats) is stored as it is.
            const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut seed = 0x1234_5678_9abc_def0u64;
            let noise: String = (0..4096)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(CHARS[(seed % 64) as usize])
                })
                .collect();
            let bytes = c.encode_with(&noise, Some(0)).unwrap();
            assert!(!is_compressed(&bytes), "{c:?}");
            assert_eq!(decode::<String>(&bytes).unwrap(), noise);
        }
    }

    /// A reader that never compresses (the plain `decode`, as every reader
    /// uses) reads what a compressing writer stored, whatever its codec.
    #[test]
    fn compressed_values_are_read_without_compression_configured() {
        for c in codecs() {
            let v = big();
            let stored = c.encode_with(&v, Some(0)).unwrap();
            assert!(is_compressed(&stored));
            assert_eq!(decode::<Vec<V1>>(&stored).unwrap(), v);
            assert_eq!(decode_with::<Vec<V1>>(&stored, c.encode(&v).unwrap().len()).unwrap(), v);
            assert!(decode::<Vec<String>>(&stored).is_err(), "another type stays a miss");
        }
    }

    #[test]
    fn corrupt_compressed_payloads_are_errors() {
        for c in codecs() {
            let v = big();
            let stored = c.encode_with(&v, Some(0)).unwrap();
            let raw = read_u32(&stored, HEADER_LEN) as usize;
            // Every prefix and every appended byte: the header's length.
            for n in 0..stored.len() {
                assert!(decode::<Vec<V1>>(&stored[..n]).is_err(), "{c:?} prefix {n}");
            }
            // The same cuts with the header's length made to agree: the
            // block ends early.
            for n in HEADER_LEN..stored.len() {
                let mut cut = stored[..n].to_vec();
                let len = (n - HEADER_LEN) as u32;
                cut[LENGTH_AT..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
                assert!(decode::<Vec<V1>>(&cut).is_err(), "{c:?} consistent cut at {n}");
            }
            // A declared size that is not the block's.
            for size in [0, 1, raw - 1, raw + 1, raw * 2] {
                let mut lying = stored.clone();
                lying[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(size as u32).to_le_bytes());
                assert!(decode::<Vec<V1>>(&lying).is_err(), "{c:?} declared {size} for {raw}");
            }
            // A block of garbage, of zeros, of 0xFF.
            let block_len = stored.len() - HEADER_LEN - 4;
            let mut seed = 0xdead_beef_u64;
            for fill in [None, Some(0u8), Some(0xFF)] {
                let mut bad = stored.clone();
                for b in &mut bad[HEADER_LEN + 4..] {
                    *b = fill.unwrap_or_else(|| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    });
                }
                assert!(decode::<Vec<V1>>(&bad).is_err(), "{c:?} block {fill:?} × {block_len}");
            }
            // Every single-byte change: an error or, where it only changed a
            // literal, some value; never a panic.
            for at in HEADER_LEN..stored.len() {
                for x in [0x01u8, 0x80, 0xFF] {
                    let mut b = stored.clone();
                    b[at] ^= x;
                    let _ = decode::<Vec<V1>>(&b);
                }
            }
        }
    }

    #[test]
    fn decompression_is_bounded() {
        // 1 MiB of zeros compresses to about 4 KiB.
        let zeros = vec![0u8; 1 << 20];
        let stored = Codec::Json.encode_with(&zeros, Some(0)).unwrap();
        assert!(is_compressed(&stored) && stored.len() < 16 * 1024, "{}", stored.len());
        let Err(err) = decode_with::<Vec<u8>>(&stored, 64 * 1024) else {
            panic!("1 MiB decoded under a 64 KiB limit");
        };
        assert!(err.contains("over the limit"), "{err}");
        let raw = read_u32(&stored, HEADER_LEN) as usize;
        assert!(decode_with::<Vec<u8>>(&stored, raw).is_ok_and(|v| v == zeros));
        assert!(decode_with::<Vec<u8>>(&stored, raw - 1).is_err());

        // A header that declares 4 GiB is refused before anything is
        // allocated, whatever follows it.
        let mut bomb = stored.clone();
        bomb[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let Err(err) = decode::<Vec<u8>>(&bomb) else {
            panic!("a value declaring 4 GiB decoded");
        };
        assert!(err.contains("over the limit"), "{err}");
        // Within the limit but more than the block holds: an error.
        let mut short = stored;
        short[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&((2 << 20) as u32).to_le_bytes());
        assert!(decode::<Vec<u8>>(&short).is_err());
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

    /// Pinned: these numbers are in values stored by running services. A
    /// change here makes every stored value a miss after a deploy; change
    /// them only together with the format version.
    #[test]
    fn fingerprints_are_pinned() {
        assert_eq!(canonical_name(std::any::type_name::<String>()), "str");
        assert_eq!(canonical_name(std::any::type_name::<Vec<u32>>()), "[u32]");
        assert_eq!(
            canonical_name(std::any::type_name::<V1>()),
            "cache_runtime::codec::tests::V1"
        );
        assert_eq!(
            canonical_name(std::any::type_name::<Option<std::collections::HashMap<String, Vec<V1>>>>()),
            "Option<HashMap<str,[cache_runtime::codec::tests::V1]>>"
        );
        assert_eq!(fingerprint::<String>(), 0x826e_8319_5d0d_60f0);
        assert_eq!(fingerprint::<&str>(), 0x826e_8319_5d0d_60f0);
        assert_eq!(fingerprint::<Vec<u32>>(), 0xfec8_3463_a8d3_1baf);
        assert_eq!(fingerprint::<V1>(), 0x328e_d8cf_e6dd_3210);
        assert_eq!(
            fingerprint::<Option<std::collections::HashMap<String, Vec<V1>>>>(),
            0x4afd_5af1_2347_834e
        );
    }

    /// What a future compiler may print differently maps to the same name.
    #[test]
    fn canonical_names_ignore_compiler_spelling() {
        let same = [
            ("alloc::string::String", "std::string::String"),
            ("alloc::vec::Vec<u8>", "std::vec::Vec<u8, alloc::alloc::Global>"),
            ("alloc::vec::Vec<u8>", "alloc::vec::Vec< u8 >"),
            (
                "std::collections::hash::map::HashMap<alloc::string::String, u32>",
                "std::collections::HashMap<std::string::String,u32>",
            ),
            ("&'static str", "&str"),
            (
                "core::option::Option<&'a mut alloc::string::String>",
                "std::option::Option<std::string::String>",
            ),
            ("alloc::boxed::Box<app::User, alloc::alloc::Global>", "app::User"),
            ("(u8, alloc::string::String)", "(u8,str)"),
        ];
        for (a, b) in same {
            assert_eq!(canonical_name(a), canonical_name(b), "{a} / {b}");
        }
        let different = [
            ("app::User", "other::User"),
            ("app::v1::User", "app::v2::User"),
            ("alloc::vec::Vec<u8>", "alloc::vec::Vec<u16>"),
            ("(u8, alloc::string::String)", "(alloc::string::String, u8)"),
            ("[u8; 4]", "[u8; 5]"),
            ("core::option::Option<app::User>", "app::User"),
        ];
        for (a, b) in different {
            assert_ne!(canonical_name(a), canonical_name(b), "{a} / {b}");
        }
    }

    /// The previous fingerprint hashed standard-library paths as
    /// `type_name` printed them (`core::option::Option<u32>`). A value
    /// stored with it is a clean decode error: a miss, overwritten by the
    /// next load. (Types whose old and new spellings agree, like `String`
    /// and your own types, keep their fingerprint.)
    #[test]
    fn values_with_the_old_fingerprint_are_misses() {
        let mut old = Fnv::new();
        old.write(b"core::option::Option<u32>");
        let old = old.0;
        assert_ne!(old, fingerprint::<Option<u32>>());
        let mut bytes = Codec::Json.encode(&Some(5u32)).unwrap();
        bytes[FINGERPRINT_AT..FINGERPRINT_AT + 8].copy_from_slice(&old.to_le_bytes());
        let err = decode::<Option<u32>>(&bytes).unwrap_err();
        assert!(err.contains("is not a"), "{err}");
        // `String` kept its fingerprint: entries written before stay hits.
        assert_eq!(fingerprint::<String>(), 0x826e_8319_5d0d_60f0);
    }

    #[test]
    fn bare_integers_decode() {
        assert_eq!(decode::<i64>(b"-42").unwrap(), -42);
        assert!(decode::<String>(b"42").is_err());
    }
}
