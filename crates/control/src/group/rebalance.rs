//! Zones going out of service and coming back (the zone outage drill), and AZRebalance
//! (AWS §5.4): when the zones are uneven, launch into the emptiest one first, then terminate
//! one from the fullest once the new instance is healthy.

use super::{
    placement, ActivityStatus, AutoScalingGroup, GroupAction, InstanceHealth, LifecycleState,
    ScalingProcess, Stopping, Surge,
};
use crate::time::Time;

impl AutoScalingGroup {
    /// The zone had an outage: every instance of the group in it is lost at once (the runtime
    /// is asked to SIGKILL them, no draining, each recorded as an activity with `cause`), and
    /// the zone takes no launches until [`handle_zone_recovered`](Self::handle_zone_recovered),
    /// so the lost capacity is launched in the group's other zones.
    pub fn handle_zone_outage(&mut self, now: Time, zone: &str, cause: &str) {
        self.out_of_service_zones.insert(zone.to_string());
        for i in 0..self.members.len() {
            if self.members[i].instance.zone == zone {
                self.cancel_hooks(now, i, cause);
                self.members[i].to_pool = false;
            }
        }
        let has_tg = self.spec.has_target_groups;
        let mut lost = Vec::new();
        for m in self.members.iter_mut() {
            if m.instance.zone != zone || m.stopping == Stopping::Killing {
                continue;
            }
            let id = m.instance.id.clone();
            let registered = m.instance.lifecycle == LifecycleState::InService
                && m.stopping == Stopping::No
                && has_tg;
            if m.terminate_activity.is_none() {
                m.terminate_activity = Some(self.activities.record(
                    now,
                    format!(
                        "{cause}: instance {id} in {zone} was killed at once (SIGKILL, no \
                         draining) — replacing it in another zone"
                    ),
                    format!("Terminating instance: {id} in {zone} (lost to the zone outage)"),
                    ActivityStatus::InProgress,
                ));
            }
            m.instance.lifecycle = LifecycleState::Terminating;
            self.lifecycle_changes += 1;
            m.instance.health = InstanceHealth::Unhealthy;
            m.stopping = Stopping::Killing;
            m.unhealthy_report = None;
            m.surge = None;
            lost.push((id, registered));
        }
        let n = lost.len();
        for (id, registered) in lost {
            if registered {
                // The target is dead: deregister it so no request is routed there; the group
                // does not wait for the drain.
                self.actions
                    .push_back(GroupAction::DeregisterTargets { id: id.clone() });
            }
            self.actions.push_back(GroupAction::Kill { id });
        }
        if n > 0 {
            self.pending_cause = Some(format!(
                "{cause}: {n} instance(s) in {zone} were lost and the zone takes no launches \
                 until it recovers"
            ));
        }
        if self.reconciled {
            self.reconcile(now);
        }
    }

    /// The zone is back: it takes launches again, and AZRebalance (unless suspended) moves
    /// instances into it until the zones are even.
    pub fn handle_zone_recovered(&mut self, now: Time, zone: &str) {
        if self.out_of_service_zones.remove(zone) && self.reconciled {
            self.reconcile(now);
        }
    }

    /// Whether the zone takes launches (no outage in progress).
    pub fn is_zone_in_service(&self, zone: &str) -> bool {
        !self.out_of_service_zones.contains(zone)
    }

    /// The group's zones that take launches, in config order.
    pub(super) fn zones_in_service(&self) -> Vec<String> {
        self.spec
            .zones
            .iter()
            .filter(|z| self.is_zone_in_service(z))
            .cloned()
            .collect()
    }

    /// One AZRebalance step; returns whether it acted. Pairs a healthy rebalance launch with a
    /// termination in the zone it was launched to relieve; otherwise, when the group is settled
    /// and the fullest zone (one with an instance scale-in may take) has at least two instances
    /// more than the emptiest zone that takes launches, or is no longer one of the group's,
    /// launches into the emptiest (above the desired capacity by one, within AWS's max + 10 %
    /// allowance). Each move makes the zones strictly more even, so rebalancing always ends.
    pub(super) fn rebalance_step(&mut self, now: Time) -> bool {
        if [
            ScalingProcess::AzRebalance,
            ScalingProcess::Launch,
            ScalingProcess::Terminate,
        ]
        .iter()
        .any(|p| self.is_suspended(*p))
        {
            return false;
        }
        let ready: Vec<(usize, String)> = (0..self.members.len())
            .filter_map(|i| {
                let m = &self.members[i];
                match &m.surge {
                    Some(Surge::Rebalance { from }) if m.is_healthy_in_service() => {
                        Some((i, from.clone()))
                    }
                    _ => None,
                }
            })
            .collect();
        let mut acted = false;
        for (i, from) in ready {
            self.members[i].surge = None;
            let (new_id, new_zone) = (
                self.members[i].instance.id.clone(),
                self.members[i].instance.zone.clone(),
            );
            let eligible = |m: &super::Member| {
                m.is_capacity() && !m.instance.protected_from_scale_in && m.instance.id != new_id
            };
            // From the zone the move relieves; should that have lost its instances meanwhile,
            // by the usual scale-in rules. A mixed group keeps its On-Demand/Spot split.
            let prefer = self.scale_in_preference();
            let Some(v) = self
                .choose_victim_among(now, prefer, |m| eligible(m) && m.instance.zone == from)
                .or_else(|| self.choose_victim_among(now, prefer, eligible))
            else {
                continue;
            };
            let victim_zone = self.members[v].instance.zone.clone();
            let cause = format!(
                "AZRebalance: instance {new_id} launched to even out the zones is healthy in \
                 {new_zone}; terminating one in {victim_zone}"
            );
            self.start_terminating(now, v, cause);
            acted = true;
        }
        // A move under way finishes; no new one starts while a refresh replaces instances
        // (it launches ahead itself, and one surge at a time keeps the group within desired
        // + 1).
        if acted || self.refresh_is_active() {
            return acted;
        }
        match self.imbalance(now) {
            Some((from, to)) => {
                let listed = self.spec.zones.contains(&from);
                let mut counts: Vec<String> = self
                    .spec
                    .zones
                    .iter()
                    .map(|z| format!("{z} {}", self.live_in_zone(z)))
                    .collect();
                if !listed {
                    let n = self.live_in_zone(&from);
                    counts.push(format!("{from} {n}, no longer one of the group's"));
                }
                let cause = format!(
                    "AZRebalance: instances per zone ({}) are uneven; launching one in {to} \
                     first, then terminating one in {from}",
                    counts.join(", ")
                );
                self.launch_in(now, to, cause, Some(Surge::Rebalance { from }));
                true
            }
            None => false,
        }
    }

    /// (fullest zone, emptiest zone) when a settled group should move an instance at `now`.
    /// The emptiest is chosen among the zones that take launches and did not just fail one —
    /// the same check placement uses — so moves resume when an outage ends.
    fn imbalance(&self, now: Time) -> Option<(String, String)> {
        // Settled: nothing launching, no move under way, no instance about to be replaced.
        let settled = self.members.iter().all(|m| {
            m.surge.is_none()
                && !m.instance.lifecycle.is_launching()
                && m.unhealthy_report.is_none()
        });
        // AWS lets a rebalancing group exceed max_size by max(10 % of it, 1) meanwhile.
        let max = self.spec.max_size as usize;
        let allowance = (max / 10).max(1);
        let capacity = self.capacity_count();
        if !settled
            || self.launch_not_before.is_some()
            || capacity != self.desired as usize
            || capacity + 1 > max + allowance
        {
            return None;
        }
        let listed = |z: &str| self.spec.zones.iter().any(|x| x == z);
        // Live instances per zone, counted once: a count per member made this quadratic.
        let live = self.live_per_zone();
        let live_in = |z: &str| live.get(z).copied().unwrap_or(0);
        // Fullest: a zone with an instance scale-in may take; an unlisted zone counts as fuller
        // than any listed one, as for scale-in.
        let from = self
            .members
            .iter()
            .filter(|m| m.is_capacity() && !m.instance.protected_from_scale_in)
            .map(|m| m.instance.zone.as_str())
            .max_by_key(|z| (!listed(z), live_in(z)))?;
        let candidates: Vec<String> = self
            .zones_in_service()
            .into_iter()
            .filter(|z| !self.zone_failed_recently(now, z))
            .collect();
        let to = placement::choose_zone(&candidates, live_in, |_| false)?;
        let uneven = !listed(from) || live_in(from) >= live_in(to) + 2;
        (from != to && uneven).then(|| (from.to_string(), to.to_string()))
    }
}
