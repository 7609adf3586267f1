//! A log-linear latency histogram in microseconds: exact below 128 µs, then 64 buckets per
//! power of two (relative error under 1.6 %), fixed size, so `flotilla load` can keep one per
//! second and one for the whole run however many requests it sends.

/// Values below this are counted exactly.
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`].
const SUB: u64 = 64;
/// Enough buckets for any `u64` microseconds.
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB) as usize;

/// Latencies of one window.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

fn index(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - u64::from(us.leading_zeros()); // ≥ 7
    let mantissa = us >> (exp - 6); // 64..=127
    (LINEAR + (exp - 7) * SUB + (mantissa - SUB)) as usize
}

/// The middle of bucket `i`, in microseconds.
fn value(i: usize) -> f64 {
    let i = i as u64;
    if i < LINEAR {
        return i as f64;
    }
    let exp = (i - LINEAR) / SUB + 7;
    let mantissa = (i - LINEAR) % SUB + SUB;
    let width = 1u64 << (exp - 6);
    (mantissa * width) as f64 + (width as f64 - 1.0) / 2.0
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    /// Counts one latency.
    pub(crate) fn record(&mut self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// How many latencies were recorded.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile in milliseconds, `None` when empty.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(value(i).min(self.max as f64) / 1000.0);
            }
        }
        Some(self.max as f64 / 1000.0)
    }

    /// The largest latency in milliseconds, `None` when empty.
    pub(crate) fn max_ms(&self) -> Option<f64> {
        (self.total > 0).then(|| self.max as f64 / 1000.0)
    }

    /// Adds `other`'s counts.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_are_exact_then_within_two_percent() {
        assert_eq!(index(0), 0);
        assert_eq!(index(127), 127);
        assert_eq!(index(128), 128);
        assert!(index(u64::MAX) < BUCKETS);
        for us in [1u64, 99, 128, 1_000, 12_345, 1_000_000, 987_654_321] {
            let v = value(index(us));
            assert!(
                (v - us as f64).abs() <= us as f64 * 0.016 + 0.5,
                "{us} → {v}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((p50 - 50.0).abs() < 1.0, "{p50}");
        assert!((p99 - 99.0).abs() < 2.0, "{p99}");
        assert_eq!(h.max_ms(), Some(100.0));
        let mut all = Histogram::new();
        all.merge(&h);
        all.merge(&h);
        assert_eq!(all.count(), 200);
    }
}
