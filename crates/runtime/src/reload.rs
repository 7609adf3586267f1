//! Hot reload (`SIGHUP`, `POST /v1/reload`): the file is validated first; an invalid one is
//! refused with every error as FILE:LINE:COL and the running config keeps serving; a valid one
//! is applied as a diff, in place, without touching a connection: group bounds and desired
//! capacity (`update_spec`), target groups' health-check settings, new target groups, launch
//! template changes (a new version for later launches). Changes that need a restart (the admin
//! bind, the state directory, adding or removing groups, ...) refuse the whole reload, so a
//! reload is never half-applied.

use std::sync::MutexGuard;

use flotilla_admin::api::ReloadResponse;
use flotilla_admin::AdminError;
use flotilla_config::{Config, ConfigError};
use flotilla_control::{GroupSpec, HealthCheckSpec, HealthCheckType, TargetGroupHealth};

use crate::backend::Shared;
use crate::control::{ProbeSpec, TargetGroupRuntime};

/// The control plane's spec of a group as the config describes it.
pub(crate) fn group_spec(
    name: &str,
    asg: &flotilla_config::AutoScalingGroup,
    launch_template_version: u64,
) -> GroupSpec {
    use flotilla_config::TerminationPolicy as C;
    use flotilla_control::TerminationPolicy as T;
    GroupSpec {
        name: name.to_string(),
        zones: asg.zones.clone(),
        min_size: asg.min_size,
        max_size: asg.max_size,
        desired_capacity: asg.desired_capacity,
        health_check_type: match asg.health_check_type {
            flotilla_config::HealthCheckType::Process => HealthCheckType::Process,
            flotilla_config::HealthCheckType::Elb => HealthCheckType::Elb,
        },
        health_check_grace_period: asg.health_check_grace_period,
        termination_policies: asg
            .termination_policies
            .iter()
            .map(|p| match p {
                C::Default => T::Default,
                C::OldestInstance => T::OldestInstance,
                C::NewestInstance => T::NewestInstance,
                C::OldestLaunchTemplate => T::OldestLaunchTemplate,
            })
            .collect(),
        launch_template_version,
        has_target_groups: !asg.target_groups.is_empty(),
    }
}

/// The health machine's and the prober's settings for a target group.
pub(crate) fn health_specs(tg: &flotilla_config::TargetGroup) -> (HealthCheckSpec, ProbeSpec) {
    let hc = &tg.health_check;
    (
        HealthCheckSpec {
            interval: hc.interval,
            timeout: hc.timeout,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
        },
        ProbeSpec {
            http_path: (hc.protocol == flotilla_config::Protocol::Http).then(|| hc.path.clone()),
            timeout: hc.timeout,
            matcher: hc.matcher.clone(),
        },
    )
}

/// Re-reads the config file and applies it; the answer lists what changed.
pub(crate) fn reload(shared: &Shared) -> Result<ReloadResponse, AdminError> {
    let Some(path) = shared.config_path.as_deref() else {
        return Err(AdminError::Internal(
            "this flotilla was started without a config file to reload".into(),
        ));
    };
    // Held for the whole reload, so two reloads never interleave.
    let mut current = shared.config();
    let new = match flotilla_config::load(path) {
        Ok(c) => c,
        Err(ConfigError::Invalid(diagnostics)) => {
            let errors: Vec<String> = diagnostics.0.iter().map(|d| d.to_string()).collect();
            return Err(AdminError::InvalidConfig {
                summary: format!(
                    "{}: {} error{} found; the running config is unchanged",
                    path.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
                errors,
            });
        }
        Err(e) => {
            return Err(AdminError::InvalidConfig {
                summary: format!("{e}; the running config is unchanged"),
                errors: vec![e.to_string()],
            })
        }
    };
    let blockers = needs_restart(&current, &new);
    if !blockers.is_empty() {
        return Err(AdminError::Conflict(format!(
            "the new config needs a restart to apply ({}); nothing was changed",
            blockers.join("; ")
        )));
    }
    let changes = apply(shared, &current, &new);
    *current = new;
    drop(current);
    shared.wake.notify_one();
    Ok(ReloadResponse { changes })
}

/// `reload` for `SIGHUP`: the outcome goes to the log.
pub(crate) fn reload_and_log(shared: &Shared) {
    match reload(shared) {
        Ok(r) if r.changes.is_empty() => tracing::info!("config reloaded: nothing changed"),
        Ok(r) => tracing::info!("config reloaded: {}", r.changes.join("; ")),
        Err(AdminError::InvalidConfig { summary, errors }) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!("reload refused: {summary}");
        }
        Err(e) => tracing::error!("reload refused: {e}"),
    }
}

/// What a reload cannot change in place.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut why = Vec::new();
    if old.cluster.admin_bind != new.cluster.admin_bind {
        why.push("admin_bind changed".to_string());
    }
    if old.cluster.state_dir != new.cluster.state_dir {
        why.push("state_dir changed".to_string());
    }
    if old.cluster.admin_token_env != new.cluster.admin_token_env {
        why.push("admin_token_env changed".to_string());
    }
    for name in old.auto_scaling_groups.keys() {
        if !new.auto_scaling_groups.contains_key(name) {
            why.push(format!("auto scaling group {name} removed"));
        }
    }
    for (name, g) in &new.auto_scaling_groups {
        match old.auto_scaling_groups.get(name) {
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
    for (name, tg) in &old.target_groups {
        match new.target_groups.get(name) {
            None => why.push(format!("target group {name} removed")),
            Some(n) if n.targets != tg.targets => {
                why.push(format!("static targets of target group {name} changed"))
            }
            _ => {}
        }
    }
    if old.load_balancers != new.load_balancers {
        why.push("load balancers or listeners changed".to_string());
    }
    why
}

/// Applies a validated config that needs no restart; returns one line per change.
fn apply(shared: &Shared, old: &Config, new: &Config) -> Vec<String> {
    let now = shared.clock.now();
    let mut changes = Vec::new();
    let mut c = shared.lock();

    for (name, tg) in &new.target_groups {
        let (spec, probe) = health_specs(tg);
        match c.target_groups.get_mut(name) {
            Some(rt) => {
                if old.target_groups.get(name) != Some(tg) {
                    rt.health.update_spec(spec, tg.deregistration_delay);
                    rt.probe = probe;
                    changes.push(format!(
                        "target group {name}: health check settings updated"
                    ));
                }
            }
            None => {
                let mut health = TargetGroupHealth::new(spec, tg.deregistration_delay);
                for target in &tg.targets {
                    health.register(now, *target);
                }
                c.target_groups.insert(
                    name.clone(),
                    TargetGroupRuntime::new(
                        health,
                        flotilla_proxy::TargetGroup::new(name.clone()),
                        probe,
                    ),
                );
                changes.push(format!("target group {name}: added"));
            }
        }
    }

    for (name, asg) in &new.auto_scaling_groups {
        let Some(before) = old.auto_scaling_groups.get(name) else {
            continue;
        };
        let template_changed = old.launch_templates.get(&asg.launch_template)
            != new.launch_templates.get(&asg.launch_template);
        if before == asg && !template_changed {
            continue;
        }
        let Some(g) = c.groups.get_mut(name) else {
            continue;
        };
        let current = g.asg.spec().clone();
        let mut version = current.launch_template_version;
        if template_changed {
            version += 1;
            changes.push(format!(
                "auto scaling group {name}: launch template {} is now version {version} (new instances use it)",
                asg.launch_template
            ));
        }
        let mut spec = group_spec(name, asg, version);
        if before.desired_capacity == asg.desired_capacity {
            // Not changed in the file: keep the group's own desired (operator, policy).
            spec.desired_capacity = current.desired_capacity;
        }
        let desired_before = g.asg.desired_capacity();
        g.asg.update_spec(now, spec);
        let s = g.asg.spec();
        for (what, a, b) in [
            ("min_size", current.min_size, s.min_size),
            ("max_size", current.max_size, s.max_size),
            ("desired_capacity", desired_before, g.asg.desired_capacity()),
        ] {
            if a != b {
                changes.push(format!("auto scaling group {name}: {what} {a} → {b}"));
            }
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
    }
    drop(c);
    for change in &changes {
        tracing::info!("reload: {change}");
    }
    changes
}

impl Shared {
    /// The config in force (locked: reloads replace it).
    pub(crate) fn config(&self) -> MutexGuard<'_, Config> {
        // A reload that panicked half-way leaves the old or the new config, both valid.
        self.config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
