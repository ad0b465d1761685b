//! A lock-free log-linear latency histogram: 16 sub-buckets per power of
//! two (at most 6.25% relative error), values in microseconds, from 0 to
//! about 2^40 µs. Recording is one atomic add; percentiles are read from a
//! snapshot of the counts.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS; // 16
const LINEAR: u64 = 2 * SUB; // values below 32 get a bucket each
const MAX_EXP: u32 = 40;
const BUCKETS: usize = (LINEAR + (MAX_EXP as u64 - SUB_BITS as u64) * SUB) as usize;

/// Counts of values per bucket, plus their count, sum and maximum.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    // v >= 32: exponent e >= 5; the SUB_BITS bits after the leading one.
    let e = 63 - v.leading_zeros();
    let e = e.min(MAX_EXP - 1);
    let v = v.min((1u64 << (e + 1)) - 1);
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (LINEAR + (u64::from(e) - u64::from(SUB_BITS) - 1) * SUB + sub) as usize
}

/// The smallest and largest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, i);
    }
    let e = (i - LINEAR) / SUB + u64::from(SUB_BITS) + 1;
    let sub = (i - LINEAR) % SUB;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let low = (1u64 << e) + sub * width;
    (low, low + width - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one value (microseconds).
    pub fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(us, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            count: self.count.load(Relaxed),
            sum: self.sum.load(Relaxed),
            max: self.max.load(Relaxed),
        }
    }
}

/// The counts of a [`Histogram`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    buckets: Vec<u64>,
    /// Values recorded.
    pub count: u64,
    /// Their sum (µs).
    pub sum: u64,
    /// The largest (µs).
    pub max: u64,
}

impl Snapshot {
    /// The value at quantile `q` (0..=1) in µs: the middle of its bucket,
    /// never above the maximum, the maximum itself for the last rank; 0 when
    /// empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }

    /// The mean (µs), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 20, (1 << 30) + 12345, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} → {i}");
            assert!(i >= last, "index goes backwards at {v}");
            last = i;
            let (lo, hi) = bounds(i);
            if v < 1 << MAX_EXP {
                assert!(lo <= v && v <= hi, "{v} outside bucket {i} = {lo}..={hi}");
                assert!((hi - lo) as f64 <= lo as f64 / 16.0 + 1.0, "bucket {i} too wide");
            }
        }
    }

    #[test]
    fn quantiles_within_the_bucket_error() {
        let h = Histogram::new();
        for v in 1..=10_000 {
            h.record(v);
        }
        let s = h.snapshot();
        for (q, want) in [(0.5, 5_000.0), (0.9, 9_000.0), (0.99, 9_900.0)] {
            let got = s.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.07, "q{q}: {got} vs {want}");
        }
        assert_eq!(s.quantile(1.0), 10_000);
        assert_eq!(s.count, 10_000);
        assert_eq!(Histogram::new().snapshot().quantile(0.5), 0);
    }
}
