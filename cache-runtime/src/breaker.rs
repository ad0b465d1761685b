//! A circuit breaker: closed → open after repeated failures → one probe
//! after a cool-down → closed on success, open again on failure.
//!
//! It always finds its way back: a probe that never reports (its caller was
//! cancelled, or panicked) is forgotten after another cool-down, and the
//! guard reports a cancelled probe at once (`probe_abandoned`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    epoch: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the circuit is open; 0 = closed.
    open_until: AtomicU64,
    /// When the current probe was let through (ms since `epoch`); 0 = none.
    probe_since: AtomicU64,
}

/// What a state change was, for logging and stats once per change.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Opened,
    Closed,
}

/// The breaker's answer to "may this call go to the backend?".
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Admit {
    /// Closed: go.
    Yes,
    /// Open, and this call is the one probe.
    Probe,
    /// Open: skip the backend.
    No,
}

impl Breaker {
    /// `cooldown` must fit in `u64` milliseconds (the builder checks it).
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown_ms: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX / 4).max(1),
            epoch: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_since: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// May a call go to the backend now? While open, no; after the cool-down,
    /// one caller at a time gets through as the probe.
    pub(crate) fn allow(&self) -> Admit {
        let until = self.open_until.load(Acquire);
        if until == 0 {
            return Admit::Yes;
        }
        let now = self.now_ms();
        if now < until {
            return Admit::No;
        }
        let since = self.probe_since.load(Acquire);
        // A probe older than a cool-down never reported: let another through.
        let free = since == 0 || now >= since.saturating_add(self.cooldown_ms);
        if free && self.probe_since.compare_exchange(since, now, AcqRel, Acquire).is_ok() {
            Admit::Probe
        } else {
            Admit::No
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Acquire) != 0
    }

    /// The backend answered (successfully, or with an error of the command
    /// rather than of the server).
    pub(crate) fn on_success(&self) -> Change {
        // Read before writing: on the hot path the count is already 0, and a
        // store on every call would bounce the cache line between cores.
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
        if self.open_until.load(Acquire) != 0 {
            self.open_until.store(0, Release);
            self.probe_since.store(0, Release);
            return Change::Closed;
        }
        Change::None
    }

    pub(crate) fn on_failure(&self) -> Change {
        let reopen = self.now_ms().saturating_add(self.cooldown_ms);
        if self.open_until.load(Acquire) != 0 {
            // A failed probe (or a call admitted before the circuit opened):
            // stay open for another cool-down.
            self.open_until.store(reopen, Release);
            self.probe_since.store(0, Release);
            return Change::None;
        }
        let n = self.consecutive_failures.fetch_add(1, AcqRel) + 1;
        if n >= self.threshold && self.open_until.compare_exchange(0, reopen, AcqRel, Acquire).is_ok() {
            return Change::Opened;
        }
        Change::None
    }

    /// The probe's caller went away before an answer: the next call probes.
    pub(crate) fn probe_abandoned(&self) {
        self.probe_since.store(0, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let b = Breaker::new(3, Duration::from_millis(30));
        assert_eq!(b.allow(), Admit::Yes);
        assert_eq!(b.on_failure(), Change::None);
        assert_eq!(b.on_failure(), Change::None);
        assert_eq!(b.on_failure(), Change::Opened);
        assert_eq!(b.allow(), Admit::No);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.allow(), Admit::Probe, "probe after cool-down");
        assert_eq!(b.allow(), Admit::No, "only one probe");
        assert_eq!(b.on_failure(), Change::None);
        assert_eq!(b.allow(), Admit::No, "failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.allow(), Admit::Probe);
        assert_eq!(b.on_success(), Change::Closed);
        assert_eq!(b.allow(), Admit::Yes);
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(10));
        b.on_failure();
        b.on_success();
        assert_eq!(b.on_failure(), Change::None);
        assert_eq!(b.allow(), Admit::Yes);
    }

    #[test]
    fn a_probe_that_never_reports_is_forgotten_after_a_cooldown() {
        let b = Breaker::new(1, Duration::from_millis(20));
        b.on_failure();
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(b.allow(), Admit::Probe);
        // Its caller vanished without on_success/on_failure.
        assert_eq!(b.allow(), Admit::No);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(
            b.allow(),
            Admit::Probe,
            "a lost probe must not keep the circuit open forever"
        );
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot_at_once() {
        let b = Breaker::new(1, Duration::from_millis(20));
        b.on_failure();
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(b.allow(), Admit::Probe);
        b.probe_abandoned();
        assert_eq!(b.allow(), Admit::Probe);
    }
}
