//! Target groups as the data plane sees them: immutable membership snapshots swapped in by the
//! control plane, read without locks on every request.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::h2_upstream::ProtocolVersion;
use crate::pool::Pool;

/// How long a backend that refused a connection is skipped when picking, so that the requests
/// right after a crash do not each pay for a failed connect before being retried.
const EJECT_FOR: Duration = Duration::from_secs(1);

/// What the control plane says about a target, reduced to what routing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteState {
    /// Registered, health checks not yet conclusive: only used when failing open.
    Initial,
    /// Passing health checks: gets new requests.
    Healthy,
    /// Failing health checks: only used when failing open.
    Unhealthy,
    /// Deregistering: never gets new requests; requests already on it finish.
    Draining,
}

/// One registered target in a membership update pushed by the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUpdate {
    /// Where the target listens; also its identity across updates.
    pub addr: SocketAddr,
    /// The instance behind the target, if it belongs to an auto scaling group.
    pub instance_id: Option<String>,
    /// The availability zone of the target, if known.
    pub zone: Option<String>,
    /// Its routing state.
    pub state: RouteState,
}

/// Counters of one backend, for metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// A target as the forwarding path uses it: counters, ejection mark and connection pool.
/// Shared by `Arc` between snapshots so it survives membership updates.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) requests_total: AtomicU64,
    pub(crate) errors_total: AtomicU64,
    pub(crate) in_flight: AtomicUsize,
    /// Milliseconds since [`epoch`] until which picking skips this backend; 0 = not ejected.
    ejected_until: AtomicU64,
    pub(crate) pool: Pool,
}

/// A process-wide origin for the cheap millisecond timestamps stored in atomics.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since a process-wide origin: a timestamp that fits in an atomic.
pub(crate) fn now_ms() -> u64 {
    // Saturates only after ~584 million years of uptime.
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Backend {
    fn new(addr: SocketAddr) -> Self {
        Backend {
            addr,
            requests_total: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            ejected_until: AtomicU64::new(0),
            pool: Pool::default(),
        }
    }

    /// Skip this backend for new requests for a moment (it just refused a connection).
    pub(crate) fn eject(&self) {
        let until = now_ms().saturating_add(EJECT_FOR.as_millis() as u64);
        self.ejected_until.store(until, Ordering::Relaxed);
    }

    fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        // Fast path without reading the clock: the backend was never ejected.
        until != 0 && now_ms() < until
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            addr: self.addr,
            requests_total: self.requests_total.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            errors_total: self.errors_total.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.stats(), f)
    }
}

/// One registered target inside a snapshot.
#[derive(Debug)]
struct Member {
    backend: Arc<Backend>,
    #[allow(dead_code)] // kept for zonal routing and diagnostics
    instance_id: Option<String>,
    #[allow(dead_code)]
    zone: Option<String>,
    state: RouteState,
}

/// An immutable view of the group: every registered target, and those that get new requests.
#[derive(Debug, Default)]
struct Snapshot {
    members: Vec<Member>,
    routable: Vec<Arc<Backend>>,
}

/// One target group as the data plane sees it: its backends and which of them may get new
/// requests.
///
/// Shared between every listener that forwards to it; the control plane replaces its snapshot
/// with [`TargetGroup::update`] while requests keep flowing.
pub struct TargetGroup {
    name: String,
    snapshot: ArcSwap<Snapshot>,
    /// Round-robin cursor; lives in the group so that updates do not restart the rotation.
    next: AtomicUsize,
    /// Serialises writers only (updates are rare); readers never take it.
    update_lock: Mutex<()>,
    /// HTTP version spoken to the targets (AWS `ProtocolVersion`).
    protocol_version: ProtocolVersion,
}

impl fmt::Debug for TargetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetGroup")
            .field("name", &self.name)
            .field("members", &self.snapshot.load().members)
            .finish()
    }
}

impl TargetGroup {
    /// An empty group (requests forwarded to it are answered 503 until targets are registered).
    pub fn new(name: impl Into<String>) -> Arc<TargetGroup> {
        TargetGroup::with_protocol_version(name, ProtocolVersion::Http1)
    }

    /// An empty group whose targets are spoken to in `version` (HTTP/2 for gRPC services).
    pub fn with_protocol_version(
        name: impl Into<String>,
        version: ProtocolVersion,
    ) -> Arc<TargetGroup> {
        Arc::new(TargetGroup {
            name: name.into(),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            next: AtomicUsize::new(0),
            update_lock: Mutex::new(()),
            protocol_version: version,
        })
    }

    /// The HTTP version spoken to this group's targets.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.protocol_version
    }

    /// The group's configured name, for logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replace the membership/health snapshot.
    ///
    /// Backends are reused by address across updates, so their pooled connections and in-flight
    /// counters survive health flaps. The routable set is the healthy targets; when none is
    /// healthy the group fails open to every non-draining target, as AWS does; draining targets
    /// never get new requests. A target missing from `targets` is removed: its idle connections
    /// close once the last request using it finishes.
    pub fn update(&self, targets: Vec<TargetUpdate>) {
        // A poisoned lock only means another updater panicked; the snapshot is still consistent.
        let _writer = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot.load();
        let mut known: HashMap<SocketAddr, &Arc<Backend>> = old
            .members
            .iter()
            .map(|m| (m.backend.addr, &m.backend))
            .collect();
        let mut members: Vec<Member> = Vec::with_capacity(targets.len());
        for t in targets {
            if let Some(existing) = members.iter_mut().find(|m| m.backend.addr == t.addr) {
                // Duplicate address in one update: the last entry wins.
                existing.state = t.state;
                existing.instance_id = t.instance_id;
                existing.zone = t.zone;
                continue;
            }
            let backend = match known.remove(&t.addr) {
                Some(b) => Arc::clone(b),
                None => Arc::new(Backend::new(t.addr)),
            };
            members.push(Member {
                backend,
                instance_id: t.instance_id,
                zone: t.zone,
                state: t.state,
            });
        }
        let healthy: Vec<Arc<Backend>> = members
            .iter()
            .filter(|m| m.state == RouteState::Healthy)
            .map(|m| Arc::clone(&m.backend))
            .collect();
        let routable = if healthy.is_empty() {
            members
                .iter()
                .filter(|m| m.state != RouteState::Draining)
                .map(|m| Arc::clone(&m.backend))
                .collect()
        } else {
            healthy
        };
        drop(known);
        self.snapshot
            .store(Arc::new(Snapshot { members, routable }));
    }

    /// In-flight request count of a backend (draining completes when it reaches 0); `None` if
    /// the address is not registered.
    pub fn in_flight(&self, addr: SocketAddr) -> Option<usize> {
        self.snapshot
            .load()
            .members
            .iter()
            .find(|m| m.backend.addr == addr)
            .map(|m| m.backend.in_flight.load(Ordering::Relaxed))
    }

    /// Counters of every registered backend, in registration order.
    pub fn stats(&self) -> Vec<BackendStats> {
        self.snapshot
            .load()
            .members
            .iter()
            .map(|m| m.backend.stats())
            .collect()
    }

    /// Pick the next backend round robin among the routable ones, skipping `exclude` (the target
    /// that just failed) and recently ejected backends. Ejection is ignored when it would leave
    /// nothing; `None` means no candidate at all.
    pub(crate) fn pick(&self, exclude: Option<&Arc<Backend>>) -> Option<Arc<Backend>> {
        let snap = self.snapshot.load();
        let routable = &snap.routable;
        let len = routable.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fallback: Option<&Arc<Backend>> = None;
        for i in 0..len {
            let b = &routable[start.wrapping_add(i) % len];
            if exclude.is_some_and(|x| Arc::ptr_eq(x, b)) {
                continue;
            }
            if !b.is_ejected() {
                return Some(Arc::clone(b));
            }
            fallback.get_or_insert(b);
        }
        fallback.map(Arc::clone)
    }
}
