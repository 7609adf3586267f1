//! The immutable snapshot of a target group that picking reads without a lock, and how
//! writers build it: the routable set (healthy, else fail-open), zonal shifts, cross-zone
//! grouping and slow-start ramps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::{Backend, RouteState, TargetGroup, TargetUpdate};

/// One registered target inside a snapshot.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) backend: Arc<Backend>,
    #[allow(dead_code)] // kept for diagnostics
    pub(super) instance_id: Option<String>,
    /// Its availability zone: a zonal shift takes it out of the routable set.
    pub(super) zone: Option<String>,
    pub(super) state: RouteState,
    /// Slow start: monotonic milliseconds when the target became healthy and began its ramp.
    pub(super) ramp_start: Option<u64>,
}

/// An immutable view of the group: every registered target, and those that get new requests.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) members: Vec<Member>,
    pub(super) routable: Vec<Arc<Backend>>,
    /// Ramp start of each routable backend (same order), for slow start.
    pub(super) ramp: Vec<Option<u64>>,
    /// Zone of each routable backend (same order), for a retry that prefers another zone.
    pub(super) routable_zones: Vec<Option<String>>,
    /// When the last ramp of this snapshot ends; 0 = nobody is in slow start.
    pub(super) ramp_until: u64,
    /// Set once a pick saw `ramp_until` pass, so later picks skip the clock.
    pub(super) ramp_over: AtomicBool,
    /// No target is healthy or unhealthy yet: the group is coming up from nothing, so its
    /// fail-open targets (still `initial`) may not even listen yet (scale from zero waits).
    pub(super) starting: bool,
    /// Cross-zone load balancing off: `routable` (and `ramp`) are grouped by zone and each
    /// range is one zone's targets; a pick first draws a zone, equal shares. Empty when
    /// cross-zone is on or every routable target is in one zone: the pick sees them all.
    pub(super) zones: Vec<Range<usize>>,
}

/// What writers of the snapshot share, behind the writer lock.
#[derive(Debug)]
pub(super) struct Writer {
    /// Zones under a zonal shift.
    pub(super) shifted: Vec<String>,
    /// Cross-zone load balancing on (the default) or off.
    pub(super) cross_zone: bool,
}

impl TargetGroup {
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
        let routable_zones = chosen.iter().map(|m| m.zone.clone()).collect();
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
            routable_zones,
            ramp_until,
            ramp_over: AtomicBool::new(false),
            starting,
            zones,
        }));
        if ready {
            self.hold.targets_arrived();
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

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
