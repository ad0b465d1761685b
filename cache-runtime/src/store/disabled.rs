//! The store of [`Cache::disabled`](crate::Cache::disabled): it keeps
//! nothing. Reads miss, writes succeed without storing, invalidations find
//! nothing, and a counter is created at 0 every time.

use std::time::Duration;

use super::{Acquire, Acquired, Finish, KeyTtl, Layout, Raw, SResult};

#[derive(Debug, Default)]
pub(crate) struct DisabledStore;

impl DisabledStore {
    pub(crate) fn get(&self, _entry: &str) -> SResult<Option<Raw>> {
        Ok(None)
    }
    pub(crate) fn read(&self, _entry: &str, tags: &[String]) -> SResult<(Option<Raw>, Vec<Option<u64>>)> {
        Ok((None, vec![None; tags.len()]))
    }
    pub(crate) fn tag_versions(&self, tags: &[String]) -> SResult<Vec<Option<u64>>> {
        Ok(vec![None; tags.len()])
    }
    pub(crate) fn acquire(&self, req: &Acquire<'_>) -> SResult<Acquired> {
        Ok(Acquired {
            entry: None,
            versions: req.tags.iter().map(|_| super::new_version()).collect(),
            leased: true,
            holder: None,
        })
    }
    /// Never certifies: nothing was stored, so no waiter may rely on it.
    pub(crate) fn finish(&self, _req: &Finish<'_>) -> SResult<bool> {
        Ok(false)
    }
    pub(crate) fn ensure_tags(&self, tags: &[String], _tag_ttl: Duration) -> SResult<Vec<u64>> {
        Ok(tags.iter().map(|_| super::new_version()).collect())
    }
    /// A missing epoch: no load with result tags stores (none would anyway).
    pub(crate) fn ensure_tags_then_epoch(
        &self,
        tags: &[String],
        tag_ttl: Duration,
        _epoch: &str,
    ) -> SResult<(Vec<u64>, Option<u64>)> {
        Ok((self.ensure_tags(tags, tag_ttl)?, None))
    }
    pub(crate) fn set(&self, _entry: &str, _value: &[u8], _ttl: Duration) -> SResult<()> {
        Ok(())
    }
    pub(crate) fn del(&self, _entries: &[String]) -> SResult<u64> {
        Ok(0)
    }
    pub(crate) fn del_pattern(&self, _entry_pattern: &str, _batch: usize) -> SResult<u64> {
        Ok(0)
    }
    pub(crate) fn clear(&self, _layout: &Layout, _batch: usize) -> SResult<u64> {
        Ok(0)
    }
    pub(crate) fn bump_tags(&self, _tags: &[String]) -> SResult<()> {
        Ok(())
    }
    /// Nothing to replicate: trivially durable.
    pub(crate) fn wait_replicas(&self, _keys: &[String], replicas: u32, _timeout: Duration) -> SResult<u32> {
        Ok(replicas)
    }
    pub(crate) fn exists(&self, _entry: &str) -> SResult<bool> {
        Ok(false)
    }
    pub(crate) fn ttl(&self, _entry: &str) -> SResult<KeyTtl> {
        Ok(KeyTtl::Missing)
    }
    /// A counter that is never stored starts at 0 on every call.
    pub(crate) fn incr_by(&self, _entry: &str, by: i64) -> SResult<i64> {
        Ok(by)
    }
    pub(crate) fn expire(&self, _entry: &str, _ttl: Duration) -> SResult<bool> {
        Ok(false)
    }
}
