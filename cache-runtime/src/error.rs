//! The one error type of the explicit cache API.

use std::time::Duration;

/// What went wrong in an explicit cache operation.
///
/// Every variant that concerns one entry carries the key (without the
/// namespace), so a log line says which entry failed. Values are never part of
/// an error message.
///
/// The cache-aside path ([`Cache::get_or_load`](crate::Cache::get_or_load))
/// never returns this type: there, every cache failure becomes a miss.
///
/// # Classifying errors
///
/// Match on the variants, or ask the stable classifiers:
/// [`is_timeout`](Self::is_timeout), [`is_unavailable`](Self::is_unavailable),
/// [`is_backend`](Self::is_backend), [`is_decode`](Self::is_decode),
/// [`is_encode`](Self::is_encode), [`is_config`](Self::is_config).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_runtime::Cache::memory();
/// cache.set("n", &"not a number", std::time::Duration::from_secs(60)).await.unwrap();
/// let err = cache.get::<u64>("n").await.unwrap_err();
/// assert!(err.is_decode() && !err.is_backend());
/// assert_eq!(err.key(), Some("n"));
/// assert!(err.to_string().contains("`n`"));
/// # }
/// ```
///
/// # Semver note on error sources
///
/// [`CacheError::Backend`] holds the backend's error as an opaque
/// `Box<dyn Error + Send + Sync>`, reachable through
/// [`std::error::Error::source`]. Its concrete type (today the Redis
/// client's error type) is **not** part of this crate's API: a new major
/// version of the Redis client is not a breaking change of this crate, and
/// code that downcasts the source may stop matching in any release. Use the
/// classifiers, the key and the message instead; they are stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The Redis URL could not be parsed.
    #[error("invalid Redis URL: {reason}")]
    InvalidUrl {
        /// Why the URL was rejected.
        reason: String,
    },
    /// A builder setting is out of range or malformed.
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// The backend answered with an error or the connection failed.
    #[error("cache backend error on key `{key}`: {source}")]
    Backend {
        /// The key of the operation (namespace not included).
        key: String,
        /// The backend's own error, opaque: see the type's documentation.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The backend did not answer within the operation timeout.
    #[error("cache operation on key `{key}` timed out after {timeout:?}")]
    Timeout {
        /// The key of the operation.
        key: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The circuit breaker is open: the backend failed repeatedly and is
    /// skipped until a probe succeeds.
    #[error("cache backend unavailable (circuit open), key `{key}`")]
    Unavailable {
        /// The key of the operation.
        key: String,
    },
    /// The value could not be serialized.
    #[error("cannot encode the value for key `{key}`: {reason}")]
    Encode {
        /// The key of the operation.
        key: String,
        /// The serializer's message.
        reason: String,
    },
    /// The stored bytes are not a value of the requested type (another type,
    /// an older shape, or garbage).
    #[error("cannot decode the value under key `{key}`: {reason}")]
    Decode {
        /// The key of the operation.
        key: String,
        /// What did not match.
        reason: String,
    },
    /// The encoded value is larger than the configured maximum.
    #[error("value for key `{key}` is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The key of the operation.
        key: String,
        /// Encoded size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// `incr` on a value that is not an integer (or would overflow).
    #[error("the value under key `{key}` is not an integer, or the increment overflows")]
    NotAnInteger {
        /// The key of the operation.
        key: String,
    },
    /// `install` was called twice.
    #[error("a global cache is already installed")]
    AlreadyInstalled,
    /// With `CacheBuilder::durable_invalidation`: the invalidation was
    /// applied on the primary but fewer replicas than asked acknowledged it
    /// in time, so a failover could still lose it.
    #[error("invalidation of `{key}` reached {acked} replica(s), {wanted} required")]
    NotDurable {
        /// What was invalidated.
        key: String,
        /// The fewest replicas that acknowledged a touched node's writes.
        acked: u32,
        /// Replicas required.
        wanted: u32,
    },
}

impl CacheError {
    /// The key this error concerns, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            CacheError::Backend { key, .. }
            | CacheError::Timeout { key, .. }
            | CacheError::Unavailable { key }
            | CacheError::Encode { key, .. }
            | CacheError::Decode { key, .. }
            | CacheError::TooLarge { key, .. }
            | CacheError::NotAnInteger { key }
            | CacheError::NotDurable { key, .. } => Some(key),
            _ => None,
        }
    }

    /// True for failures of the backend itself (errors, timeouts, open
    /// circuit), as opposed to problems with one value.
    pub fn is_backend(&self) -> bool {
        matches!(
            self,
            CacheError::Backend { .. } | CacheError::Timeout { .. } | CacheError::Unavailable { .. }
        )
    }

    /// True when the backend did not answer within the operation timeout
    /// ([`CacheError::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CacheError::Timeout { .. })
    }

    /// True when the call skipped the backend because its circuit breaker
    /// is open ([`CacheError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CacheError::Unavailable { .. })
    }

    /// True when stored bytes are not a value of the requested type
    /// ([`CacheError::Decode`]): another type, an older shape, or garbage.
    pub fn is_decode(&self) -> bool {
        matches!(self, CacheError::Decode { .. })
    }

    /// True when a value could not be stored: it failed to serialize
    /// ([`CacheError::Encode`]) or is over the size limit
    /// ([`CacheError::TooLarge`]).
    pub fn is_encode(&self) -> bool {
        matches!(self, CacheError::Encode { .. } | CacheError::TooLarge { .. })
    }

    /// True for a bad setting, URL or pattern ([`CacheError::Config`],
    /// [`CacheError::InvalidUrl`]): retrying will not help.
    pub fn is_config(&self) -> bool {
        matches!(self, CacheError::Config(..) | CacheError::InvalidUrl { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::CacheError;
    use std::error::Error as _;
    use std::time::Duration;

    #[test]
    fn backend_source_is_opaque_and_reachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = CacheError::Backend {
            key: "course:7".into(),
            source: Box::new(io),
        };
        assert!(err.is_backend() && !err.is_timeout() && !err.is_decode());
        assert_eq!(err.key(), Some("course:7"));
        assert!(err.to_string().contains("`course:7`") && err.to_string().contains("reset by peer"));
        // The source is a `dyn Error`: callers reach it through the standard
        // trait only, whatever backend produced it.
        let source = err.source().expect("a source");
        assert_eq!(source.to_string(), "reset by peer");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn classifiers_partition_the_variants() {
        let key = || "k".to_owned();
        let all = [
            CacheError::Timeout {
                key: key(),
                timeout: Duration::from_millis(5),
            },
            CacheError::Unavailable { key: key() },
            CacheError::Decode {
                key: key(),
                reason: "x".into(),
            },
            CacheError::Encode {
                key: key(),
                reason: "x".into(),
            },
            CacheError::TooLarge {
                key: key(),
                size: 2,
                limit: 1,
            },
            CacheError::Config("x".into()),
            CacheError::InvalidUrl { reason: "x".into() },
        ];
        let classes = |e: &CacheError| {
            [
                e.is_timeout(),
                e.is_unavailable(),
                e.is_decode(),
                e.is_encode(),
                e.is_config(),
            ]
        };
        let expected = [
            [true, false, false, false, false],
            [false, true, false, false, false],
            [false, false, true, false, false],
            [false, false, false, true, false],
            [false, false, false, true, false],
            [false, false, false, false, true],
            [false, false, false, false, true],
        ];
        for (e, want) in all.iter().zip(expected) {
            assert_eq!(classes(e), want, "{e:?}");
            assert_eq!(e.is_backend(), e.is_timeout() || e.is_unavailable(), "{e:?}");
        }
    }
}
