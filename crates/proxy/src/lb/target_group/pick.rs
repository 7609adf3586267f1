//! Choosing a target among a snapshot's routable ones: the group's algorithm (round robin,
//! least outstanding requests, random), slow start, `AWSALB` stickiness, flow hashes of
//! network load balancers, passive-health ejection, and the scale-from-zero wait. Lock-free:
//! atomics and the snapshot only.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::HeaderValue;

use super::snapshot::{duration_ms, Snapshot};
use super::{Backend, TargetGroup};
use crate::lb::balance::{self, Algorithm, Clock};
use crate::request::RequestView;

impl TargetGroup {
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

    /// A routable, non-ejected target at another address than `failed`'s — in another zone
    /// than `failed`'s if there is one (a cut link or a lost zone takes every target behind
    /// it), in turn; `None` when every target shares its address (all of `flotilla up`'s
    /// instances do).
    fn pick_other_host(&self, snap: &Snapshot, failed: &Arc<Backend>) -> Option<Arc<Backend>> {
        let ip = failed.addr.ip();
        let clock = &self.settings.clock;
        let zone = snap
            .members
            .iter()
            .find(|m| Arc::ptr_eq(&m.backend, failed))
            .and_then(|m| m.zone.as_deref());
        let other_host = |i: &usize| {
            let b = &snap.routable[*i];
            b.addr.ip() != ip && !b.is_ejected(clock)
        };
        let other_zone = |i: &usize| {
            other_host(i) && zone.is_some() && snap.routable_zones[*i].as_deref() != zone
        };
        let indices = 0..snap.routable.len();
        let n = indices.clone().filter(other_zone).count();
        let (n, pick): (usize, &dyn Fn(&usize) -> bool) = if n > 0 {
            (n, &other_zone)
        } else {
            (indices.clone().filter(other_host).count(), &other_host)
        };
        if n == 0 {
            return None;
        }
        let nth = self.next.fetch_add(1, Ordering::Relaxed) % n;
        indices
            .filter(|i| pick(i))
            .nth(nth)
            .map(|i| Arc::clone(&snap.routable[i]))
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
                rotate(routable, start, exclude, &self.settings.clock)
            }
            Algorithm::WeightedRandom => {
                // Every target weighs the same: Flotilla has no automatic target weights
                // (AWS's anomaly mitigation), so this is a uniform random pick (the config
                // docs say so).
                let start = balance::below(routable.len() as u64) as usize;
                rotate(routable, start, exclude, &self.settings.clock)
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
        let eligible = |b: &Arc<Backend>| {
            !exclude.is_some_and(|x| Arc::ptr_eq(x, b)) && !b.is_ejected(&self.settings.clock)
        };
        let mut min = usize::MAX;
        let mut ties = 0usize;
        let mut first: Option<&Arc<Backend>> = None;
        for b in routable.iter().filter(|b| eligible(b)) {
            let n = b.in_flight();
            if n < min {
                (min, ties, first) = (n, 1, Some(b));
            } else if n == min {
                ties += 1;
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(first) = first else {
            return rotate(routable, start, exclude, &self.settings.clock);
        };
        let nth = start % ties;
        let chosen = routable
            .iter()
            .filter(|b| eligible(b) && b.in_flight() == min)
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
            if exclude.is_some_and(|x| Arc::ptr_eq(x, b)) || b.is_ejected(&self.settings.clock) {
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
            .find(|b| b.id == id && !b.is_ejected(&self.settings.clock))
            .cloned()
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
        // Fits: the remainder is below `len`, a usize.
        let start = (hash % routable.len() as u64) as usize;
        rotate(routable, start, exclude, &self.settings.clock)
    }

    /// A routable target chosen by `pick`, waiting for one if the group holds requests (scale
    /// from zero).
    ///
    /// A group coming up from nothing (every target still `initial`) is waited on too: those
    /// targets may not listen yet. When the wait times out, the fail-open pick is used.
    pub(crate) async fn pick_or_wait(
        &self,
        pick: impl Fn() -> Option<Arc<Backend>>,
    ) -> Option<Arc<Backend>> {
        if !self.hold.is_enabled() || !self.snapshot.load().starting {
            if let Some(b) = pick() {
                return Some(b);
            }
        }
        let ready = || {
            if self.snapshot.load().starting {
                None
            } else {
                pick()
            }
        };
        match self.hold.wait_for(ready).await {
            Some(b) => Some(b),
            None => pick(),
        }
    }

    /// Passive health: `backend` refused a connection or did not accept one in time; picking
    /// skips it for a back-off on the group's clock (see [`crate::lb::outlier`]).
    pub(crate) fn eject(&self, backend: &Backend) {
        backend.eject(&self.settings.clock);
    }
}

/// The first non-excluded, non-ejected backend from `start` on (wrapping); an ejected one when
/// nothing else is left.
fn rotate(
    routable: &[Arc<Backend>],
    start: usize,
    exclude: Option<&Arc<Backend>>,
    clock: &Clock,
) -> Option<Arc<Backend>> {
    let len = routable.len();
    let mut fallback: Option<&Arc<Backend>> = None;
    for i in 0..len {
        let b = &routable[start.wrapping_add(i) % len];
        if exclude.is_some_and(|x| Arc::ptr_eq(x, b)) {
            continue;
        }
        if !b.is_ejected(clock) {
            return Some(Arc::clone(b));
        }
        fallback.get_or_insert(b);
    }
    fallback.map(Arc::clone)
}
