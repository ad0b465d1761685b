//! How long, and under which tags, a loaded value is kept.

use std::time::Duration;

use crate::Ttl;

/// The storage policy of one `get_or_load` call.
///
/// A bare `Duration` converts into a policy with that TTL and no tags.
///
/// ```
/// use cache_runtime::{Policy, Ttl};
/// use std::time::Duration;
/// let p = Policy::ttl(Ttl::LONG).tags(["courses", "teacher:7"]).negative_ttl(Duration::from_secs(30));
/// assert_eq!(p.time_to_live(), Ttl::LONG);
/// assert_eq!(p.tag_list(), ["courses", "teacher:7"]);
/// assert_eq!(p.negative_time_to_live(), Some(Duration::from_secs(30)));
/// let q: Policy = Ttl::SHORT.into();
/// assert!(q.tag_list().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) ttl: Duration,
    pub(crate) tags: Vec<String>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) name: Option<&'static str>,
    /// The call site (`#[cached]`), which remembers the function's counters.
    pub(crate) site: Option<&'static crate::stats::Site>,
    /// XFetch's β; 0 turns early refresh off.
    pub(crate) early_refresh: f64,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
    /// Tags are also computed from the loaded value (`get_or_load_tagged`
    /// and friends): the fill reads the tag epoch before it loads.
    pub(crate) result_tagged: bool,
    /// Served from the near cache when the cache has one.
    pub(crate) local: bool,
}

/// The default β of probabilistic early refresh.
pub const DEFAULT_EARLY_REFRESH: f64 = 1.0;

impl Default for Policy {
    fn default() -> Self {
        Policy::ttl(Ttl::MEDIUM)
    }
}

impl Policy {
    /// A policy with this TTL.
    pub fn ttl(ttl: Duration) -> Self {
        Policy {
            ttl,
            tags: Vec::new(),
            negative_ttl: None,
            name: None,
            site: None,
            early_refresh: DEFAULT_EARLY_REFRESH,
            stale_while_revalidate: None,
            stale_if_error: None,
            result_tagged: false,
            local: true,
        }
    }

    /// Tags attached to the stored entry: invalidating any of them drops it.
    /// Tags are written as they are; escape interpolated parts with
    /// [`keys::escape`](crate::keys::escape).
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// For [`Cache::get_or_load_optional`](crate::Cache::get_or_load_optional):
    /// also cache `None`, for this long. Without it, `None` is not cached.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// A name under which [`Stats::per_function`](crate::Stats::per_function)
    /// counts the calls of this policy (`#[cached]` sets the function's path).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Probabilistic early refresh (XFetch: Vattani, Chierichetti and
    /// Lowenstein, VLDB 2015): a hit that finds its entry close to expiry
    /// reloads it early with a probability that grows as expiry nears,
    /// `now − load_time · β · ln(rand) ≥ expiry`, so a hot key is reloaded
    /// by one caller before it expires instead of by a crowd after. The fill
    /// lease makes one process reload; every other caller keeps getting the
    /// cached value. β = 1 is the default (the paper's optimum for the
    /// expected recomputation cost); larger refreshes earlier, 0 turns it
    /// off. A negative or non-finite β is treated as 0.
    ///
    /// The caller that reloads waits for its loader (loaders may borrow
    /// from their caller, so they cannot run in a background task).
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = if beta.is_finite() && beta > 0.0 { beta } else { 0.0 };
        self
    }

    /// Stale-while-revalidate: for `d` after an entry expires, callers are
    /// answered with the old value while one caller (across processes: the
    /// one that takes the fill lease) reloads it. Never serves a value whose
    /// key or tag was invalidated: invalidation removes the entry, or makes
    /// it stale by tag, which no read serves.
    pub fn stale_while_revalidate(mut self, d: Duration) -> Self {
        self.stale_while_revalidate = Some(d);
        self
    }

    /// Stale-if-error: when the loader fails, answer with the expired value
    /// if it expired at most `d` ago (and was not invalidated), instead of
    /// the error.
    pub fn stale_if_error(mut self, d: Duration) -> Self {
        self.stale_if_error = Some(d);
        self
    }

    /// Whether values of this policy may be kept in the cache's near tier
    /// ([`CacheBuilder::near_cache`](crate::CacheBuilder::near_cache); on by
    /// default). `local(false)` makes every read of it go to Redis: for
    /// values that must reflect an invalidation at once in every process,
    /// not within the near cache's staleness bound. `#[cached(local = false)]`
    /// sets it.
    pub fn local(mut self, on: bool) -> Self {
        self.local = on;
        self
    }

    // Getters: `ttl`, `tags` and `negative_ttl` are the constructor and the
    // builder steps, so the getters take moka's `Policy` names
    // (`time_to_live`) rather than a `get_` prefix.

    /// The TTL (set by [`Policy::ttl`]).
    pub fn time_to_live(&self) -> Duration {
        self.ttl
    }

    /// The tags (added by [`Policy::tags`]).
    pub fn tag_list(&self) -> &[String] {
        &self.tags
    }

    /// The negative TTL (set by [`Policy::negative_ttl`]), if `None` is
    /// cached.
    pub fn negative_time_to_live(&self) -> Option<Duration> {
        self.negative_ttl
    }

    /// Whether the near tier may serve it (set by [`Policy::local`]).
    pub fn is_local(&self) -> bool {
        self.local
    }
}

impl From<Duration> for Policy {
    fn from(ttl: Duration) -> Self {
        Policy::ttl(ttl)
    }
}
