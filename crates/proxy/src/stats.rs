//! Counters and latency histograms of the data plane, feeding the metrics of the contract §3.
//!
//! Everything on the request path is a relaxed atomic add: no lock, no allocation. The runtime's
//! metrics collector reads cumulative snapshots once per second and takes differences for
//! per-second windows ([`HistogramSnapshot::since`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

/// Linear sub-buckets per power of two (2^3 = 8): every bucket is at most 12.5 % wide, so a
/// quantile read from it is within about 6 % of the truth.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Largest power of two tracked (2^40 µs ≈ 12.7 days); longer durations land in the last bucket.
const MAX_EXP: u32 = 40;
/// Number of buckets: values 0..8 one each, then 8 per power of two up to 2^MAX_EXP.
pub const HISTOGRAM_BUCKETS: usize = ((MAX_EXP - SUB_BITS + 2) * SUB as u32) as usize;

/// The bucket of a value in microseconds (log-linear, like HdrHistogram with 3 bits).
fn bucket_of(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // floor(log2 us) >= SUB_BITS
    if exp > MAX_EXP {
        return HISTOGRAM_BUCKETS - 1;
    }
    let shift = exp - SUB_BITS;
    let mantissa = us >> shift; // in SUB..2*SUB
    ((shift as u64 + 1) * SUB + (mantissa - SUB)) as usize
}

/// Lower (inclusive) and upper (exclusive) bound of a bucket, in microseconds.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < SUB {
        return (i, i + 1);
    }
    let shift = i / SUB - 1;
    let mantissa = i % SUB + SUB;
    (mantissa << shift, (mantissa + 1) << shift)
}

/// A latency histogram that many tasks record into at once.
///
/// Fixed log-linear buckets of microseconds, each an atomic counter: recording is two relaxed
/// atomic adds (bucket and sum), so it can sit on every request's path. Read it with
/// [`Histogram::snapshot`].
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..HISTOGRAM_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram")
            .field("count", &s.count())
            .field("p50", &s.quantile(0.5))
            .finish()
    }
}

impl Histogram {
    /// Count one observation.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The cumulative counts so far. Buckets are read one by one while others record, so a
    /// snapshot may be off by the few observations made during the read; never torn otherwise.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of a [`Histogram`], cumulative since the histogram was created.
///
/// Subtract an earlier snapshot ([`HistogramSnapshot::since`]) to get one period's window, add
/// targets together ([`HistogramSnapshot::merge`]) to get a target group's.
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    buckets: Vec<u64>,
    sum_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            buckets: vec![0; HISTOGRAM_BUCKETS],
            sum_us: 0,
        }
    }
}

impl std::fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

impl HistogramSnapshot {
    /// Number of observations (`sample_count`).
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of all observations (`sum`), exact to the microsecond.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Average observation (`average`); `None` without observations.
    pub fn mean(&self) -> Option<Duration> {
        let n = self.count();
        (n > 0).then(|| Duration::from_micros(self.sum_us / n))
    }

    /// The `q` quantile (0.0–1.0, e.g. 0.99 for `p99`), interpolated inside its bucket; `None`
    /// without observations. Accurate to the bucket width (≤ 12.5 %).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted observation, 1-based: the smallest r with r >= q * n.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if seen + c >= rank {
                let (lo, hi) = bucket_bounds(i);
                // Spread the bucket's observations evenly over its width.
                let within = (rank - seen) as f64 / c as f64;
                let us = lo as f64 + within * (hi - lo) as f64;
                return Some(Duration::from_micros(us.min(hi as f64 - 1.0) as u64));
            }
            seen += c;
        }
        None
    }

    /// The non-empty buckets, lowest first, as (lower bound, upper bound, observations): how
    /// the runtime hands one period's distribution over to the metrics store.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, Duration, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let (lo, hi) = bucket_bounds(i);
                (Duration::from_micros(lo), Duration::from_micros(hi), *c)
            })
    }

    /// Lower bound of the smallest observation's bucket (`minimum`, to bucket accuracy).
    pub fn min(&self) -> Option<Duration> {
        let i = self.buckets.iter().position(|&c| c > 0)?;
        Some(Duration::from_micros(bucket_bounds(i).0))
    }

    /// Upper bound of the largest observation's bucket (`maximum`, to bucket accuracy).
    pub fn max(&self) -> Option<Duration> {
        let i = self.buckets.iter().rposition(|&c| c > 0)?;
        Some(Duration::from_micros(bucket_bounds(i).1 - 1))
    }

    /// The observations made after `earlier` (a snapshot of the same histogram taken before
    /// this one): one period's window out of two cumulative readings.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    /// Add `other`'s observations to this one (e.g. every target of a group into the group).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }
}

/// What the request path counts per target, beside the in-flight and request counters of the
/// target itself. Cumulative; read through [`crate::TargetGroup::stats`].
#[derive(Debug, Default)]
pub(crate) struct TargetMetrics {
    /// Seconds from sending a request to the target until its response headers
    /// (`target_response_time`).
    pub(crate) response_time: Histogram,
    /// Responses by status class, index 0 = 1xx … 4 = 5xx (`http_target_5xx_count` and kin).
    pub(crate) responses: [AtomicU64; 5],
    /// TCP flows opened to the target by network load balancer listeners (`new_flow_count`).
    pub(crate) flows: AtomicU64,
}

impl TargetMetrics {
    /// A response's headers arrived from the target `elapsed` after the request was sent.
    pub(crate) fn response(&self, status: StatusCode, elapsed: Duration) {
        self.response_time.record(elapsed);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn responses_snapshot(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }
}

/// Counters of one listener, updated lock-free on the request path and read by the runtime for
/// `request_count`, `http_elb_5xx_count`, `http_target_5xx_count`, `active_connections` and
/// `new_connections` at load-balancer scope.
///
/// It also carries the listener's access log, when one is configured
/// ([`ListenerStats::set_access_log`]), so every listener's observers travel together.
#[derive(Debug, Default)]
pub struct ListenerStats {
    requests: AtomicU64,
    elb_4xx: AtomicU64,
    elb_5xx: AtomicU64,
    target_5xx: AtomicU64,
    active_connections: AtomicU64,
    connections: AtomicU64,
    processed_bytes: AtomicU64,
    tcp_elb_resets: AtomicU64,
    access_log: std::sync::OnceLock<crate::access_log::AccessLog>,
}

/// A copy of a listener's counters at one moment; cumulative except `active_connections`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStatsSnapshot {
    /// Requests routed by the listener (`request_count` at load-balancer scope).
    pub requests: u64,
    /// 4xx answers generated by the load balancer.
    pub elb_4xx: u64,
    /// 5xx answers generated by the load balancer (`http_elb_5xx_count`).
    pub elb_5xx: u64,
    /// 5xx answers passed through from targets (`http_target_5xx_count`).
    pub target_5xx: u64,
    /// Client connections open now (`active_connections`).
    pub active_connections: u64,
    /// Client connections accepted since start (`new_connections`, by difference).
    pub new_connections: u64,
    /// Bytes carried both ways by TCP listeners (AWS `ProcessedBytes`).
    pub processed_bytes: u64,
    /// TCP connections the load balancer closed because no target could take them
    /// (AWS `TCP_ELB_Reset_Count`).
    pub tcp_elb_resets: u64,
}

impl ListenerStats {
    /// Requests routed by this listener (requests hyper rejects as malformed are not counted).
    pub fn requests_total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// 4xx answers generated by the load balancer (fixed responses and broken client uploads).
    pub fn elb_4xx_total(&self) -> u64 {
        self.elb_4xx.load(Ordering::Relaxed)
    }

    /// 5xx answers generated by the load balancer (502, 503, 504, and 5xx fixed responses).
    pub fn elb_5xx_total(&self) -> u64 {
        self.elb_5xx.load(Ordering::Relaxed)
    }

    /// 5xx answers that came from targets and were passed through.
    pub fn target_5xx_total(&self) -> u64 {
        self.target_5xx.load(Ordering::Relaxed)
    }

    /// Client connections currently open.
    pub fn active_connections(&self) -> u64 {
        self.active_connections.load(Ordering::Relaxed)
    }

    /// Client connections accepted since the listener started.
    pub fn connections_total(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Every counter at once, for the metrics collector's once-per-second reading.
    pub fn snapshot(&self) -> ListenerStatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ListenerStatsSnapshot {
            requests: load(&self.requests),
            elb_4xx: load(&self.elb_4xx),
            elb_5xx: load(&self.elb_5xx),
            target_5xx: load(&self.target_5xx),
            active_connections: load(&self.active_connections),
            new_connections: load(&self.connections),
            processed_bytes: load(&self.processed_bytes),
            tcp_elb_resets: load(&self.tcp_elb_resets),
        }
    }

    /// Send one access log line per request of this listener to `log` (at most once; a second
    /// call is ignored and returns false). Off until called, as in AWS.
    pub fn set_access_log(&self, log: crate::access_log::AccessLog) -> bool {
        self.access_log.set(log).is_ok()
    }

    pub(crate) fn access_log(&self) -> Option<&crate::access_log::AccessLog> {
        self.access_log.get()
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.active_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.active_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn bytes(&self, n: u64) {
        self.processed_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn tcp_reset(&self) {
        self.tcp_elb_resets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record(&self, status: StatusCode, generated: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match (generated, status.as_u16()) {
            (true, 400..=499) => &self.elb_4xx,
            (true, 500..=599) => &self.elb_5xx,
            (false, 500..=599) => &self.target_5xx,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut prev_hi = 0;
        for i in 0..HISTOGRAM_BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!(
                lo,
                prev_hi,
                "bucket {i} starts where {} ended",
                i.max(1) - 1
            );
            assert!(hi > lo);
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi - 1), i);
            prev_hi = hi;
        }
        assert_eq!(bucket_of(u64::MAX), HISTOGRAM_BUCKETS - 1);
    }

    #[test]
    fn bucket_width_is_at_most_an_eighth_of_its_values() {
        for i in SUB as usize..HISTOGRAM_BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert!((hi - lo) * 8 <= lo, "bucket {i}: {lo}..{hi}");
        }
    }
}
