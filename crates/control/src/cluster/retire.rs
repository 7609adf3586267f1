//! Removing things in place: a group that left the spec drains and stops every instance (as
//! AWS `DeleteAutoScalingGroup` with `ForceDelete`) and is forgotten once none is left; a target
//! group's static targets follow its spec (registered at once, deregistered through draining).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::controller::{ControllerSpec, ScalingController};
use crate::group::ScalingProcess;
use crate::time::Time;

use super::{Cluster, TargetGroupState};

impl Cluster {
    /// Starts deleting `name`: no policy, schedule, warm pool or hook keeps it alive, scale-in
    /// protection and suspended processes no longer hold its instances, a running refresh is
    /// cancelled, and desired capacity goes to 0 (each instance drains, then stops). Returns
    /// the change line.
    pub(super) fn retire_group(&mut self, now: Time, name: &str) -> String {
        let Some(g) = self.groups.get_mut(name) else {
            return format!("auto scaling group {name}: removed");
        };
        g.retiring = true;
        let cause = format!("group {name} was deleted");
        let _ = g.asg.cancel_instance_refresh(now, cause.as_str());
        // Desired 0 first, so nothing below can launch (a group not yet reconciled would).
        let mut spec = g.asg.spec().clone();
        spec.min_size = 0;
        spec.max_size = 0;
        spec.desired_capacity = 0;
        spec.warm_pool = None;
        spec.lifecycle_hooks.clear();
        g.asg.update_spec(now, spec);
        g.controller = ScalingController::new(
            ControllerSpec {
                default_instance_warmup: None,
                default_cooldown: g.config.default_cooldown,
                policies: Vec::new(),
                scheduled: Vec::new(),
            },
            now,
        );
        for process in g.asg.suspended_processes().collect::<Vec<ScalingProcess>>() {
            g.asg.resume_process(now, process);
        }
        let ids: Vec<_> = g.asg.instances().map(|i| i.id.clone()).collect();
        for id in &ids {
            g.asg.set_instance_protection(now, id, false);
        }
        g.asg.set_new_instances_protected_from_scale_in(false);
        self.pump(now);
        format!(
            "auto scaling group {name}: removed ({} instance(s) drain and stop; the group is \
             forgotten once none is left)",
            ids.len()
        )
    }

    /// Forgets retiring groups with no instance left.
    pub(super) fn forget_retired_groups(&mut self) {
        let gone: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.retiring && g.asg.instances().next().is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            tracing::info!(group = name.as_str(), "auto scaling group deleted");
            self.groups.remove(&name);
        }
    }

    /// Brings a target group's static targets to `wanted`; returns the change lines.
    pub(super) fn retarget(
        now: Time,
        name: &str,
        tg: &mut TargetGroupState,
        wanted: &[SocketAddr],
    ) -> Vec<String> {
        let old: BTreeSet<SocketAddr> = tg.spec.targets.iter().copied().collect();
        let new: BTreeSet<SocketAddr> = wanted.iter().copied().collect();
        let mut changes = Vec::new();
        for addr in new.difference(&old) {
            tg.health.register(now, *addr);
            changes.push(format!("target group {name}: target {addr} registered"));
        }
        for addr in old.difference(&new) {
            tg.health.deregister(now, *addr);
            changes.push(format!(
                "target group {name}: target {addr} deregistered (draining)"
            ));
        }
        if !changes.is_empty() {
            tg.dirty = true;
        }
        changes
    }
}
