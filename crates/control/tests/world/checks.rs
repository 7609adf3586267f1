//! The invariants: checked on every effect, after every simulated second, and at the end.

use flotilla_control::{Effect, LifecycleState, RollbackState, TargetState};

use super::spec::{canary_rule, MAX, MIN, STABILIZATION};
use super::World;

impl World {
    /// What must hold of each effect when the cluster asks for it.
    pub(super) fn check_effect(&self, e: &Effect) {
        match e {
            Effect::Launch(r) => {
                let zone = self.cluster.zones().zone(&r.zone);
                assert!(
                    zone.is_some_and(|z| z.outage_until.is_none()),
                    "{:?}: launch of {} into {}, which is in an outage",
                    self.now,
                    r.id,
                    r.zone
                );
                assert!(
                    self.group()
                        .activities()
                        .any(|a| a.description.contains(r.id.as_str())),
                    "{:?}: launch of {} without an activity",
                    self.now,
                    r.id
                );
            }
            Effect::Stop { id } => {
                let state = self
                    .group()
                    .instances()
                    .find(|i| &i.id == id)
                    .map(|i| i.lifecycle);
                assert!(
                    !matches!(
                        state,
                        Some(LifecycleState::TerminatingWait | LifecycleState::WarmedPendingWait)
                    ),
                    "{:?}: stop of {id} while its terminate hooks wait ({state:?})",
                    self.now
                );
                let routed =
                    self.published.values().flatten().any(|t| {
                        t.instance.as_ref() == Some(id) && t.state != TargetState::Draining
                    });
                assert!(
                    !routed,
                    "{:?}: stop of {id} while it still gets traffic",
                    self.now
                );
            }
            _ => {}
        }
    }

    /// The instances and the latest activities and trace lines, for failure messages.
    pub(super) fn story(&self) -> String {
        let g = self.group();
        let mut out = String::new();
        for i in g.instances() {
            out += &format!(
                "  {} {} {:?} v{}\n",
                i.id, i.zone, i.lifecycle, i.launch_template_version
            );
        }
        let mut acts: Vec<_> = g.activities().take(25).collect();
        acts.reverse();
        for a in acts {
            out += &format!("  {:?} {} — {}\n", a.time, a.description, a.cause);
        }
        for l in self.trace.iter().rev().take(15).rev() {
            out += &format!("  trace: {l}\n");
        }
        out
    }

    /// What must hold after every simulated second.
    pub(super) fn check(&self) {
        let g = self.group();
        let d = g.desired_capacity();
        assert!((MIN..=MAX).contains(&d), "desired {d} outside {MIN}..{MAX}");
        let live: Vec<_> = g.instances().filter(|i| i.lifecycle.is_live()).collect();
        let protected = live.iter().filter(|i| i.protected_from_scale_in).count() as u32;
        // At most one launched ahead (AZRebalance or a refresh) above what must stay.
        let bound = d.max(protected) + 1;
        let held = g.is_suspended(flotilla_control::ScalingProcess::Terminate);
        assert!(
            held || live.len() as u32 <= bound,
            "{:?}: {} live instances above desired {d} + 1 ({protected} protected)\n{}",
            self.now,
            live.len(),
            self.story()
        );
        // Only in-service instances get new traffic; nothing terminated is still routed.
        for t in self.published.values().flatten() {
            let Some(id) = &t.instance else { continue };
            if t.state == TargetState::Draining {
                continue;
            }
            let state = g.instances().find(|i| &i.id == id).map(|i| i.lifecycle);
            assert_eq!(
                state,
                Some(LifecycleState::InService),
                "{:?}: {id} is routed ({:?}) while {state:?}",
                self.now,
                t.state
            );
            assert!(
                !self.stopped.contains(id),
                "{:?}: {id} routed after its stop",
                self.now
            );
        }
        // A scale-in never goes below what the stabilization window recommended.
        if let Some(floor) = self.cluster.group("web").and_then(|g| {
            g.controller
                .target_tracking_policies()
                .filter_map(|p| p.scale_in_floor(self.now))
                .max()
        }) {
            let decided = g.activities().take_while(|a| a.time == self.now).find(|a| {
                a.description.starts_with("Setting desired capacity")
                    && a.cause.contains("< target")
            });
            if let Some(a) = decided {
                assert!(
                    d >= floor.clamp(MIN, MAX),
                    "scale-in to {d} below the stabilization floor {floor}: {}",
                    a.cause
                );
            }
        }
        // A rolled-back canary gets no traffic.
        if let Some(r) = self
            .cluster
            .forward(&canary_rule())
            .and_then(|f| f.rollback)
        {
            if matches!(r.state(), RollbackState::RolledBack { .. }) {
                assert_eq!(
                    self.canary_weight,
                    Some(0),
                    "{:?}: rolled back, still weighted",
                    self.now
                );
            }
        }
    }

    /// Once the faults stop, every group converges: desired in service, zones even, every
    /// in-service instance healthy in its target group, nothing left draining or pending.
    pub fn finish(&self) {
        let g = self.group();
        let d = g.desired_capacity() as usize;
        let in_service: Vec<_> = g
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .collect();
        assert_eq!(
            in_service.len(),
            d,
            "{:?}: {} in service, desired {d}\n{}",
            self.now,
            in_service.len(),
            self.story()
        );
        let mut per_zone = [0usize; 3];
        for i in &in_service {
            if let Some(z) = super::ZONES.iter().position(|z| *z == i.zone) {
                per_zone[z] += 1;
            }
        }
        let (lo, hi) = (per_zone.iter().min(), per_zone.iter().max());
        assert!(
            hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
            "zones uneven after the quiet period: {per_zone:?}"
        );
        let healthy = self
            .published
            .get("web")
            .into_iter()
            .flatten()
            .filter(|t| t.state == TargetState::Healthy)
            .count();
        assert_eq!(
            healthy, d,
            "{:?}: {healthy} healthy targets, desired {d}",
            self.now
        );
        assert!(
            g.instances().all(|i| !i.lifecycle.is_launching()),
            "nothing still launching"
        );
        // Flapping: a scale-in needs the whole stabilization window below the last
        // scale-out's recommendation, so at most one out→in reversal per window (plus what
        // operators cause).
        let mut reversals = 0;
        let mut last_up = false;
        for line in &self.trace {
            let (up, down) = (line.contains("> target"), line.contains("< target"));
            if last_up && down {
                reversals += 1;
            }
            if up || down {
                last_up = up;
            }
        }
        let secs = self.now.as_duration().as_secs();
        let bound = secs / STABILIZATION + 1 + u64::from(self.operator_actions);
        assert!(
            reversals <= bound,
            "{reversals} scale-out/in reversals exceed {bound}"
        );
    }
}
