//! Every key shape the cache writes, in one place.
//!
//! ```text
//! entry        {ns:KEY}
//! its lease    {ns:KEY}:lease
//! tag version  {ns#tag:TAG}
//! tag epoch    {ns#epoch}
//! ```
//!
//! * The namespace and the key form one Redis Cluster hash tag (`{…}`), so
//!   an entry and its lease always live in one slot and the scripts that
//!   touch both are cluster-safe. The hash tag is never empty: the namespace
//!   is non-empty and holds no braces (checked at `build()`).
//! * The four shapes are disjoint whatever `KEY` and `TAG` hold: entries
//!   start `{ns:` and end with `}`, leases start `{ns:` and end `:lease`,
//!   tag versions start `{ns#tag:`, and the tag epoch is exactly
//!   `{ns#epoch}` (namespaces hold only letters, digits, `_`, `-` and `.`).
//!   No key, however it is spelled, can reach the cache's bookkeeping.
//! * The tag epoch is one random value per namespace that every tag
//!   invalidation changes before it changes the tags' versions; a load whose
//!   tags are computed from its result ("result tags", known only after the
//!   load) stores only if the epoch did not move while it ran (see
//!   `cache/aside.rs`, `load_leased`). It lives and is lost like a tag
//!   version: a missing epoch never matches the one a load started with.
//! * Layout 1 (before this one) wrote `ns:KEY`, `ns:__lease:KEY` and
//!   `ns:__tag:TAG`; nothing reads those any more, and `Invalidator::all`
//!   removes them too.

/// Names keys for one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    ns: String,
}

/// Suffix of a lease key, after its entry key.
const LEASE_SUFFIX: &str = ":lease";

impl Layout {
    pub(crate) fn new(ns: &str) -> Self {
        Layout { ns: ns.to_owned() }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.ns
    }

    /// `{ns:KEY}`
    pub(crate) fn entry(&self, key: &str) -> String {
        let mut s = String::with_capacity(self.ns.len() + key.len() + 3);
        s.push('{');
        s.push_str(&self.ns);
        s.push(':');
        s.push_str(key);
        s.push('}');
        s
    }

    /// The lease of an entry key: `{ns:KEY}:lease`.
    pub(crate) fn lease_of(entry: &str) -> String {
        let mut s = String::with_capacity(entry.len() + LEASE_SUFFIX.len());
        s.push_str(entry);
        s.push_str(LEASE_SUFFIX);
        s
    }

    /// `{ns#tag:TAG}`
    pub(crate) fn tag(&self, tag: &str) -> String {
        format!("{{{}#tag:{tag}}}", self.ns)
    }

    /// `{ns#epoch}`: the namespace's tag epoch.
    pub(crate) fn epoch(&self) -> String {
        format!("{{{}#epoch}}", self.ns)
    }

    /// The glob matching the entries whose keys match the user's glob.
    /// Rejects malformed globs (an unterminated `[` or a trailing `\`),
    /// which could otherwise reach past the closing brace into leases.
    pub(crate) fn entry_pattern(&self, glob: &str) -> Result<String, String> {
        check_glob(glob)?;
        Ok(self.entry(glob))
    }

    /// The glob matching the leases of the entries `entry_pattern` matches.
    pub(crate) fn lease_pattern(entry_pattern: &str) -> String {
        Layout::lease_of(entry_pattern)
    }

    /// Globs matching every key of this namespace, in an order safe for
    /// invalidation: leases first (so no load in flight can store), then
    /// entries and tag versions, then the previous layout's keys.
    #[cfg(feature = "redis")]
    pub(crate) fn namespace_patterns(&self) -> [String; 3] {
        [
            format!("{{{}:*}}{LEASE_SUFFIX}", self.ns),
            format!("{{{}[:#]*", self.ns),
            format!("{}:*", self.ns),
        ]
    }
}

/// A glob is well-formed here when it cannot reach past the closing brace
/// the layout puts after it: every class closed, no trailing `\`.
fn check_glob(glob: &str) -> Result<(), String> {
    if crate::glob::is_self_contained(glob.as_bytes()) {
        Ok(())
    } else {
        Err(format!(
            "pattern {glob:?} is malformed: an unterminated `[` class (note that `[a-]` is a range up to `]`) or a trailing `\\`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_disjoint_and_share_a_slot() {
        let l = Layout::new("ns");
        assert_eq!(l.entry("course:1"), "{ns:course:1}");
        assert_eq!(Layout::lease_of(&l.entry("course:1")), "{ns:course:1}:lease");
        assert_eq!(l.tag("courses"), "{ns#tag:courses}");
        assert_eq!(l.epoch(), "{ns#epoch}");
        // No entry, lease or tag spells the epoch.
        assert_ne!(l.entry("#epoch"), l.epoch());
        assert!(!l.entry("x").starts_with("{ns#"));
        assert!(l.tag("epoch").starts_with("{ns#tag:"));
        assert_ne!(l.tag(""), l.epoch());
        // A key spelling a lease or a tag stays an entry.
        let forged = l.entry("x}:lease");
        assert!(forged.ends_with('}'));
        assert_ne!(forged, Layout::lease_of(&l.entry("x")));
        assert!(!l.entry("#tag:courses").starts_with("{ns#"));
        // The empty key still has a non-empty hash tag.
        assert_eq!(l.entry(""), "{ns:}");
    }

    #[test]
    fn malformed_globs_are_refused() {
        let l = Layout::new("ns");
        assert_eq!(l.entry_pattern("course:*").unwrap(), "{ns:course:*}");
        assert!(l.entry_pattern("a[b]*").is_ok());
        assert!(l.entry_pattern("a\\*").is_ok());
        for bad in ["*[e", "a\\", "[^", "[a\\", "*[a-]*"] {
            assert!(l.entry_pattern(bad).is_err(), "{bad}");
        }
    }
}
