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
            | CacheError::NotAnInteger { key } => Some(key),
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
}
