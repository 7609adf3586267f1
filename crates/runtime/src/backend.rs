//! The admin API's view of the runtime: answers from the shared control state, and wakes the
//! control loop when an operator changes something.

use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use flotilla_admin::api::{
    ActivityInfo, ClusterInfo, CompleteLifecycleActionRequest, CompleteLifecycleActionResponse,
    GroupDetail, GroupSummary, InstanceInfo, InstanceRefreshInfo, LifecycleActionInfo,
    LifecycleHeartbeatRequest, ListenerInfo, ProtectionResponse, RefreshOverrides, ReloadResponse,
    TargetHealthInfo, TerminateResponse, WarmPoolInfo, ZoneInfo,
};
use flotilla_admin::{AdminBackend, AdminError};
use flotilla_control::{
    CapacityError, Instance, InstanceId, InstanceRefresh, RefreshError, ScalingProcess, ZoneDrill,
    ZoneError, ZoneStatus,
};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::control::{zone_of, Control, GroupRuntime};
use crate::persist::status_str;

/// Shared between the control loop and the admin API.
pub(crate) struct Shared {
    pub(crate) control: Mutex<Control>,
    pub(crate) wake: Notify,
    pub(crate) clock: Clock,
    /// Metrics store and scaling controllers; lock after `control` when both are needed.
    pub(crate) scaling: Mutex<crate::scaling::Scaling>,
    pub(crate) listener_set: crate::reload::ListenerSet,
    /// Activities of earlier runs (from the state store), newest first, per group.
    pub(crate) history: std::collections::BTreeMap<String, Vec<ActivityInfo>>,
    /// The config file to re-read on reload.
    pub(crate) config_path: Option<std::path::PathBuf>,
    /// The config in force; replaced by a successful reload (see `reload.rs`).
    pub(crate) config: Mutex<flotilla_config::Config>,
}

impl Shared {
    /// Locks the control state. A poisoned lock means a control-plane bug already panicked a
    /// thread; the state machines keep no invariant that a half-finished call could break
    /// badly enough to be worse than stopping, so we carry on with the inner value.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn summary(name: &str, g: &GroupRuntime) -> GroupSummary {
    let spec = g.asg.spec();
    GroupSummary {
        name: name.to_string(),
        min_size: spec.min_size,
        max_size: spec.max_size,
        desired_capacity: g.asg.desired_capacity(),
        in_service: g.asg.in_service_count(),
    }
}

/// One instance as the admin API shows it.
pub(crate) fn instance_info(clock: &Clock, c: &Control, i: &Instance) -> InstanceInfo {
    let record = c.instances.get(&i.id);
    InstanceInfo {
        id: i.id.to_string(),
        zone: i.zone.clone(),
        state: i.lifecycle.as_str().to_string(),
        health: i.health.as_str().to_string(),
        address: record.and_then(|r| r.address).map(|a| a.to_string()),
        pid: record.and_then(|r| r.pid),
        launched_at: clock.rfc3339(i.launched_at),
        launch_template_version: i.launch_template_version,
        protected_from_scale_in: i.protected_from_scale_in,
    }
}

fn refresh_info(clock: &Clock, group: &str, r: &InstanceRefresh) -> InstanceRefreshInfo {
    InstanceRefreshInfo {
        instance_refresh_id: r.id.clone(),
        group: group.to_string(),
        status: r.status.as_str().to_string(),
        status_reason: r.status_reason.clone(),
        percentage_complete: r.percentage_complete,
        instances_to_update: r.instances_to_update,
        instances_total: r.instances_total,
        min_healthy_percentage: r.preferences.min_healthy_percentage,
        instance_warmup: humantime::format_duration(r.preferences.instance_warmup).to_string(),
        checkpoint_percentages: r.preferences.checkpoint_percentages.clone(),
        checkpoint_delay: humantime::format_duration(r.preferences.checkpoint_delay).to_string(),
        auto_rollback: r.preferences.auto_rollback,
        checkpoint_until: r.checkpoint_until.map(|t| clock.rfc3339(t)),
        launch_template_version: r.launch_template_version,
        previous_launch_template_version: r.previous_launch_template_version,
        rollback_reason: r.rollback_reason.clone(),
        start_time: clock.rfc3339(r.start_time),
        end_time: r.end_time.map(|t| clock.rfc3339(t)),
    }
}

fn refresh_error(e: RefreshError) -> AdminError {
    match e {
        RefreshError::MinHealthyPercentage(_) | RefreshError::CheckpointPercentages(_) => {
            AdminError::BadRequest(e.to_string())
        }
        RefreshError::InProgress { .. } | RefreshError::NotInProgress => {
            AdminError::Conflict(e.to_string())
        }
    }
}

fn zone_error(e: ZoneError) -> AdminError {
    match e {
        ZoneError::UnknownZone(_) => AdminError::NotFound(e.to_string()),
        ZoneError::BadDuration { .. } => AdminError::BadRequest(e.to_string()),
        ZoneError::NotActive { .. } => AdminError::Conflict(e.to_string()),
    }
}

pub(crate) fn no_group(name: &str) -> AdminError {
    AdminError::NotFound(format!("no auto scaling group named `{name}`"))
}

fn no_instance(id: &str) -> AdminError {
    AdminError::NotFound(format!("no instance with id `{id}`"))
}

fn zone_info(clock: &Clock, c: &Control, z: &ZoneStatus) -> ZoneInfo {
    let state = if z.outage_until.is_some() {
        "outage"
    } else if z.shift_until.is_some() {
        "shifted"
    } else {
        "available"
    };
    let instances = c
        .groups
        .values()
        .flat_map(|g| g.asg.instances())
        .filter(|i| i.zone == z.name && i.lifecycle.is_live())
        .count();
    ZoneInfo {
        name: z.name.clone(),
        state: state.to_string(),
        outage_until: z.outage_until.map(|t| clock.rfc3339(t)),
        shift_until: z.shift_until.map(|t| clock.rfc3339(t)),
        instances: u32::try_from(instances).unwrap_or(u32::MAX),
    }
}

/// The admin API's handle on the shared state.
pub(crate) struct AdminView(pub(crate) Arc<Shared>);

impl AdminView {
    /// Starts or ends a zone drill, applies it to the groups and data plane at once (so the
    /// answer shows its effect), and wakes the loop to carry out the kills and launches.
    fn zone_drill(
        &self,
        zone: &str,
        drill: ZoneDrill,
        duration: Option<Duration>,
    ) -> Result<ZoneInfo, AdminError> {
        let now = self.clock.now();
        let mut c = self.lock();
        let result = match duration {
            Some(d) => c.zones.start(now, zone, drill, d),
            None => c.zones.end(zone, drill),
        };
        let status = result.map_err(zone_error)?;
        c.apply_zone_events(now);
        let info = zone_info(&self.clock, &c, &status);
        drop(c);
        self.wake.notify_one();
        Ok(info)
    }
}

impl std::ops::Deref for AdminView {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AdminBackend for AdminView {
    fn cluster(&self) -> ClusterInfo {
        let config = self.config();
        ClusterInfo {
            name: config.cluster.name.clone(),
            zones: config.cluster.zones.clone(),
        }
    }

    fn groups(&self) -> Vec<GroupSummary> {
        let c = self.lock();
        c.groups.iter().map(|(n, g)| summary(n, g)).collect()
    }

    fn group(&self, name: &str) -> Option<GroupDetail> {
        let c = self.lock();
        let g = c.groups.get(name)?;
        let s = summary(name, g);
        let instances = g
            .asg
            .instances()
            .map(|i| instance_info(&self.clock, &c, i))
            .collect();
        Some(GroupDetail {
            name: s.name,
            min_size: s.min_size,
            max_size: s.max_size,
            desired_capacity: s.desired_capacity,
            in_service: s.in_service,
            zones: g.asg.spec().zones.clone(),
            instances,
        })
    }

    fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<GroupSummary, AdminError> {
        let now = self.clock.now();
        let mut c = self.lock();
        let g = c.groups.get_mut(name).ok_or_else(|| no_group(name))?;
        // `set_desired_capacity` words the rest: "… set desired capacity from N to M".
        g.asg
            .set_desired_capacity(now, desired, "an operator")
            .map_err(|e: CapacityError| AdminError::OutOfRange(e.to_string()))?;
        let s = summary(name, g);
        if let Some(p) = &c.persist {
            p.desired(name, desired);
        }
        drop(c);
        self.wake.notify_one();
        Ok(s)
    }

    fn activities(&self, name: &str) -> Option<Vec<ActivityInfo>> {
        let c = self.lock();
        let g = c.groups.get(name)?;
        let current = g.asg.activities().map(|a| ActivityInfo {
            time: self.clock.rfc3339(a.time),
            cause: a.cause.clone(),
            description: a.description.clone(),
            status: status_str(a.status).to_string(),
        });
        let earlier = self.history.get(name).into_iter().flatten().cloned();
        Some(current.chain(earlier).collect())
    }

    fn target_health(&self, name: &str) -> Option<Vec<TargetHealthInfo>> {
        let c = self.lock();
        let tg = c.target_groups.get(name)?;
        Some(
            tg.health
                .targets()
                .map(|t| {
                    let instance = c.instance_at(t.target);
                    TargetHealthInfo {
                        target: t.target.to_string(),
                        instance_id: instance.map(|i| i.to_string()),
                        zone: instance.and_then(|i| zone_of(&c.groups, &c.instances, i)),
                        state: t.state.as_str().to_string(),
                        reason: t.reason.clone(),
                    }
                })
                .collect(),
        )
    }

    fn listeners(&self) -> Vec<ListenerInfo> {
        self.listener_set.infos()
    }

    fn prometheus(&self) -> String {
        crate::prometheus::render(self)
    }

    fn reload(&self) -> Result<ReloadResponse, AdminError> {
        crate::reload::reload(self)
    }

    fn terminate_instance(
        &self,
        id: &str,
        decrement_desired: bool,
    ) -> Result<TerminateResponse, AdminError> {
        let now = self.clock.now();
        let instance_id = InstanceId::from(id.to_string());
        let mut c = self.lock();
        let found = c
            .groups
            .iter()
            .find(|(_, g)| g.asg.instances().any(|i| i.id == instance_id))
            .map(|(name, _)| name.clone());
        let Some(group) = found else {
            return Err(no_instance(id));
        };
        let Some(g) = c.groups.get_mut(&group) else {
            return Err(no_instance(id));
        };
        let before = g.asg.desired_capacity();
        if !g
            .asg
            .terminate_instance(now, &instance_id, decrement_desired, "an operator")
        {
            return Err(AdminError::Conflict(format!(
                "instance {id} is not in service (it is pending, unhealthy or already terminating)"
            )));
        }
        let desired = g.asg.desired_capacity();
        if desired != before {
            if let Some(p) = &c.persist {
                p.desired(&group, desired);
            }
        }
        drop(c);
        self.wake.notify_one();
        Ok(TerminateResponse {
            instance_id: id.to_string(),
            group,
            desired_capacity: desired,
            replaced: desired == before,
        })
    }

    fn start_instance_refresh(
        &self,
        name: &str,
        overrides: RefreshOverrides,
    ) -> Result<InstanceRefreshInfo, AdminError> {
        let preferences = {
            let config = self.config();
            let asg = config
                .auto_scaling_groups
                .get(name)
                .ok_or_else(|| no_group(name))?;
            crate::reload::refresh_preferences(asg, overrides)
        };
        let now = self.clock.now();
        let mut c = self.lock();
        let g = c.groups.get_mut(name).ok_or_else(|| no_group(name))?;
        let r = g
            .asg
            .start_instance_refresh(now, preferences, "an operator")
            .map_err(refresh_error)?;
        drop(c);
        self.wake.notify_one();
        Ok(refresh_info(&self.clock, name, &r))
    }

    fn instance_refresh(&self, name: &str) -> Result<InstanceRefreshInfo, AdminError> {
        let c = self.lock();
        let g = c.groups.get(name).ok_or_else(|| no_group(name))?;
        let r = g.asg.instance_refresh().ok_or_else(|| {
            AdminError::NotFound(format!("group {name} has had no instance refresh"))
        })?;
        Ok(refresh_info(&self.clock, name, r))
    }

    fn cancel_instance_refresh(&self, name: &str) -> Result<InstanceRefreshInfo, AdminError> {
        let now = self.clock.now();
        let mut c = self.lock();
        let g = c.groups.get_mut(name).ok_or_else(|| no_group(name))?;
        let r = g
            .asg
            .cancel_instance_refresh(now, "an operator")
            .map_err(refresh_error)?;
        drop(c);
        self.wake.notify_one();
        Ok(refresh_info(&self.clock, name, &r))
    }

    fn zones(&self) -> Vec<ZoneInfo> {
        let c = self.lock();
        c.zones
            .zones()
            .map(|z| zone_info(&self.clock, &c, z))
            .collect()
    }

    fn start_zone_outage(&self, zone: &str, duration: Duration) -> Result<ZoneInfo, AdminError> {
        self.zone_drill(zone, ZoneDrill::Outage, Some(duration))
    }

    fn end_zone_outage(&self, zone: &str) -> Result<ZoneInfo, AdminError> {
        self.zone_drill(zone, ZoneDrill::Outage, None)
    }

    fn start_zonal_shift(&self, zone: &str, duration: Duration) -> Result<ZoneInfo, AdminError> {
        self.zone_drill(zone, ZoneDrill::Shift, Some(duration))
    }

    fn lifecycle_actions(&self, name: &str) -> Result<Vec<LifecycleActionInfo>, AdminError> {
        crate::lifecycle::actions(self, name)
    }

    fn complete_lifecycle_action(
        &self,
        name: &str,
        request: &CompleteLifecycleActionRequest,
    ) -> Result<CompleteLifecycleActionResponse, AdminError> {
        crate::lifecycle::complete(self, name, request)
    }

    fn record_lifecycle_action_heartbeat(
        &self,
        name: &str,
        request: &LifecycleHeartbeatRequest,
    ) -> Result<LifecycleActionInfo, AdminError> {
        crate::lifecycle::heartbeat(self, name, request)
    }

    fn warm_pool(&self, name: &str) -> Result<WarmPoolInfo, AdminError> {
        crate::lifecycle::warm_pool(self, name)
    }

    fn end_zonal_shift(&self, zone: &str) -> Result<ZoneInfo, AdminError> {
        self.zone_drill(zone, ZoneDrill::Shift, None)
    }

    fn rule_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<flotilla_admin::api::RuleWeights, AdminError> {
        crate::shift::rule_weights(&self.0, lb, rule, listener)
    }

    fn shift_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
        weights: &std::collections::BTreeMap<String, u32>,
    ) -> Result<flotilla_admin::api::RuleWeights, AdminError> {
        crate::shift::set_weights(&self.0, lb, rule, listener, Some(weights))
    }

    fn reset_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<flotilla_admin::api::RuleWeights, AdminError> {
        crate::shift::set_weights(&self.0, lb, rule, listener, None)
    }

    fn set_instance_protection(
        &self,
        id: &str,
        protected: bool,
    ) -> Result<ProtectionResponse, AdminError> {
        let now = self.clock.now();
        let instance_id = InstanceId::from(id.to_string());
        let mut c = self.lock();
        let group = c
            .groups
            .iter_mut()
            .find_map(|(name, g)| {
                g.asg
                    .set_instance_protection(now, &instance_id, protected)
                    .then(|| name.clone())
            })
            .ok_or_else(|| no_instance(id))?;
        if let Some(p) = &c.persist {
            p.protection(id, protected);
        }
        drop(c);
        tracing::info!(
            group = group.as_str(),
            instance = id,
            "an operator {} scale-in protection",
            if protected { "set" } else { "removed" }
        );
        self.wake.notify_one();
        Ok(ProtectionResponse {
            instance_id: id.to_string(),
            group,
            protected_from_scale_in: protected,
        })
    }

    fn scaling(&self, name: &str) -> Option<flotilla_admin::api::ScalingInfo> {
        let suspended: Vec<String> = {
            let c = self.lock();
            let g = c.groups.get(name)?;
            g.asg
                .suspended_processes()
                .map(|p| p.as_str().to_string())
                .collect()
        };
        let scaling = self
            .scaling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(flotilla_admin::api::ScalingInfo {
            policies: scaling.policies(name),
            suspended_processes: suspended,
        })
    }

    fn set_suspended_processes(
        &self,
        name: &str,
        processes: &[String],
    ) -> Result<flotilla_admin::api::ScalingInfo, AdminError> {
        let wanted = processes
            .iter()
            .map(|p| p.parse::<ScalingProcess>())
            .collect::<Result<std::collections::BTreeSet<_>, _>>()
            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
        let now = self.clock.now();
        {
            let mut c = self.lock();
            let g = c.groups.get_mut(name).ok_or_else(|| no_group(name))?;
            for p in ScalingProcess::ALL {
                if wanted.contains(&p) {
                    g.asg.suspend_process(p);
                } else if g.asg.is_suspended(p) {
                    g.asg.resume_process(now, p);
                }
            }
            let suspended = g
                .asg
                .suspended_processes()
                .map(|p| p.as_str().to_string())
                .collect();
            if let Some(persist) = &c.persist {
                persist.suspended(name, suspended);
            }
        }
        self.wake.notify_one();
        self.scaling(name).ok_or_else(|| no_group(name))
    }

    fn metric(
        &self,
        metric: &str,
        params: &flotilla_admin::api::MetricParams,
    ) -> Result<flotilla_admin::api::MetricDatapoints, AdminError> {
        let groups: Vec<String> = self.lock().groups.keys().cloned().collect();
        let scaling = self
            .scaling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        scaling.read(&self.clock, &groups, metric, params)
    }
}
