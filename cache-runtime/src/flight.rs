//! Single-flight: concurrent misses of one key in this process share one
//! loader run.
//!
//! One map from full key to a `watch` channel. The first caller becomes the
//! leader and holds the sender; later callers wait on a receiver. The leader
//! publishes the encoded value (so waiters need no `Clone` of `T`), or
//! `Failed`; if the leader's future is dropped, the sender drops with it and
//! every waiter wakes up to retry, one of them becoming the new leader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Pending,
    /// The encoded value, as stored.
    Value(Arc<[u8]>),
    /// The loader failed, or the value could not be encoded: waiters retry.
    Failed,
}

#[derive(Debug, Default)]
pub(crate) struct Flights {
    /// Full key → the running flight and the invalidation epoch it started in.
    map: Mutex<HashMap<String, (u64, watch::Receiver<Outcome>)>>,
    /// Bumped by every invalidation made through this cache: a caller that
    /// arrives after an invalidation must not receive the result of a load
    /// that started before it, so it starts a flight of its own.
    epoch: AtomicU64,
}

pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Waiter(watch::Receiver<Outcome>),
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some((started, rx)) = map.get(key) {
            // A flight whose leader is gone (sender dropped) is stale; the
            // leader's guard removes it, but be robust to the window. A
            // flight that started before an invalidation is not joined.
            if *started == epoch && rx.has_changed().is_ok() {
                return Role::Waiter(rx.clone());
            }
        }
        let (tx, rx) = watch::channel(Outcome::Pending);
        map.insert(key.to_owned(), (epoch, rx.clone()));
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            tx,
            rx,
        })
    }

    /// Called before every invalidation: later callers start new flights.
    pub(crate) fn invalidated(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// The leader's guard: publishes the outcome, and removes the flight when
/// dropped (completed or cancelled).
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    tx: watch::Sender<Outcome>,
    /// To recognise our own entry in the map.
    rx: watch::Receiver<Outcome>,
}

impl Leader<'_> {
    /// Hands the outcome to every waiter (and to callers that join before the
    /// guard is dropped).
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.tx.send_replace(outcome);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&self.key).is_some_and(|(_, rx)| self.rx.same_channel(rx)) {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader. `None` when the leader failed or went away: retry.
pub(crate) async fn wait(mut rx: watch::Receiver<Outcome>) -> Option<Arc<[u8]>> {
    let outcome = rx.wait_for(|o| !matches!(o, Outcome::Pending)).await.ok()?.clone();
    match outcome {
        Outcome::Value(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropped_leader_wakes_waiters_and_frees_the_slot() {
        let f = Flights::default();
        let leader = match f.join("k") {
            Role::Leader(l) => l,
            Role::Waiter(_) => panic!("first caller leads"),
        };
        let rx = match f.join("k") {
            Role::Waiter(rx) => rx,
            Role::Leader(_) => panic!("second caller waits"),
        };
        drop(leader);
        assert!(wait(rx).await.is_none());
        assert_eq!(f.len(), 0);
        assert!(matches!(f.join("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn callers_after_an_invalidation_do_not_join_older_flights() {
        let f = Flights::default();
        let Role::Leader(old) = f.join("k") else { panic!() };
        f.invalidated();
        let Role::Leader(new) = f.join("k") else {
            panic!("must not join the pre-invalidation flight")
        };
        assert!(matches!(f.join("k"), Role::Waiter(_)), "joins the new flight");
        drop(old);
        assert!(
            matches!(f.join("k"), Role::Waiter(_)),
            "the old leader's exit leaves the new flight in place"
        );
        drop(new);
        assert_eq!(f.len(), 0);
    }

    #[tokio::test]
    async fn published_value_reaches_late_joiners() {
        let f = Flights::default();
        let Role::Leader(leader) = f.join("k") else { panic!() };
        leader.publish(Outcome::Value(Arc::from(&b"v"[..])));
        let Role::Waiter(rx) = f.join("k") else { panic!() };
        assert_eq!(&*wait(rx).await.unwrap(), b"v");
    }
}
