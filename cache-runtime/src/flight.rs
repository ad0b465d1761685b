//! Single-flight: concurrent misses of one key in this process share one
//! loader run.
//!
//! One map from entry key to a `watch` channel. The first caller becomes the
//! leader and holds the sender; later callers wait on a receiver. The leader
//! publishes the encoded value (so waiters need no `Clone` of `T`), or
//! `Retry`; if the leader's future is dropped, the sender drops with it and
//! every waiter wakes up to retry, one of them becoming the new leader.
//!
//! **Which waiters may take the leader's value.** Every waiter joins with a
//! sequence number, after its own read of the store missed. A value is
//! published with the highest sequence number it is certified for: waiters
//! that joined before the load started (their request started before the
//! source was read), or before a store operation that proved no invalidation
//! happened since the lease was taken. A waiter that joined later goes round
//! again and reads the store, so an invalidation made by any process before
//! that waiter started can never hand it an older value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Pending,
    /// The encoded value, for waiters whose sequence number is at most
    /// `upto`.
    Value {
        bytes: Arc<[u8]>,
        upto: u64,
    },
    /// The loader failed, or the value could not be certified: waiters retry.
    Retry,
}

/// Every waiter of a flight may take the value (no cross-process question
/// arises, e.g. the store is unreachable).
pub(crate) const ALL: u64 = u64::MAX;

#[derive(Debug)]
struct Flight {
    /// The invalidation epoch (of this cache) the flight started in.
    epoch: u64,
    rx: watch::Receiver<Outcome>,
    joined: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Flight>>,
    /// Bumped by every invalidation made through this cache: a caller that
    /// arrives after one never joins a flight that started before it, even
    /// when the store is unreachable.
    epoch: AtomicU64,
}

pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Waiter(Waiter),
}

/// A caller waiting for a leader.
pub(crate) struct Waiter {
    rx: watch::Receiver<Outcome>,
    seq: u64,
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(f) = map.get(key) {
            // A flight whose leader is gone (sender dropped) is stale; the
            // leader's guard removes it, but be robust to the window. A
            // flight that started before an invalidation is not joined, nor
            // one whose outcome is already out (a late joiner could not take
            // it, and would only spin until the leader's guard drops).
            if f.epoch == epoch && f.rx.has_changed().is_ok() && matches!(*f.rx.borrow(), Outcome::Pending) {
                let seq = f.joined.fetch_add(1, Ordering::SeqCst) + 1;
                return Role::Waiter(Waiter { rx: f.rx.clone(), seq });
            }
        }
        let (tx, rx) = watch::channel(Outcome::Pending);
        let joined = Arc::new(AtomicU64::new(0));
        map.insert(
            key.to_owned(),
            Flight {
                epoch,
                rx: rx.clone(),
                joined: joined.clone(),
            },
        );
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            tx,
            rx,
            joined,
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
    joined: Arc<AtomicU64>,
}

impl Leader<'_> {
    /// The sequence number of the last waiter that has joined so far. Taken
    /// just before an operation whose result certifies the value: every
    /// waiter up to it read the store before that operation was sent.
    pub(crate) fn seal(&self) -> u64 {
        self.joined.load(Ordering::SeqCst)
    }

    /// Hands the outcome to every waiter (and to callers that join before
    /// the guard is dropped, who will not be covered by `upto` and retry).
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.tx.send_replace(outcome);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&self.key).is_some_and(|f| self.rx.same_channel(&f.rx)) {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader. `None` when the leader failed, went away, or its
/// value is not certified for this waiter: go round again.
pub(crate) async fn wait(waiter: Waiter) -> Option<Arc<[u8]>> {
    let Waiter { mut rx, seq } = waiter;
    let outcome = rx.wait_for(|o| !matches!(o, Outcome::Pending)).await.ok()?.clone();
    match outcome {
        Outcome::Value { bytes, upto } if seq <= upto => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(upto: u64) -> Outcome {
        Outcome::Value {
            bytes: Arc::from(&b"v"[..]),
            upto,
        }
    }

    #[tokio::test]
    async fn dropped_leader_wakes_waiters_and_frees_the_slot() {
        let f = Flights::default();
        let Role::Leader(leader) = f.join("k") else {
            panic!("first caller leads")
        };
        let Role::Waiter(w) = f.join("k") else {
            panic!("second caller waits")
        };
        drop(leader);
        assert!(wait(w).await.is_none());
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
    async fn only_waiters_sealed_before_the_certifying_step_get_the_value() {
        let f = Flights::default();
        let Role::Leader(leader) = f.join("k") else { panic!() };
        let Role::Waiter(early) = f.join("k") else { panic!() };
        let seal = leader.seal();
        let Role::Waiter(late) = f.join("k") else { panic!() };
        leader.publish(value(seal));
        assert_eq!(&*wait(early).await.unwrap(), b"v");
        assert!(wait(late).await.is_none(), "joined after the seal: must re-read");
        let Role::Leader(_next) = f.join("k") else {
            panic!("a flight whose outcome is out is not joined")
        };
    }

    #[tokio::test]
    async fn every_waiter_takes_a_value_for_all() {
        let f = Flights::default();
        let Role::Leader(leader) = f.join("k") else { panic!() };
        let Role::Waiter(a) = f.join("k") else { panic!() };
        let Role::Waiter(b) = f.join("k") else { panic!() };
        leader.publish(value(ALL));
        assert!(wait(a).await.is_some() && wait(b).await.is_some());
    }
}
