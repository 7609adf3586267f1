//! Target groups as the data plane sees them: immutable membership snapshots swapped in by the
//! control plane, read without locks on every request.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{HeaderMap, HeaderValue, SET_COOKIE};

use crate::balance::{self, Algorithm, TargetGroupSettings};
use crate::h2_upstream::ProtocolVersion;
use crate::hold::{DemandHook, Hold, HoldConfig};
use crate::outlier::Ejection;
use crate::pool::Pool;
use crate::request::RequestView;
use crate::stats::{HistogramSnapshot, TargetMetrics};

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
/// Shared by `Arc` between snapshots so it survives membership updates.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// Opaque identity in stickiness cookies (a keyed hash of the address).
    id: u64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) errors_total: AtomicU64,
    pub(crate) in_flight: AtomicUsize,
    /// Passive health: skipped by picking for a back-off after connection failures.
    ejection: Ejection,
    /// Response times, status classes and TCP flows, for metrics.
    pub(crate) metrics: TargetMetrics,
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
    /// (it just refused a connection or did not accept one in time).
    pub(crate) fn eject(&self) {
        self.ejection.fail(now_ms());
    }

    /// The backend accepted a connection or answered: reset its ejection back-off.
    pub(crate) fn connected(&self) {
        self.ejection.succeed();
    }

    fn is_ejected(&self) -> bool {
        self.ejection.is_ejected(now_ms)
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            addr: self.addr,
            requests_total: self.requests_total.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
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

/// One registered target inside a snapshot.
#[derive(Debug)]
struct Member {
    backend: Arc<Backend>,
    #[allow(dead_code)] // kept for diagnostics
    instance_id: Option<String>,
    /// Its availability zone: a zonal shift takes it out of the routable set.
    zone: Option<String>,
    state: RouteState,
    /// Slow start: monotonic milliseconds when the target became healthy and began its ramp.
    ramp_start: Option<u64>,
}

/// An immutable view of the group: every registered target, and those that get new requests.
#[derive(Debug, Default)]
struct Snapshot {
    members: Vec<Member>,
    routable: Vec<Arc<Backend>>,
    /// Ramp start of each routable backend (same order), for slow start.
    ramp: Vec<Option<u64>>,
    /// When the last ramp of this snapshot ends; 0 = nobody is in slow start.
    ramp_until: u64,
    /// Set once a pick saw `ramp_until` pass, so later picks skip the clock.
    ramp_over: AtomicBool,
    /// No target is healthy or unhealthy yet: the group is coming up from nothing, so its
    /// fail-open targets (still `initial`) may not even listen yet (scale from zero waits).
    starting: bool,
    /// Cross-zone load balancing off: `routable` (and `ramp`) are grouped by zone and each
    /// range is one zone's targets; a pick first draws a zone, equal shares. Empty when
    /// cross-zone is on or every routable target is in one zone: the pick sees them all.
    zones: Vec<Range<usize>>,
}

/// What writers of the snapshot share, behind the writer lock.
#[derive(Debug)]
struct Writer {
    /// Zones under a zonal shift.
    shifted: Vec<String>,
    /// Cross-zone load balancing on (the default) or off.
    cross_zone: bool,
}

/// One target group as the data plane sees it: its backends and which of them may get new
/// requests.
///
/// Shared between every listener that forwards to it; the control plane replaces its snapshot
/// with [`TargetGroup::update`] while requests keep flowing.
pub struct TargetGroup {
    name: String,
    settings: TargetGroupSettings,
    snapshot: ArcSwap<Snapshot>,
    /// Round-robin cursor; lives in the group so that updates do not restart the rotation.
    next: AtomicUsize,
    /// Serialises writers only (updates are rare); readers never take it. Holds the zones
    /// under a zonal shift and the cross-zone setting, which every snapshot is built with.
    update_lock: Mutex<Writer>,
    /// HTTP version spoken to the targets (AWS `ProtocolVersion`).
    protocol_version: ProtocolVersion,
    /// Where requests wait while the group has no routable target (scale from zero).
    hold: Hold,
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
    /// An empty group (requests forwarded to it are answered 503 until targets are registered)
    /// with the AWS default settings: round robin, no slow start, no stickiness.
    pub fn new(name: impl Into<String>) -> Arc<TargetGroup> {
        TargetGroup::with_settings(name, TargetGroupSettings::default())
    }

    /// An empty group whose targets are spoken to in `version` (HTTP/2 for gRPC services),
    /// otherwise with the default settings.
    pub fn with_protocol_version(
        name: impl Into<String>,
        version: ProtocolVersion,
    ) -> Arc<TargetGroup> {
        TargetGroup::with_settings(
            name,
            TargetGroupSettings {
                protocol_version: version,
                ..TargetGroupSettings::default()
            },
        )
    }

    /// An empty group that balances according to `settings` (algorithm, slow start,
    /// stickiness, protocol version), usually [`TargetGroupSettings::from_config`].
    pub fn with_settings(
        name: impl Into<String>,
        settings: TargetGroupSettings,
    ) -> Arc<TargetGroup> {
        let version = settings.protocol_version;
        let writer = Writer {
            shifted: Vec::new(),
            cross_zone: settings.cross_zone,
        };
        Arc::new(TargetGroup {
            name: name.into(),
            settings,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            next: AtomicUsize::new(0),
            update_lock: Mutex::new(writer),
            protocol_version: version,
            hold: Hold::default(),
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
    ///
    /// With slow start on, a target that turns healthy while at least one other target is
    /// healthy and past its own ramp starts a linear ramp of its share (AWS: targets registered
    /// into an empty group, or healthy when the feature is enabled, do not); a target that stops
    /// being healthy leaves slow start.
    ///
    /// Targets in a zone under a zonal shift ([`set_shifted_zones`](Self::set_shifted_zones))
    /// are left out of the routable set, unless that would leave it empty (fail open, as AWS).
    pub fn update(&self, targets: Vec<TargetUpdate>) {
        // A poisoned lock only means another updater panicked; the snapshot is still consistent.
        let writer = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot.load();
        let mut known: HashMap<SocketAddr, &Arc<Backend>> = old
            .members
            .iter()
            .map(|m| (m.backend.addr, &m.backend))
            .collect();
        let before: HashMap<SocketAddr, (RouteState, Option<u64>)> = old
            .members
            .iter()
            .map(|m| (m.backend.addr, (m.state, m.ramp_start)))
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
                ramp_start: None,
            });
        }
        self.start_ramps(&mut members, &before);
        drop(known);
        self.publish(members, &writer);
    }

    /// Sets the zones under a zonal shift (spec §6): their targets get no new requests (those
    /// in flight finish; health checks go on) unless every routable target is in them. The
    /// routable set is rebuilt once here, so picking stays lock-free.
    pub fn set_shifted_zones(&self, zones: Vec<String>) {
        let mut writer = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        if writer.shifted == zones {
            return;
        }
        writer.shifted = zones;
        self.republish(&writer);
    }

    /// Turns cross-zone load balancing on or off (AWS `load_balancing.cross_zone.enabled`,
    /// e.g. after a reload). Off: each zone with routable targets gets an equal share of the
    /// requests, served by its own targets with the group's algorithm, whatever the number of
    /// targets per zone. The snapshot is rebuilt once here, so picking stays lock-free.
    pub fn set_cross_zone(&self, on: bool) {
        let mut writer = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        if writer.cross_zone == on {
            return;
        }
        writer.cross_zone = on;
        self.republish(&writer);
    }

    /// Rebuilds the snapshot of the current members after a writer setting changed.
    fn republish(&self, writer: &Writer) {
        let members = self
            .snapshot
            .load()
            .members
            .iter()
            .map(|m| Member {
                backend: Arc::clone(&m.backend),
                instance_id: m.instance_id.clone(),
                zone: m.zone.clone(),
                state: m.state,
                ramp_start: m.ramp_start,
            })
            .collect();
        self.publish(members, writer);
    }

    /// Builds the snapshot of `members` (routable set, slow-start ramps) and swaps it in.
    /// Called with the writer lock held.
    fn publish(&self, members: Vec<Member>, writer: &Writer) {
        let shifted = &writer.shifted;
        let healthy: Vec<&Member> = members
            .iter()
            .filter(|m| m.state == RouteState::Healthy)
            .collect();
        let mut chosen: Vec<&Member> = if healthy.is_empty() {
            members
                .iter()
                .filter(|m| m.state != RouteState::Draining)
                .collect()
        } else {
            healthy
        };
        if !shifted.is_empty() {
            let outside: Vec<&Member> = chosen
                .iter()
                .copied()
                .filter(|m| !m.zone.as_ref().is_some_and(|z| shifted.contains(z)))
                .collect();
            if !outside.is_empty() {
                chosen = outside;
            }
        }
        let zones = if writer.cross_zone {
            Vec::new()
        } else {
            // Stable: each zone keeps its registration order (round robin, ties).
            chosen.sort_by(|a, b| a.zone.cmp(&b.zone));
            zone_ranges(&chosen)
        };
        let routable: Vec<Arc<Backend>> = chosen.iter().map(|m| Arc::clone(&m.backend)).collect();
        let ramp: Vec<Option<u64>> = chosen.iter().map(|m| m.ramp_start).collect();
        let slow_ms = duration_ms(self.settings.slow_start);
        let ramp_until = ramp
            .iter()
            .flatten()
            .map(|s| s.saturating_add(slow_ms).max(1))
            .max()
            .unwrap_or(0);
        let starting = members
            .iter()
            .all(|m| matches!(m.state, RouteState::Initial | RouteState::Draining));
        let ready = !routable.is_empty() && !starting;
        self.snapshot.store(Arc::new(Snapshot {
            members,
            routable,
            ramp,
            ramp_until,
            ramp_over: AtomicBool::new(false),
            starting,
            zones,
        }));
        if ready {
            self.hold.targets_arrived();
        }
    }

    /// Scale from zero: from now on a request that finds no routable target waits (bounded
    /// by `config`) for one instead of getting 503, and `on_demand` tells the control plane
    /// that capacity is wanted.
    pub fn enable_hold(&self, config: HoldConfig, on_demand: DemandHook) {
        self.hold.enable(config, on_demand);
    }

    /// Requests waiting for a routable target right now (scale from zero).
    pub fn held_requests(&self) -> usize {
        self.hold.waiting()
    }

    /// A routable target, waiting for one if the group holds requests (scale from zero).
    ///
    /// A group coming up from nothing (every target still `initial`) is waited on too: those
    /// targets may not listen yet. When the wait times out, the fail-open pick is used.
    pub(crate) async fn pick_or_wait(&self) -> Option<Arc<Backend>> {
        if !self.hold.is_enabled() || !self.snapshot.load().starting {
            if let Some(b) = self.pick(None) {
                return Some(b);
            }
        }
        let ready = || {
            if self.snapshot.load().starting {
                None
            } else {
                self.pick(None)
            }
        };
        match self.hold.wait_for(ready).await {
            Some(b) => Some(b),
            None => self.pick(None),
        }
    }

    /// Slow start (AWS §2.5): decide which members ramp, carrying ramps over from `before`.
    fn start_ramps(
        &self,
        members: &mut [Member],
        before: &HashMap<SocketAddr, (RouteState, Option<u64>)>,
    ) {
        let slow_ms = duration_ms(self.settings.slow_start);
        if slow_ms == 0 {
            return;
        }
        let now = self.settings.clock.mono_ms();
        let ramping = |start: Option<u64>| start.is_some_and(|s| now < s.saturating_add(slow_ms));
        // A healthy target that is done ramping must remain, or nobody ramps (empty group).
        let anchor = members.iter().any(|m| {
            m.state == RouteState::Healthy
                && before
                    .get(&m.backend.addr)
                    .is_some_and(|&(st, start)| st == RouteState::Healthy && !ramping(start))
        });
        for m in members.iter_mut() {
            let prev = before.get(&m.backend.addr).copied();
            m.ramp_start = match prev {
                _ if m.state != RouteState::Healthy => None,
                Some((RouteState::Healthy, start)) => start.filter(|&s| ramping(Some(s))),
                _ if anchor => Some(now),
                _ => None,
            };
        }
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

    /// Idle keep-alive connections pooled for a backend now (diagnostics, tests); `None` if
    /// the address is not registered.
    pub fn pooled(&self, addr: SocketAddr) -> Option<usize> {
        self.snapshot
            .load()
            .members
            .iter()
            .find(|m| m.backend.addr == addr)
            .map(|m| m.backend.pool.h1.idle_len())
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

    /// Pick a backend among the routable ones with the group's algorithm (slow start
    /// overriding it while a target ramps), skipping `exclude` (the target that just failed) and
    /// recently ejected backends. Ejection is ignored when it would leave nothing; `None` means
    /// no candidate at all.
    pub(crate) fn pick(&self, exclude: Option<&Arc<Backend>>) -> Option<Arc<Backend>> {
        let snap = self.snapshot.load();
        if snap.routable.is_empty() {
            return None;
        }
        if let Some(failed) = exclude {
            // A retry after a connection failure: in cluster mode the failed target's host may
            // be gone with every target on it, so a target of another host comes first.
            if let Some(b) = self.pick_other_host(&snap, failed) {
                return Some(b);
            }
        }
        if snap.zones.is_empty() {
            return self.pick_in(&snap, 0..snap.routable.len(), exclude);
        }
        // Cross-zone off: an equal share per zone, then the algorithm within the zone. A zone
        // left with no candidate (its only target just failed) hands the retry to any zone.
        let zone = &snap.zones[balance::below(snap.zones.len() as u64) as usize];
        self.pick_in(&snap, zone.clone(), exclude)
            .or_else(|| self.pick_in(&snap, 0..snap.routable.len(), exclude))
    }

    /// A routable, non-ejected target at another address than `failed`'s, in turn; `None`
    /// when every target shares its address (all of `flotilla up`'s instances do).
    fn pick_other_host(&self, snap: &Snapshot, failed: &Arc<Backend>) -> Option<Arc<Backend>> {
        let ip = failed.addr.ip();
        let other = |b: &&Arc<Backend>| b.addr.ip() != ip && !b.is_ejected();
        let n = snap.routable.iter().filter(other).count();
        if n == 0 {
            return None;
        }
        let nth = self.next.fetch_add(1, Ordering::Relaxed) % n;
        snap.routable.iter().filter(other).nth(nth).cloned()
    }

    /// [`pick`](Self::pick) among the routable backends in `range` (all of them, or one zone's).
    fn pick_in(
        &self,
        snap: &Snapshot,
        range: Range<usize>,
        exclude: Option<&Arc<Backend>>,
    ) -> Option<Arc<Backend>> {
        let routable = &snap.routable[range.clone()];
        if snap.ramp_until != 0 && !snap.ramp_over.load(Ordering::Relaxed) {
            // The only clock read of the pick, and only while someone ramps.
            let now = self.settings.clock.mono_ms();
            if now < snap.ramp_until {
                if let Some(b) = self.pick_ramped(routable, &snap.ramp[range], exclude, now) {
                    return Some(b);
                }
            } else {
                snap.ramp_over.store(true, Ordering::Relaxed);
            }
        }
        match self.settings.algorithm {
            Algorithm::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                rotate(routable, start, exclude)
            }
            Algorithm::WeightedRandom => {
                // Equal weights for now (no anomaly mitigation): a uniform random start.
                let start = balance::below(routable.len() as u64) as usize;
                rotate(routable, start, exclude)
            }
            Algorithm::LeastOutstandingRequests => self.least_outstanding(routable, exclude),
        }
    }

    /// Fewest in-flight requests; ties are broken round robin: the rotating cursor chooses
    /// among the tied targets (two scans, no allocation).
    fn least_outstanding(
        &self,
        routable: &[Arc<Backend>],
        exclude: Option<&Arc<Backend>>,
    ) -> Option<Arc<Backend>> {
        let eligible =
            |b: &Arc<Backend>| !exclude.is_some_and(|x| Arc::ptr_eq(x, b)) && !b.is_ejected();
        let mut min = usize::MAX;
        let mut ties = 0usize;
        let mut first: Option<&Arc<Backend>> = None;
        for b in routable.iter().filter(|b| eligible(b)) {
            let n = b.in_flight.load(Ordering::Relaxed);
            if n < min {
                (min, ties, first) = (n, 1, Some(b));
            } else if n == min {
                ties += 1;
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(first) = first else {
            return rotate(routable, start, exclude);
        };
        let nth = start % ties;
        let chosen = routable
            .iter()
            .filter(|b| eligible(b) && b.in_flight.load(Ordering::Relaxed) == min)
            .nth(nth)
            // Counts moved between the scans: the first minimum is still a fine answer.
            .unwrap_or(first);
        Some(Arc::clone(chosen))
    }

    /// Slow start: a weighted random pick where a ramping target weighs in proportion to the
    /// time since it became healthy (linear from ~0 to full over the duration). `None` when
    /// every candidate is excluded or ejected.
    fn pick_ramped(
        &self,
        routable: &[Arc<Backend>],
        ramp: &[Option<u64>],
        exclude: Option<&Arc<Backend>>,
        now: u64,
    ) -> Option<Arc<Backend>> {
        const FULL: u64 = 1024;
        let slow_ms = duration_ms(self.settings.slow_start).max(1);
        let weight = |i: usize, b: &Arc<Backend>| -> u64 {
            if exclude.is_some_and(|x| Arc::ptr_eq(x, b)) || b.is_ejected() {
                return 0;
            }
            match ramp[i] {
                Some(start) => (FULL * now.saturating_sub(start).min(slow_ms) / slow_ms).max(1),
                None => FULL,
            }
        };
        let total: u64 = routable.iter().enumerate().map(|(i, b)| weight(i, b)).sum();
        if total == 0 {
            return None;
        }
        let mut r = balance::below(total);
        for (i, b) in routable.iter().enumerate() {
            let w = weight(i, b);
            if r < w {
                return Some(Arc::clone(b));
            }
            r -= w;
        }
        None
    }

    /// Stickiness: the routable, non-ejected target named by a valid `AWSALB` cookie in the
    /// request. `None` when stickiness is off, there is no valid cookie, or its target is gone
    /// or unhealthy (the caller then picks normally and the response re-issues the cookie).
    pub(crate) fn sticky_pick<R: RequestView>(&self, req: &R) -> Option<Arc<Backend>> {
        let duration = self.settings.stickiness?;
        let cookies = req.header_values("cookie");
        let id = balance::sticky_target(cookies, &self.settings.clock, duration)?;
        self.snapshot
            .load()
            .routable
            .iter()
            .find(|b| b.id == id && !b.is_ejected())
            .cloned()
    }

    /// Stickiness: add the `AWSALB` cookie naming `backend` to a response (re-issued on every
    /// response, so the duration slides as in AWS). Does nothing when stickiness is off.
    pub(crate) fn stick(&self, headers: &mut HeaderMap, backend: &Backend) {
        if let Some(v) = self.sticky_cookie(backend) {
            headers.append(SET_COOKIE, v);
        }
    }

    /// The `Set-Cookie` value that pins a client to `backend`; `None` when stickiness is off.
    pub(crate) fn sticky_cookie(&self, backend: &Backend) -> Option<HeaderValue> {
        self.settings.stickiness?;
        balance::set_cookie(backend.id, &self.settings.clock)
    }

    /// Pick a backend for a new TCP flow by its flow hash (network load balancers): the same
    /// hash lands on the same routable backend while the set does not change. Skips `exclude`
    /// (the target that just refused the flow) and ejected backends, unless that leaves nothing.
    pub(crate) fn pick_flow(
        &self,
        hash: u64,
        exclude: Option<&Arc<Backend>>,
    ) -> Option<Arc<Backend>> {
        let snap = self.snapshot.load();
        if snap.routable.is_empty() {
            return None;
        }
        // Cross-zone off: the hash draws the zone, the rest of it the target within the zone.
        let zones = snap.zones.len() as u64;
        let (routable, hash) = match snap.zones.get((hash % zones.max(1)) as usize) {
            Some(zone) if zones > 0 => (&snap.routable[zone.clone()], hash / zones),
            _ => (&snap.routable[..], hash),
        };
        let len = routable.len();
        // Fits: the remainder is below `len`, a usize.
        let start = (hash % len as u64) as usize;
        let mut fallback: Option<&Arc<Backend>> = None;
        for i in 0..len {
            let b = &routable[(start + i) % len];
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

    /// Whether `backend` is still registered (draining included). A TCP flow to a backend that
    /// is no longer registered is closed: its deregistration delay is over.
    pub(crate) fn is_registered(&self, backend: &Arc<Backend>) -> bool {
        self.snapshot
            .load()
            .members
            .iter()
            .any(|m| Arc::ptr_eq(&m.backend, backend))
    }
}

/// The index range of each zone's members in `sorted` (grouped by zone; a target without zone
/// is a zone of its own); empty when there are fewer than two zones, so the pick skips the draw.
fn zone_ranges(sorted: &[&Member]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for (i, m) in sorted.iter().enumerate() {
        match ranges.last_mut() {
            Some(r) if sorted[r.start].zone == m.zone => r.end = i + 1,
            _ => ranges.push(i..i + 1),
        }
    }
    if ranges.len() < 2 {
        ranges.clear();
    }
    ranges
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The first non-excluded, non-ejected backend from `start` on (wrapping); an ejected one when
/// nothing else is left.
fn rotate(
    routable: &[Arc<Backend>],
    start: usize,
    exclude: Option<&Arc<Backend>>,
) -> Option<Arc<Backend>> {
    let len = routable.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16, zone: &str, state: RouteState) -> TargetUpdate {
        TargetUpdate {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            instance_id: None,
            zone: Some(zone.to_string()),
            state,
        }
    }

    /// Ports picked by `n` round-robin picks.
    fn picked(tg: &TargetGroup, n: usize) -> std::collections::BTreeSet<u16> {
        (0..n)
            .filter_map(|_| tg.pick(None))
            .map(|b| b.addr.port())
            .collect()
    }

    /// A retry after a connection failure goes to another host's target when there is one
    /// (its host may have died with every target on it), and to another target of the same
    /// address otherwise.
    #[test]
    fn a_retry_prefers_another_host() {
        let tg = TargetGroup::new("web");
        let at = |ip: [u8; 4], port| TargetUpdate {
            addr: SocketAddr::from((ip, port)),
            instance_id: None,
            zone: None,
            state: RouteState::Healthy,
        };
        tg.update(vec![
            at([10, 0, 0, 1], 1),
            at([10, 0, 0, 1], 2),
            at([10, 0, 0, 1], 3),
            at([10, 0, 0, 2], 4),
        ]);
        let failed = tg.pick(None).expect("a target");
        let failed = if failed.addr.port() == 4 {
            tg.pick(None).expect("a target")
        } else {
            failed
        };
        for _ in 0..20 {
            let retry = tg.pick(Some(&failed)).expect("a retry target");
            assert_eq!(retry.addr.port(), 4, "another host's target");
        }
        let same_host = TargetGroup::new("up");
        same_host.update(vec![
            target(1, "az-a", RouteState::Healthy),
            target(2, "az-a", RouteState::Healthy),
        ]);
        let failed = same_host.pick(None).expect("a target");
        let retry = same_host.pick(Some(&failed)).expect("a retry target");
        assert_ne!(retry.addr, failed.addr);
    }

    #[test]
    fn a_zonal_shift_skips_its_zone_and_fails_open_when_nothing_else_is_left() {
        let tg = TargetGroup::new("web");
        tg.update(vec![
            target(1, "az-a", RouteState::Healthy),
            target(2, "az-b", RouteState::Healthy),
            target(3, "az-b", RouteState::Unhealthy),
        ]);
        assert_eq!(picked(&tg, 10), [1, 2].into());
        tg.set_shifted_zones(vec!["az-b".into()]);
        assert_eq!(picked(&tg, 10), [1].into());
        // Updates keep honouring the shift.
        tg.update(vec![
            target(1, "az-a", RouteState::Healthy),
            target(2, "az-b", RouteState::Healthy),
            target(4, "az-c", RouteState::Healthy),
        ]);
        assert_eq!(picked(&tg, 10), [1, 4].into());
        // Every healthy target in the shifted zones: fail open to them.
        tg.set_shifted_zones(vec!["az-a".into(), "az-b".into(), "az-c".into()]);
        assert_eq!(picked(&tg, 10), [1, 2, 4].into());
        tg.set_shifted_zones(vec!["az-a".into(), "az-c".into()]);
        assert_eq!(picked(&tg, 10), [2].into());
        tg.set_shifted_zones(Vec::new());
        assert_eq!(picked(&tg, 10), [1, 2, 4].into());
        // Draining targets stay out whatever the shift.
        tg.update(vec![
            target(1, "az-a", RouteState::Draining),
            target(2, "az-b", RouteState::Healthy),
        ]);
        tg.set_shifted_zones(vec!["az-b".into()]);
        assert_eq!(picked(&tg, 10), [2].into());
    }

    /// Picks per port over `n` picks.
    fn counts(tg: &TargetGroup, n: usize) -> std::collections::BTreeMap<u16, usize> {
        let mut out = std::collections::BTreeMap::new();
        for _ in 0..n {
            if let Some(b) = tg.pick(None) {
                *out.entry(b.addr.port()).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn cross_zone_off_gives_each_zone_an_equal_share_whatever_its_target_count() {
        for algorithm in [
            Algorithm::RoundRobin,
            Algorithm::WeightedRandom,
            Algorithm::LeastOutstandingRequests,
        ] {
            let tg = TargetGroup::with_settings(
                "web",
                TargetGroupSettings {
                    algorithm,
                    cross_zone: false,
                    ..TargetGroupSettings::default()
                },
            );
            tg.update(vec![
                target(1, "az-a", RouteState::Healthy),
                target(2, "az-b", RouteState::Healthy),
                target(3, "az-b", RouteState::Healthy),
                target(4, "az-b", RouteState::Healthy),
                // Unhealthy: its zone has nothing routable and gets nothing.
                target(5, "az-c", RouteState::Unhealthy),
            ]);
            let c = counts(&tg, 4000);
            let a = c.get(&1).copied().unwrap_or(0);
            assert!((1800..2200).contains(&a), "{algorithm:?}: {c:?}");
            assert!(!c.contains_key(&5), "{c:?}");
            for port in [2, 3, 4] {
                let n = c.get(&port).copied().unwrap_or(0);
                assert!((500..850).contains(&n), "{algorithm:?}: {c:?}");
            }
            // Flows too: each zone gets about half.
            let in_a = (0..4000u64)
                .filter_map(|h| tg.pick_flow(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), None))
                .filter(|b| b.addr.port() == 1)
                .count();
            assert!((1800..2200).contains(&in_a), "{in_a}");
            // On: per-target shares.
            tg.set_cross_zone(true);
            let c = counts(&tg, 4000);
            assert!(c.values().all(|n| (800..1200).contains(n)), "{c:?}");
            tg.set_cross_zone(false);
            // A zonal shift removes its zone; the other zone takes everything.
            tg.set_shifted_zones(vec!["az-a".into()]);
            assert_eq!(picked(&tg, 30), [2, 3, 4].into());
        }
    }

    #[test]
    fn cross_zone_off_retries_in_another_zone_when_its_zone_has_no_other_target() {
        let tg = TargetGroup::with_settings(
            "web",
            TargetGroupSettings {
                cross_zone: false,
                ..TargetGroupSettings::default()
            },
        );
        tg.update(vec![
            target(1, "az-a", RouteState::Healthy),
            target(2, "az-b", RouteState::Healthy),
        ]);
        let one = tg
            .snapshot
            .load()
            .routable
            .iter()
            .find(|b| b.addr.port() == 1)
            .cloned()
            .unwrap();
        for _ in 0..20 {
            assert_eq!(tg.pick(Some(&one)).unwrap().addr.port(), 2);
        }
    }
}
