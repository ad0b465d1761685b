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
/// assert_eq!(p.get_ttl(), Ttl::LONG);
/// assert_eq!(p.get_tags(), ["courses", "teacher:7"]);
/// let q: Policy = Ttl::SHORT.into();
/// assert!(q.get_tags().is_empty());
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

    /// The TTL.
    pub fn get_ttl(&self) -> Duration {
        self.ttl
    }

    /// The tags.
    pub fn get_tags(&self) -> &[String] {
        &self.tags
    }

    /// The negative TTL, if `None` is cached.
    pub fn get_negative_ttl(&self) -> Option<Duration> {
        self.negative_ttl
    }
}

impl From<Duration> for Policy {
    fn from(ttl: Duration) -> Self {
        Policy::ttl(ttl)
    }
}
