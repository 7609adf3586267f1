//! A fixed bucket histogram of durations in seconds, small enough to keep one per second.
//!
//! Buckets grow geometrically (×1.5 from 0.1 ms), so the relative error of a percentile is
//! bounded (about 25 %) from sub-millisecond to minutes, with 40 counters per second.

/// Number of buckets; the last one also takes everything above its bound.
pub(crate) const BUCKETS: usize = 40;
const FIRST_BOUND: f64 = 0.0001;
const RATIO: f64 = 1.5;

/// Upper bound (inclusive) of bucket `k`.
fn bound(k: usize) -> f64 {
    // k < BUCKETS = 40, so the cast cannot truncate.
    FIRST_BOUND * RATIO.powi(k as i32)
}

/// Per-bucket sample counts.
pub(crate) type Counts = [u32; BUCKETS];

/// The bucket a sample falls in: the first whose bound is at least `value`. Found from the
/// logarithm (every sample of every target goes through here), then checked against the
/// bounds themselves so rounding can never put a sample one bucket off.
pub(crate) fn bucket_of(value: f64) -> usize {
    if value.is_nan() || value <= FIRST_BOUND {
        return 0;
    }
    let guess = ((value / FIRST_BOUND).ln() / RATIO.ln()).ceil();
    if guess >= (BUCKETS - 1) as f64 {
        return if value <= bound(BUCKETS - 2) {
            BUCKETS - 2
        } else {
            BUCKETS - 1
        };
    }
    // 0 < guess < BUCKETS - 1 here, so the cast is exact.
    let mut k = guess as usize;
    while k > 0 && value <= bound(k - 1) {
        k -= 1;
    }
    while k < BUCKETS - 1 && value > bound(k) {
        k += 1;
    }
    k
}

/// The `q` quantile of the merged `counts`, interpolated linearly inside its bucket and
/// clamped to the observed `[min, max]` (exact at the extremes).
pub(crate) fn quantile(counts: &Counts, q: f64, min: f64, max: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0);
    let mut before = 0.0;
    for (k, &c) in counts.iter().enumerate() {
        let c = f64::from(c);
        if c > 0.0 && before + c >= rank {
            let lo = if k == 0 { 0.0 } else { bound(k - 1) };
            let hi = if k == BUCKETS - 1 {
                max.max(lo)
            } else {
                bound(k)
            };
            let v = lo + (hi - lo) * ((rank - before) / c);
            return Some(v.clamp(min, max));
        }
        before += c;
    }
    Some(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_extremes() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.0001), 0);
        assert_eq!(bucket_of(0.00011), 1);
        assert_eq!(bucket_of(1e9), BUCKETS - 1);
        // The same answer as a scan over the bounds, at and around every bound.
        let scan = |v: f64| {
            (0..BUCKETS - 1)
                .find(|&k| v <= bound(k))
                .unwrap_or(BUCKETS - 1)
        };
        for k in 0..BUCKETS {
            for v in [bound(k), bound(k) * (1.0 - 1e-12), bound(k) * (1.0 + 1e-12)] {
                assert_eq!(bucket_of(v), scan(v), "value {v}");
            }
        }
        for i in 0..10_000 {
            let v = f64::from(i) * 0.000_37;
            assert_eq!(bucket_of(v), scan(v), "value {v}");
        }
        let mut c = [0u32; BUCKETS];
        c[bucket_of(0.5)] += 1;
        assert_eq!(quantile(&c, 0.99, 0.5, 0.5), Some(0.5));
        assert_eq!(quantile(&[0; BUCKETS], 0.5, 0.0, 0.0), None);
    }
}
