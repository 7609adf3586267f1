//! A new config applied in place (hot reload, the AWS API's changes): checked first, so a
//! change that needs a restart refuses the whole reload and nothing is half-applied. Groups and
//! target groups may come and go (`retire.rs` drains and stops a removed group).

use crate::time::Time;

use super::spec::{AutoScalingGroupConfig, ClusterSpec, RefreshOverrides};
use super::{Cluster, Durable, Effect};

impl Cluster {
    /// What in `spec` cannot be applied in place (empty: [`reconfigure`](Self::reconfigure)
    /// will take it).
    pub fn reconfigure_blockers(&self, spec: &ClusterSpec) -> Vec<String> {
        let mut why = Vec::new();
        for (name, g) in &spec.groups {
            match self.groups.get(name) {
                Some(s) if s.retiring => why.push(format!(
                    "auto scaling group {name} is still being deleted (its instances drain and \
                     stop); add it again once it is gone"
                )),
                Some(s) if s.config.target_groups != g.target_groups => why.push(format!(
                    "target groups of auto scaling group {name} changed"
                )),
                _ => {}
            }
        }
        why
    }

    /// Applies `spec` in place; returns one line per change. Call only when
    /// [`reconfigure_blockers`](Self::reconfigure_blockers) found nothing (anything it would
    /// refuse is skipped here).
    pub fn reconfigure(&mut self, now: Time, spec: ClusterSpec) -> Vec<String> {
        let mut changes = Vec::new();
        self.garbage = true;
        self.cost_cache = None;
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
                    if (t.spec.health_check, t.spec.deregistration_delay)
                        != (tg.health_check, tg.deregistration_delay)
                    {
                        t.health
                            .update_spec(tg.health_check, tg.deregistration_delay);
                        changes.push(format!(
                            "target group {name}: health check settings updated"
                        ));
                    }
                    changes.extend(Self::retarget(now, name, t, &tg.targets));
                    t.spec = tg.clone();
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
        let removed: Vec<String> = self
            .groups
            .iter()
            .filter(|(name, g)| !g.retiring && !spec.groups.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            changes.push(self.retire_group(now, &name));
        }
        for (name, config) in spec.groups {
            let Some(old_name) = self.groups.get(&name).map(|g| &g.config.launch_template) else {
                changes.push(format!(
                    "auto scaling group {name}: added (desired capacity {})",
                    config.desired_capacity
                ));
                if config.min_size == 0 {
                    self.hold_requests_for(&config.target_groups);
                }
                self.add_group(now, &name, config);
                continue;
            };
            // A group may also be pointed at another template (the AWS API's
            // `UpdateAutoScalingGroup`): new instances then use its content as a new version.
            let template_changed =
                old_templates.get(old_name) != self.launch_templates.get(&config.launch_template);
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

    /// Publishes `name`'s routing table again (and asks again to hold its requests when it
    /// does), for a driver that rebuilt its data-plane object (changed balancing settings).
    pub fn republish_target_group(&mut self, name: &str) {
        let Some(tg) = self.target_groups.get_mut(name) else {
            return;
        };
        tg.dirty = true;
        if tg.holds {
            self.effects.push_back(Effect::HoldRequests {
                target_group: name.to_string(),
            });
        }
        self.publish();
    }

    /// Target groups of a group that may be empty hold requests that find no target.
    fn hold_requests_for(&mut self, target_groups: &[String]) {
        for name in target_groups {
            if let Some(t) = self.target_groups.get_mut(name) {
                if !t.holds {
                    t.holds = true;
                    self.effects.push_back(Effect::HoldRequests {
                        target_group: name.clone(),
                    });
                }
            }
        }
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
        let version = if template_changed {
            let v = Self::next_template_version(g, template);
            changes.push(format!(
                "auto scaling group {name}: launch template {} is now version {v} (new \
                 instances use it)",
                config.launch_template
            ));
            v
        } else {
            current.launch_template_version
        };
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
        changes.extend(Self::describe_group_change(
            now,
            name,
            g,
            &config,
            &current,
            desired_before,
            template_changed,
        ));
        g.config = config;
        changes
    }

    /// A version number above every version `g` has seen (so one a rollback left is never
    /// reused for other contents), recorded with its template.
    fn next_template_version(
        g: &mut super::GroupState,
        template: Option<crate::template::LaunchTemplate>,
    ) -> u64 {
        let seen = g.templates.keys().next_back().copied().unwrap_or(0);
        let version = seen.max(g.asg.spec().launch_template_version) + 1;
        if let Some(t) = template {
            Self::record_template(g, version, t);
        }
        version
    }

    /// The change lines of a group's new spec (and the refresh a template change starts
    /// when the group asks for one).
    fn describe_group_change(
        now: Time,
        name: &str,
        g: &mut super::GroupState,
        config: &AutoScalingGroupConfig,
        current: &crate::group::GroupSpec,
        desired_before: u32,
        template_changed: bool,
    ) -> Vec<String> {
        let mut changes = Vec::new();
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
        changes
    }
}
