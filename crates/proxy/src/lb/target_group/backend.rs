//! One target as the forwarding path sees it: its counters, its passive-health ejection and
//! its connection pool. Shared by `Arc` between snapshots, so all of it survives membership
//! updates and health flaps.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::lb::balance::{self, Clock};
use crate::lb::outlier::Ejection;
use crate::lb::pool::Pool;
use crate::stats::{HistogramSnapshot, TargetMetrics};

/// Counters of one backend, for metrics and the admin API. Cumulative since the backend was
/// registered (a snapshot of atomics; take differences for per-period values).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendStats {
    /// The target's address.
    pub addr: SocketAddr,
    /// Requests sent to this target (each attempt counts, including one that is then retried).
    pub requests_total: u64,
    /// Requests currently being served by this target (until their response body ends).
    pub in_flight: usize,
    /// Attempts on this target that failed at the connection level (refused, reset, closed,
    /// timed out, malformed response), i.e. those that led to a retry or a generated 5xx.
    pub errors_total: u64,
    /// Responses received from the target by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`
    /// (`http_target_5xx_count` is the last).
    pub responses_by_class: [u64; 5],
    /// Time from sending a request to the target until its response headers
    /// (`target_response_time`).
    pub response_time: HistogramSnapshot,
    /// TCP flows opened to the target by network load balancer listeners.
    pub flows_total: u64,
    /// Connection failures in a row (0 after any success); > 0 means ejected or about to be.
    pub consecutive_failures: u32,
}

/// A target as the forwarding path uses it: counters, ejection mark and connection pool.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// Opaque identity in stickiness cookies (a keyed hash of the address).
    pub(super) id: u64,
    requests_total: AtomicU64,
    errors_total: AtomicU64,
    in_flight: AtomicUsize,
    /// Passive health: skipped by picking for a back-off after connection failures.
    ejection: Ejection,
    /// Response times, status classes and TCP flows, for metrics.
    metrics: TargetMetrics,
    pub(crate) pool: Pool,
}

impl Backend {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Backend {
            addr,
            id: balance::target_id(addr),
            requests_total: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            ejection: Ejection::default(),
            metrics: TargetMetrics::default(),
            pool: Pool::default(),
        }
    }

    /// Skip this backend for new requests for a back-off that grows with consecutive failures
    /// (it just refused a connection or did not accept one in time), from `now` on the
    /// group's clock.
    pub(super) fn eject(&self, clock: &Clock) {
        self.ejection.fail(clock.mono_ms());
    }

    /// Whether picking skips it; the clock is read only if it was ever ejected.
    pub(super) fn is_ejected(&self, clock: &Clock) -> bool {
        self.ejection.is_ejected(|| clock.mono_ms())
    }

    /// An attempt (request or flow) goes to this target.
    pub(crate) fn count_attempt(&self) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
    }

    /// An attempt failed at the connection or protocol level (connect, reset, timeout,
    /// malformed answer or body).
    pub(crate) fn count_error(&self) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
    }

    /// The target answered (a response head came, or a flow's connection was accepted): its
    /// ejection back-off starts over.
    pub(crate) fn connected(&self) {
        self.ejection.succeed();
    }

    /// A response head with `status` came `elapsed` after the request was sent.
    pub(crate) fn answered(&self, status: StatusCode, elapsed: Duration) {
        self.connected();
        self.metrics.response(status, elapsed);
    }

    /// A TCP flow was opened to this target.
    pub(crate) fn flow_opened(&self) {
        self.connected();
        self.metrics.flows.fetch_add(1, Ordering::Relaxed);
    }

    /// One more request or flow in flight (see [`crate::body::InFlight`]).
    pub(crate) fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// One request or flow fewer in flight.
    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests and flows in flight now (least outstanding requests, draining).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(super) fn stats(&self) -> BackendStats {
        BackendStats {
            addr: self.addr,
            requests_total: self.requests_total.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
            errors_total: self.errors_total.load(Ordering::Relaxed),
            responses_by_class: self.metrics.responses_snapshot(),
            response_time: self.metrics.response_time.snapshot(),
            flows_total: self.metrics.flows.load(Ordering::Relaxed),
            consecutive_failures: self.ejection.consecutive_failures(),
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.stats(), f)
    }
}
