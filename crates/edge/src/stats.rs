//! A distribution's counters (atomics, read by the metrics and the API).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a distribution has done since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Viewer requests.
    pub requests: AtomicU64,
    /// Served fresh from the cache (collapsed waiters included).
    pub hits: AtomicU64,
    /// Served from the cache after a 304, or stale while a refresh runs or the origin fails.
    pub refresh_hits: AtomicU64,
    /// Fetched from the origin (stored or not).
    pub misses: AtomicU64,
    /// Answered with an error (origin 5xx, unreachable, timed out).
    pub errors: AtomicU64,
    /// Requests sent to origins.
    pub origin_requests: AtomicU64,
    /// Body bytes served from the cache: what the origins did not have to send.
    pub bytes_saved: AtomicU64,
    /// Body bytes received from origins.
    pub origin_bytes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Viewer requests.
    pub requests: u64,
    /// Hits.
    pub hits: u64,
    /// Refresh hits.
    pub refresh_hits: u64,
    /// Misses.
    pub misses: u64,
    /// Errors.
    pub errors: u64,
    /// Origin requests.
    pub origin_requests: u64,
    /// Bytes saved.
    pub bytes_saved: u64,
    /// Bytes from origins.
    pub origin_bytes: u64,
}

impl StatsSnapshot {
    /// Hits (refresh hits included) over the requests that were hits or misses.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.refresh_hits;
        let total = served + self.misses;
        if total == 0 {
            0.0
        } else {
            served as f64 / total as f64
        }
    }
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: r(&self.requests),
            hits: r(&self.hits),
            refresh_hits: r(&self.refresh_hits),
            misses: r(&self.misses),
            errors: r(&self.errors),
            origin_requests: r(&self.origin_requests),
            bytes_saved: r(&self.bytes_saved),
            origin_bytes: r(&self.origin_bytes),
        }
    }
}
