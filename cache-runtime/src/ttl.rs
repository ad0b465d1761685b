//! Time-to-live constants and jitter.

use std::time::Duration;

/// Five standard lifetimes, as `Duration` constants (what `#[cached(ttl =
/// SHORT)]` and friends name).
///
/// ```
/// use cache_runtime::Ttl;
/// assert_eq!(Ttl::LONG.as_secs(), 1800);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Ttl;

impl Ttl {
    /// 60 s: frequently changing data.
    pub const SHORT: Duration = Duration::from_secs(60);
    /// 300 s: dashboards, moderately changing data. The default.
    pub const MEDIUM: Duration = Duration::from_secs(300);
    /// 1800 s: courses, profiles, rarely changing data.
    pub const LONG: Duration = Duration::from_secs(1800);
    /// 3600 s: analytics, static data.
    pub const VERY_LONG: Duration = Duration::from_secs(3600);
    /// 86400 s: very static data.
    pub const DAY: Duration = Duration::from_secs(86_400);
}

/// Shortens `ttl` by a random amount of at most `fraction` of it, so entries
/// written together do not expire together. Never longer than `ttl`, never
/// below one millisecond.
pub(crate) fn jittered(ttl: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 || ttl.is_zero() {
        return ttl;
    }
    let unit = (random_u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    let cut = ttl.mul_f64(fraction * unit);
    ttl.saturating_sub(cut).max(Duration::from_millis(1))
}

/// A random `u64` from the standard library's per-process random hash keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local!(static STATE: RandomState = RandomState::new());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    STATE.with(|s| s.hash_one(n))
}

/// The longest TTL the cache stores: ten years. Longer ones (up to
/// `Duration::MAX`) are shortened to it, on every backend alike.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A TTL as stored: at least one millisecond, at most [`MAX_TTL`].
pub(crate) fn clamp(ttl: Duration) -> Duration {
    ttl.clamp(Duration::from_millis(1), MAX_TTL)
}

/// Redis' expiry resolution is one millisecond: round up so a sub-ms TTL
/// still expires rather than being rejected.
#[cfg(feature = "redis")]
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    let ms = clamp(ttl).as_millis() as u64;
    ms.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_fraction() {
        let ttl = Duration::from_secs(100);
        for _ in 0..1000 {
            let j = jittered(ttl, 0.1);
            assert!(j <= ttl && j >= Duration::from_secs(90), "{j:?}");
        }
        assert_eq!(jittered(ttl, 0.0), ttl);
    }

    #[test]
    fn jitter_spreads_values() {
        let ttl = Duration::from_secs(100);
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| jittered(ttl, 0.1)).collect();
        assert!(distinct.len() > 40);
    }
}
