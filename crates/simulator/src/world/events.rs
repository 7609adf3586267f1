//! The scenario's events and the instances' failures: zone outages as the world has them
//! (the control plane is not told; its health checks and EC2's status checks find out),
//! Spot interruption notices as EC2 sends them, instance refreshes, and crashes.

use std::time::Duration;

use flotilla_config::scenario::EventKind;
use flotilla_control::pricing::PurchaseOption;
use flotilla_control::{InstanceId, LifecycleState, RefreshOverrides, Time};

use super::{Ev, Record, World};

/// How long after a zone goes down EC2's status checks report its instances impaired (they
/// run every minute), so that a group without load balancer health checks replaces them.
pub(super) const STATUS_CHECK_DELAY: Duration = Duration::from_secs(60);

impl World<'_> {
    /// The scenario's events due at `now`.
    pub(super) fn scenario_events(&mut self, now: Time, record: Record<'_>) {
        let due: Vec<EventKind> = self
            .sc
            .events
            .iter()
            .filter(|e| self.origin + e.at == now)
            .map(|e| e.kind.clone())
            .collect();
        for kind in due {
            self.now = now;
            match kind {
                EventKind::ZoneOutage { zone, duration } => self.zone_down(&zone, duration),
                EventKind::SpotInterruption { count } => self.interrupt(now, count),
                EventKind::Refresh => {
                    let o = RefreshOverrides::default();
                    if let Err(e) = self.cluster.start_instance_refresh(now, &self.group, o) {
                        tracing::warn!(error = %e, "the scenario's instance refresh did not start");
                    }
                }
            }
            self.drain(record);
        }
    }

    /// The zone goes down: its instances stop answering, launches there fail.
    fn zone_down(&mut self, zone: &str, duration: Duration) {
        let until = self.now + duration;
        self.zones_down.insert(zone.to_string(), until);
        for inst in self.instances.values_mut() {
            if inst.zone == zone {
                inst.dead = true;
                self.changes += 1;
            }
        }
        self.schedule(until, Ev::ZoneUp(zone.to_string()));
        self.schedule(
            self.now + STATUS_CHECK_DELAY,
            Ev::StatusCheck(zone.to_string()),
        );
    }

    /// The zone is back: instances still there answer again.
    pub(super) fn zone_up(&mut self, zone: &str) {
        self.zones_down.remove(zone);
        for inst in self.instances.values_mut() {
            if inst.zone == zone {
                inst.dead = false;
                self.changes += 1;
            }
        }
    }

    /// EC2's status checks fail for the instances of a zone still down: to the group they
    /// are gone (it replaces them), as the runtime reports an instance whose process died.
    pub(super) fn status_check(&mut self, zone: &str) {
        if !self.zones_down.contains_key(zone) {
            return;
        }
        let impaired: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.zone == zone && i.dead)
            .map(|(id, _)| id.clone())
            .collect();
        for id in impaired {
            self.exit(
                &id,
                "impaired: instance status checks failed (the zone is down)",
            );
        }
    }

    /// A crash at the scenario's rate per instance-hour: an exponential time from now.
    pub(super) fn schedule_crash(&mut self, id: &InstanceId) {
        let rate = self.sc.instance.crash_rate;
        if rate <= 0.0 {
            return;
        }
        let u = self.rng.unit().max(f64::MIN_POSITIVE);
        let after = -u.ln() / rate * 3600.0;
        if after < 1e9 {
            let at = self.now + Duration::from_secs_f64(after);
            self.schedule(at, Ev::Crash(id.clone()));
        }
    }

    /// Interruption notices for `count` Spot instances in service, chosen at random.
    fn interrupt(&mut self, now: Time, count: u32) {
        for _ in 0..count {
            let Some(g) = self.cluster.group(&self.group) else {
                return;
            };
            let spot: Vec<InstanceId> = g
                .asg
                .instances()
                .filter(|i| {
                    i.purchase_option == PurchaseOption::Spot
                        && i.lifecycle == LifecycleState::InService
                        && g.asg.interruption_deadline(&i.id).is_none()
                })
                .map(|i| i.id.clone())
                .collect();
            if spot.is_empty() {
                return;
            }
            let id = spot[self.rng.below(spot.len() as u64) as usize].clone();
            if let Err(e) = self.cluster.interrupt_spot(now, &id, None) {
                tracing::warn!(error = %e, "the scenario's Spot interruption was refused");
            }
        }
    }
}
