//! A circuit breaker: closed → open after repeated failures → one probe
//! after a cool-down → closed on success, open again on failure.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the circuit is open; 0 = closed.
    open_until: AtomicU64,
    probing: AtomicBool,
}

/// What a state change was, for logging and stats once per change.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Opened,
    Closed,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            epoch: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// May a call go to the backend now? While open, no; after the cool-down,
    /// exactly one caller gets through as the probe.
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Acquire);
        if until == 0 {
            return true;
        }
        if self.now_ms() < until {
            return false;
        }
        self.probing.compare_exchange(false, true, AcqRel, Acquire).is_ok()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Acquire) != 0
    }

    pub(crate) fn on_success(&self) -> Change {
        // Read before writing: on the hot path the count is already 0, and a
        // store on every call would bounce the cache line between cores.
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
        if self.open_until.load(Acquire) != 0 {
            self.open_until.store(0, Release);
            self.probing.store(false, Release);
            return Change::Closed;
        }
        Change::None
    }

    pub(crate) fn on_failure(&self) -> Change {
        if self.open_until.load(Acquire) != 0 {
            // A failed probe (or a call admitted before the circuit opened):
            // stay open for another cool-down.
            self.open_until
                .store(self.now_ms() + self.cooldown.as_millis() as u64, Release);
            self.probing.store(false, Release);
            return Change::None;
        }
        let n = self.consecutive_failures.fetch_add(1, AcqRel) + 1;
        if n >= self.threshold
            && self
                .open_until
                .compare_exchange(0, self.now_ms() + self.cooldown.as_millis() as u64, AcqRel, Acquire)
                .is_ok()
        {
            return Change::Opened;
        }
        Change::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let b = Breaker::new(3, Duration::from_millis(30));
        assert!(b.allow());
        assert_eq!(b.on_failure(), Change::None);
        assert_eq!(b.on_failure(), Change::None);
        assert_eq!(b.on_failure(), Change::Opened);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "probe after cool-down");
        assert!(!b.allow(), "only one probe");
        assert_eq!(b.on_failure(), Change::None);
        assert!(!b.allow(), "failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        assert_eq!(b.on_success(), Change::Closed);
        assert!(b.allow() && b.allow());
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(10));
        b.on_failure();
        b.on_success();
        assert_eq!(b.on_failure(), Change::None);
        assert!(b.allow());
    }
}
