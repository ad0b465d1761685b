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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) ttl: Duration,
    pub(crate) tags: Vec<String>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) name: Option<&'static str>,
}

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
}

impl From<Duration> for Policy {
    fn from(ttl: Duration) -> Self {
        Policy::ttl(ttl)
    }
}
