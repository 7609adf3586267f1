//! A new config applied in place (hot reload, `flotilla apply`): checked first, so a change
//! that needs a restart refuses the whole reload and nothing is half-applied.

use crate::time::Time;

use super::spec::{AutoScalingGroupConfig, ClusterSpec, RefreshOverrides};
use super::{Cluster, Durable, Effect};

impl Cluster {
    /// What in `spec` cannot be applied in place (empty: [`reconfigure`](Self::reconfigure)
    /// will take it).
    pub fn reconfigure_blockers(&self, spec: &ClusterSpec) -> Vec<String> {
        let mut why = Vec::new();
        for name in self.groups.keys() {
            if !spec.groups.contains_key(name) {
                why.push(format!("auto scaling group {name} removed"));
            }
        }
        for (name, g) in &spec.groups {
            match self.groups.get(name).map(|s| &s.config) {
                None => why.push(format!("auto scaling group {name} added")),
                Some(o) if o.target_groups != g.target_groups => why.push(format!(
                    "target groups of auto scaling group {name} changed"
                )),
                Some(o) if o.launch_template != g.launch_template => why.push(format!(
                    "launch template of auto scaling group {name} changed"
                )),
                _ => {}
            }
        }
        for (name, tg) in &spec.target_groups {
            if self
                .target_groups
                .get(name)
                .is_some_and(|old| old.spec.targets != tg.targets)
            {
                why.push(format!("static targets of target group {name} changed"));
            }
        }
        why
    }

    /// Applies `spec` in place; returns one line per change. Call only when
    /// [`reconfigure_blockers`](Self::reconfigure_blockers) found nothing (anything it would
    /// refuse is skipped here).
    pub fn reconfigure(&mut self, now: Time, spec: ClusterSpec) -> Vec<String> {
        let mut changes = Vec::new();
        if self
            .zones
            .zones()
            .map(|z| z.name.as_str())
            .ne(spec.zones.iter().map(String::as_str))
        {
            // Drills on zones that are gone end; new zones start available.
            self.zones.set_zones(spec.zones.iter().cloned());
            changes.push(format!("cluster zones: {}", spec.zones.join(", ")));
        }
        let old_templates = std::mem::replace(&mut self.launch_templates, spec.launch_templates);
        if self.pricing != spec.pricing {
            self.pricing = spec.pricing;
            changes.push("pricing: price table or reservations updated".to_string());
        }
        for (name, tg) in &spec.target_groups {
            match self.target_groups.get_mut(name) {
                Some(t) if t.spec != *tg => {
                    t.health
                        .update_spec(tg.health_check, tg.deregistration_delay);
                    t.spec = tg.clone();
                    changes.push(format!(
                        "target group {name}: health check settings updated"
                    ));
                }
                Some(_) => {}
                None => {
                    self.add_target_group(now, name, tg.clone());
                    changes.push(format!("target group {name}: added"));
                }
            }
        }
        self.target_groups.retain(|name, _| {
            let keep = spec.target_groups.contains_key(name);
            if !keep {
                changes.push(format!("target group {name}: removed"));
            }
            keep
        });
        for (name, config) in spec.groups {
            let template_changed = old_templates.get(&config.launch_template)
                != self.launch_templates.get(&config.launch_template);
            changes.extend(self.reconfigure_group(now, &name, config, template_changed));
        }
        self.forwards
            .configure(now, &spec.forwards, &mut self.effects);
        self.pump(now);
        for change in &changes {
            tracing::info!(change = change.as_str(), "reconfigured");
        }
        changes
    }

    fn reconfigure_group(
        &mut self,
        now: Time,
        name: &str,
        config: AutoScalingGroupConfig,
        template_changed: bool,
    ) -> Vec<String> {
        let mut changes = Vec::new();
        let template = self.launch_templates.get(&config.launch_template).cloned();
        let drain = self.interruption_lead(&config);
        let Some(g) = self.groups.get_mut(name) else {
            return changes;
        };
        let before = g.config.clone();
        if before == config && !template_changed {
            return changes;
        }
        let current = g.asg.spec().clone();
        let mut version = current.launch_template_version;
        if template_changed {
            let seen = g.templates.keys().next_back().copied().unwrap_or(0);
            // Above every version seen, so a version a rollback left is never reused.
            version = seen.max(version) + 1;
            if let Some(t) = template {
                Self::record_template(g, version, t);
            }
            changes.push(format!(
                "auto scaling group {name}: launch template {} is now version {version} (new \
                 instances use it)",
                config.launch_template
            ));
        }
        let mut spec = config.group_spec(name, version, drain);
        if before.desired_capacity == config.desired_capacity {
            // Not changed in the file: keep the group's own desired (operator, policy).
            spec.desired_capacity = current.desired_capacity;
        } else {
            // Changed in the file: the newer intent replaces an operator's earlier one, also
            // for the next restart.
            self.effects.push_back(Effect::Persist(Durable::Desired {
                group: name.to_string(),
                desired: None,
            }));
        }
        let desired_before = g.asg.desired_capacity();
        if before.new_instances_protected_from_scale_in
            != config.new_instances_protected_from_scale_in
        {
            g.asg.set_new_instances_protected_from_scale_in(
                config.new_instances_protected_from_scale_in,
            );
            changes.push(format!(
                "auto scaling group {name}: new_instances_protected_from_scale_in {} → {}",
                before.new_instances_protected_from_scale_in,
                config.new_instances_protected_from_scale_in
            ));
        }
        g.asg.update_spec(now, spec);
        if before.scaling_changed(&config) {
            let mut controller =
                crate::controller::ScalingController::new(config.controller_spec(), now);
            controller.adopt_history(&g.controller);
            g.controller = controller;
            changes.push(format!(
                "auto scaling group {name}: scaling policies, scheduled actions, warm-up or \
                 cooldown replaced ({} policies, {} scheduled actions; alarm and stabilization \
                 history start afresh)",
                config.scaling_policies.len(),
                config.scheduled_actions.len()
            ));
        }
        let s = g.asg.spec().clone();
        for (what, a, b) in [
            ("min_size", current.min_size, s.min_size),
            ("max_size", current.max_size, s.max_size),
            ("desired_capacity", desired_before, g.asg.desired_capacity()),
        ] {
            if a != b {
                changes.push(format!("auto scaling group {name}: {what} {a} → {b}"));
            }
        }
        if template_changed && config.instance_refresh.on_launch_template_change {
            let preferences = config.refresh_preferences(RefreshOverrides::default());
            let cause = "a configuration reload that changed the launch template";
            match g.asg.start_instance_refresh(now, preferences, cause) {
                Ok(r) => changes.push(format!(
                    "auto scaling group {name}: instance refresh {} started \
                     (instance_refresh.on_launch_template_change)",
                    r.id
                )),
                Err(e) => changes.push(format!(
                    "auto scaling group {name}: no instance refresh started: {e}"
                )),
            }
        }
        if (&current.lifecycle_hooks, current.warm_pool) != (&s.lifecycle_hooks, s.warm_pool) {
            changes.push(format!(
                "auto scaling group {name}: lifecycle hooks or warm pool updated ({} hook(s), \
                 warm pool {}; waits in progress keep the hooks they started with)",
                s.lifecycle_hooks.len(),
                if s.warm_pool.is_some() { "on" } else { "off" }
            ));
        }
        if current.zones != s.zones
            || current.health_check_type != s.health_check_type
            || current.health_check_grace_period != s.health_check_grace_period
            || current.termination_policies != s.termination_policies
        {
            changes.push(format!(
                "auto scaling group {name}: zones, health checks or termination policies updated"
            ));
        }
        g.config = config;
        changes
    }
}
