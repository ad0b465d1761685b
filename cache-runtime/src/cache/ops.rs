//! The explicit operations (`get`, `set`, `del`, …): errors are
//! visible to the caller.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::aside::Fresh;
use super::guard::Budget;
use super::{Cache, trace_op};
use crate::CacheError;
use crate::codec;
use crate::store::KeyTtl;

impl Cache {
    /// Reads a value. `Ok(None)` when absent, expired, or dropped by a tag
    /// invalidation; `Err(Decode)` when the stored bytes are not a `T`.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]), or [`CacheError::Decode`] when the stored
    /// bytes are not a `T` (another type, an older shape, garbage).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let start = Instant::now();
        let entry = self.inner.layout.entry(key);
        let mut budget = Budget::new(self.inner.op_timeout);
        let raw = self.call_in(&mut budget, key, self.inner.store.get(&entry)).await;
        let result = match raw {
            Ok(Some(raw)) => match self.fresh(&mut budget, key, &raw, &[], &[]).await {
                // Past its logical expiry (kept only for stale serving by
                // cache-aside) is absent to the explicit API.
                Ok(Fresh::Yes(value)) => codec::split_freshness(value)
                    .and_then(|(freshness, value)| {
                        let expired = freshness.is_some_and(|f| f.expires_at_ms <= super::aside::now_ms());
                        if expired {
                            Ok(None)
                        } else {
                            codec::decode::<T>(value).map(Some)
                        }
                    })
                    .map_err(|reason| CacheError::Decode {
                        key: key.to_owned(),
                        reason,
                    }),
                Ok(Fresh::Stale) => Ok(None),
                Ok(Fresh::Corrupt(reason)) => Err(CacheError::Decode {
                    key: key.to_owned(),
                    reason,
                }),
                Err(e) => Err(e),
            },
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(Some(_)) => "hit",
            Ok(None) => "miss",
            Err(_) => "error",
        };
        trace_op(self.origin(None), "GET", key, outcome, start);
        result
    }

    /// Stores a value for exactly `ttl` (at most ten years), revoking any
    /// load of the key in flight.
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::Encode`] when the value does not serialize,
    /// [`CacheError::TooLarge`] when it is over `max_value_bytes`, or a backend
    /// failure ([`CacheError::Backend`], [`CacheError::Timeout`],
    /// [`CacheError::Unavailable`]: see [`CacheError::is_backend`]).
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Duration) -> Result<(), CacheError> {
        let start = Instant::now();
        let bytes = self.encode(key, value)?;
        crate::scope::forget_key(self, key);
        let entry = self.inner.layout.entry(key);
        let ttl = crate::ttl::clamp(ttl);
        let r = self.call(key, self.inner.store.set(&entry, &bytes, ttl)).await;
        self.near_forget_key(key);
        trace_op(
            self.origin(None).ttl(ttl),
            "SET",
            key,
            if r.is_ok() { "ok" } else { "error" },
            start,
        );
        r
    }

    /// Deletes a key; `true` if it existed.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn del(&self, key: &str) -> Result<bool, CacheError> {
        self.invalidator().key(key).await.map(|n| n > 0)
    }

    /// Deletes every key of this namespace matching a Redis glob (`*`, `?`,
    /// `[a-z]`, `\x`), with `SCAN` + `UNLINK` in batches, never `KEYS`.
    /// Returns how many keys were removed. Escape interpolated parts of the
    /// pattern with [`keys::escape`](crate::keys::escape): escaped values
    /// contain no glob characters, so they match only themselves. A
    /// malformed glob (unterminated `[`, trailing `\`) is a
    /// [`CacheError::Config`].
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::Config`] for a malformed glob, or a backend
    /// failure ([`CacheError::Backend`], [`CacheError::Timeout`],
    /// [`CacheError::Unavailable`]: see [`CacheError::is_backend`]).
    pub async fn del_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        self.invalidator().pattern(pattern).await
    }

    /// Whether the key exists.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.call(key, self.inner.store.exists(&self.inner.layout.entry(key)))
            .await
    }

    /// Remaining lifetime of the key.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl, CacheError> {
        self.call(key, self.inner.store.ttl(&self.inner.layout.entry(key)))
            .await
    }

    /// Adds one to an integer counter (created at 0), keeping its TTL.
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::NotAnInteger`] when the key holds something else
    /// (or the counter would overflow), or a backend failure
    /// ([`CacheError::Backend`], [`CacheError::Timeout`],
    /// [`CacheError::Unavailable`]: see [`CacheError::is_backend`]).
    pub async fn incr(&self, key: &str) -> Result<i64, CacheError> {
        self.incr_by(key, 1).await
    }

    /// Adds `by` to an integer counter (created at 0), keeping its TTL.
    ///
    /// # Errors
    ///
    /// Returns [`CacheError::NotAnInteger`] when the key holds something else
    /// (or the counter would overflow), or a backend failure
    /// ([`CacheError::Backend`], [`CacheError::Timeout`],
    /// [`CacheError::Unavailable`]: see [`CacheError::is_backend`]).
    pub async fn incr_by(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        let r = self
            .call(key, self.inner.store.incr_by(&self.inner.layout.entry(key), by))
            .await;
        self.near_forget_key(key);
        r
    }

    /// Sets a new TTL (at most ten years) on an existing key; `false` if the
    /// key does not exist.
    ///
    /// # Errors
    ///
    /// Returns a backend failure ([`CacheError::Backend`],
    /// [`CacheError::Timeout`], [`CacheError::Unavailable`]: see
    /// [`CacheError::is_backend`]).
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let ttl = crate::ttl::clamp(ttl);
        self.call(key, self.inner.store.expire(&self.inner.layout.entry(key), ttl))
            .await
    }
}

/// The invalidation primitives [`Invalidator`](crate::Invalidator) is built
/// on. Each first bumps this cache's invalidation epoch, so no caller that
/// arrives afterwards joins a load that started before.
impl Cache {
    /// Deletes entries and revokes their leases; counts entries that existed.
    pub(crate) async fn drop_keys(&self, label: &str, keys: &[String]) -> Result<u64, CacheError> {
        self.inner.flights.invalidated();
        crate::scope::forget_keys(self, keys);
        let entries: Vec<String> = keys.iter().map(|k| self.inner.layout.entry(k)).collect();
        let n = self.call(label, self.inner.store.del(&entries)).await;
        if let Some(tier) = self.near_tier() {
            keys.iter().for_each(|k| tier.invalidate_key(k));
        }
        let n = n?;
        self.durable(label, &entries).await?;
        Ok(n)
    }

    /// Gives each tag a new version, after a new value of the namespace's
    /// tag epoch: a load whose tags come from its result (known only after
    /// it) and that started before this call sees the epoch move and does
    /// not store (see `load_leased`).
    pub(crate) async fn drop_tags(&self, label: &str, tags: &[String]) -> Result<(), CacheError> {
        self.inner.flights.invalidated();
        crate::scope::forget_all();
        if tags.is_empty() {
            return Ok(());
        }
        let layout = &self.inner.layout;
        let keys: Vec<String> = std::iter::once(layout.epoch())
            .chain(tags.iter().map(|t| layout.tag(t)))
            .collect();
        let r = self.call(label, self.inner.store.bump_tags(&keys)).await;
        if let Some(tier) = self.near_tier() {
            // The epoch (first) is never near-cached.
            keys[1..].iter().for_each(|k| tier.invalidate_tag(k));
        }
        r?;
        self.durable(label, &keys).await
    }

    /// With durable invalidation: waits for the replicas of the nodes
    /// holding `keys` to acknowledge the writes just made.
    async fn durable(&self, label: &str, keys: &[String]) -> Result<(), CacheError> {
        let Some((wanted, timeout)) = self.inner.durable else {
            return Ok(());
        };
        let wait = self.inner.store.wait_replicas(keys, wanted, timeout);
        let acked = self.call_unbounded(label, wait).await?;
        if acked < wanted {
            return Err(CacheError::NotDurable {
                key: label.to_owned(),
                acked,
                wanted,
            });
        }
        Ok(())
    }

    /// Revokes leases, then deletes entries, matching a glob.
    pub(crate) async fn drop_pattern(&self, glob: &str) -> Result<u64, CacheError> {
        let pattern = self.inner.layout.entry_pattern(glob).map_err(CacheError::Config)?;
        self.inner.flights.invalidated();
        crate::scope::forget_all();
        let r = self
            .call_unbounded(glob, self.inner.store.del_pattern(&pattern, self.inner.scan_batch))
            .await;
        // Which near entries match is not worth working out: all go.
        if let Some(tier) = self.near_tier() {
            tier.clear();
        }
        r
    }

    /// Deletes every key of the namespace (entries, leases, tag versions,
    /// and the previous layout's keys); counts entries.
    pub(crate) async fn drop_all(&self) -> Result<u64, CacheError> {
        self.inner.flights.invalidated();
        crate::scope::forget_all();
        let r = self
            .call_unbounded("*", self.inner.store.clear(&self.inner.layout, self.inner.scan_batch))
            .await;
        if let Some(tier) = self.near_tier() {
            tier.clear();
        }
        r
    }

    /// This process's near tier forgets `key` (after a write of it here).
    pub(crate) fn near_forget_key(&self, key: &str) {
        if let Some(tier) = self.near_tier() {
            tier.invalidate_key(key);
        }
    }
}
