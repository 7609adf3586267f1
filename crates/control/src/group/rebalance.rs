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
    /// termination in the fullest zone; otherwise, when the group is settled and some zone has
    /// at least two instances more than the emptiest in-service zone, launches into the
    /// emptiest (above the desired capacity by one, within AWS's max + 10 % allowance). Each
    /// move makes the zones strictly more even, so rebalancing always ends.
    pub(super) fn rebalance_step(&mut self, now: Time) -> bool {
        if [
            ScalingProcess::AzRebalance,
            ScalingProcess::Launch,
            ScalingProcess::Terminate,
        ]
        .iter()
        .any(|p| self.is_suspended(*p))
            || self.refresh_is_active()
        {
            return false;
        }
        let ready: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                let m = &self.members[i];
                m.surge == Some(Surge::Rebalance) && m.is_healthy_in_service()
            })
            .collect();
        let mut acted = false;
        for i in ready {
            self.members[i].surge = None;
            let (new_id, new_zone) = (
                self.members[i].instance.id.clone(),
                self.members[i].instance.zone.clone(),
            );
            let Some(v) = self.choose_victim_among(now, |m| {
                m.is_capacity() && !m.instance.protected_from_scale_in && m.instance.id != new_id
            }) else {
                continue;
            };
            let victim_zone = self.members[v].instance.zone.clone();
            let cause = format!(
                "AZRebalance: instance {new_id} launched to even out the zones is healthy in \
                 {new_zone}; terminating one in {victim_zone}, the zone with the most instances"
            );
            self.start_terminating(now, v, cause);
            acted = true;
        }
        if acted {
            return true;
        }
        let settled = self
            .members
            .iter()
            .all(|m| m.surge.is_none() && m.instance.lifecycle != LifecycleState::Pending);
        if !settled
            || self.launch_not_before.is_some()
            || self.capacity_count() != self.desired as usize
        {
            return false;
        }
        let zones = self.zones_in_service();
        if zones.len() < 2 {
            return false;
        }
        let Some(v) = self.choose_victim(now) else {
            return false;
        };
        let victim_zone = self.members[v].instance.zone.clone();
        // Zones that failed a launch recently are not worth a move.
        let failed_recently = |z: &str| {
            self.zone_failed_at
                .iter()
                .any(|(fz, t)| fz == z && now < *t + super::MAX_BACKOFF)
        };
        let candidates: Vec<String> = zones
            .iter()
            .filter(|z| !failed_recently(z))
            .cloned()
            .collect();
        let Some(target) = placement::choose_zone(&candidates, |z| self.live_in_zone(z), |_| false)
            .map(str::to_string)
        else {
            return false;
        };
        let (have, want) = (self.live_in_zone(&victim_zone), self.live_in_zone(&target));
        let victim_zone_listed = zones.contains(&victim_zone);
        if victim_zone == target || (victim_zone_listed && have < want + 2) {
            return false;
        }
        let counts: Vec<String> = self
            .spec
            .zones
            .iter()
            .map(|z| format!("{z} {}", self.live_in_zone(z)))
            .collect();
        let cause = format!(
            "AZRebalance: instances per zone ({}) are uneven; launching one in {target} \
             first, then terminating one in {victim_zone}",
            counts.join(", ")
        );
        self.launch_in(now, target, cause, Some(Surge::Rebalance));
        true
    }
}
