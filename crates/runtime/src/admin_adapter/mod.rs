//! The admin API's handle on the runtime: reads answer from the cluster's state; commands go
//! to the cluster's operator methods, and their effects are carried out before the answer, so
//! a client that reads right after sees them applied. The same adapter serves `flotilla up`
//! and a cluster-mode leader, through [`ControlHost`].

mod forecast;
mod host;
mod info;
mod metrics;
mod up;

pub(crate) use host::ControlHost;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla_admin::api::{
    ActivityInfo, ClusterInfo, CompleteLifecycleActionRequest, CompleteLifecycleActionResponse,
    ForecastInfo, GroupDetail, GroupSummary, InstanceRefreshInfo, LifecycleActionInfo,
    LifecycleHeartbeatRequest, LifecycleResult, ListenerInfo, MetricDatapoints, MetricParams,
    ProtectionResponse, RefreshOverrides, ReloadResponse, RuleWeights, ScalingInfo,
    SpotInterruptionResponse, TargetHealthInfo, TerminateResponse, WarmPoolInfo, ZoneInfo,
};
use flotilla_admin::{AdminBackend, AdminError};
use flotilla_control::{
    group_cost_per_hour, Cluster, GroupView, InstanceBill, InstanceId, LifecycleActionResult,
    OperatorError, ScalingProcess, ZoneDrill,
};

use crate::persist::status_str;

pub(crate) use info::operator_error;

/// The admin API's view of the runtime.
pub(crate) struct AdminView<H>(pub(crate) H);

fn no_group(name: &str) -> AdminError {
    operator_error(OperatorError::NoGroup(name.to_string()))
}

/// A group's summary; `bills` ([`Cluster::bills`]) computed once by the caller.
fn summary(g: &GroupView<'_>, bills: &BTreeMap<InstanceId, InstanceBill>) -> GroupSummary {
    let spec = g.asg.spec();
    GroupSummary {
        name: g.name.to_string(),
        min_size: spec.min_size,
        max_size: spec.max_size,
        desired_capacity: g.asg.desired_capacity(),
        in_service: g.asg.in_service_count(),
        cost_per_hour: group_cost_per_hour(g.asg, bills),
    }
}

impl<H: ControlHost> AdminView<H> {
    /// Runs an operator command on the cluster, then carries out what it set off.
    fn command<R>(
        &self,
        f: impl FnOnce(&mut Cluster, flotilla_control::Time) -> Result<R, OperatorError>,
    ) -> Result<R, AdminError> {
        self.0.command(f)
    }

    fn zone_drill(
        &self,
        zone: &str,
        drill: ZoneDrill,
        duration: Option<Duration>,
    ) -> Result<ZoneInfo, AdminError> {
        let status = self.command(|c, now| c.zone_drill(now, zone, drill, duration))?;
        Ok(self.0.read(|c| info::zone(self.0.clock(), c, &status)))
    }

    fn group_answer<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Cluster, GroupView<'_>) -> R,
    ) -> Result<R, AdminError> {
        self.0.read(|c| {
            let g = c.group(name).ok_or_else(|| no_group(name))?;
            Ok(f(c, g))
        })
    }

    fn weights_of(&self, key: &flotilla_control::RuleKey) -> Result<RuleWeights, AdminError> {
        self.0.read(|c| {
            let f = c
                .forward(key)
                .ok_or_else(|| AdminError::NotFound(format!("no forward action {}", key.rule())))?;
            Ok(info::weights(self.0.clock(), &f))
        })
    }
}

impl<H: ControlHost> AdminBackend for AdminView<H> {
    fn edge(&self) -> Option<std::sync::Arc<dyn flotilla_admin::edge_api::EdgeBackend>> {
        self.0.edge()
    }

    fn cluster(&self) -> ClusterInfo {
        self.0.cluster_info()
    }

    fn groups(&self) -> Vec<GroupSummary> {
        self.0.read(|c| {
            let bills = c.bills();
            c.groups().map(|g| summary(&g, &bills)).collect()
        })
    }

    fn group(&self, name: &str) -> Option<GroupDetail> {
        self.group_answer(name, |c, g| {
            let bills = c.bills();
            let s = summary(&g, &bills);
            GroupDetail {
                name: s.name,
                min_size: s.min_size,
                max_size: s.max_size,
                desired_capacity: s.desired_capacity,
                in_service: s.in_service,
                zones: g.asg.spec().zones.clone(),
                instances: g
                    .asg
                    .instances()
                    .map(|i| info::instance(&self.0, c, i, &bills))
                    .collect(),
                cost_per_hour: s.cost_per_hour,
            }
        })
        .ok()
    }

    fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<GroupSummary, AdminError> {
        self.command(|c, now| c.set_desired_capacity(now, name, desired))?;
        self.group_answer(name, |c, g| summary(&g, &c.bills()))
    }

    fn activities(&self, name: &str) -> Option<Vec<ActivityInfo>> {
        let current: Vec<ActivityInfo> = self
            .group_answer(name, |_, g| {
                g.asg
                    .activities()
                    .map(|a| ActivityInfo {
                        time: self.0.clock().rfc3339(a.time),
                        cause: a.cause.clone(),
                        description: a.description.clone(),
                        status: status_str(a.status).to_string(),
                    })
                    .collect()
            })
            .ok()?;
        let earlier = self.0.history(name);
        Some(current.into_iter().chain(earlier).collect())
    }

    fn target_health(&self, name: &str) -> Option<Vec<TargetHealthInfo>> {
        self.0.read(|c| {
            let tg = c.target_group_health(name)?;
            Some(
                tg.targets()
                    .map(|t| {
                        let instance = c.instance_at(t.target);
                        TargetHealthInfo {
                            target: t.target.to_string(),
                            instance_id: instance.map(|i| i.to_string()),
                            zone: instance.and_then(|i| c.zone_of(i)),
                            state: t.state.as_str().to_string(),
                            reason: t.reason.clone(),
                        }
                    })
                    .collect(),
            )
        })
    }

    fn listeners(&self) -> Vec<ListenerInfo> {
        self.0.listeners()
    }

    fn metric(&self, metric: &str, params: &MetricParams) -> Result<MetricDatapoints, AdminError> {
        self.0
            .read(|c| metrics::read(self.0.clock(), c, metric, params))
    }

    fn scaling(&self, name: &str) -> Option<ScalingInfo> {
        self.group_answer(name, |_, g| ScalingInfo {
            policies: info::policies(g.controller),
            suspended_processes: g
                .asg
                .suspended_processes()
                .map(|p| p.as_str().to_string())
                .collect(),
        })
        .ok()
    }

    fn set_suspended_processes(
        &self,
        name: &str,
        processes: &[String],
    ) -> Result<ScalingInfo, AdminError> {
        let wanted = processes
            .iter()
            .map(|p| p.parse::<ScalingProcess>())
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
        self.command(|c, now| c.set_suspended_processes(now, name, &wanted))?;
        self.scaling(name).ok_or_else(|| no_group(name))
    }

    fn terminate_instance(
        &self,
        id: &str,
        decrement_desired: bool,
    ) -> Result<TerminateResponse, AdminError> {
        let instance = InstanceId::from(id.to_string());
        let t = self.command(|c, now| c.terminate_instance(now, &instance, decrement_desired))?;
        Ok(TerminateResponse {
            instance_id: id.to_string(),
            group: t.group,
            desired_capacity: t.desired_capacity,
            replaced: t.replaced,
        })
    }

    fn forecast(&self, name: &str) -> Result<ForecastInfo, AdminError> {
        self.group_answer(name, |_, g| forecast::forecast(&g))
    }

    fn interrupt_spot(
        &self,
        id: &str,
        notice: Option<Duration>,
    ) -> Result<SpotInterruptionResponse, AdminError> {
        let instance = InstanceId::from(id.to_string());
        let deadline = self.command(|c, now| c.interrupt_spot(now, &instance, notice))?;
        let (group, capacity_rebalance) = self.0.read(|c| {
            let group = c
                .find_instance(&instance)
                .map(|(g, _)| g.to_string())
                .unwrap_or_default();
            let capacity_rebalance = c
                .group(&group)
                .and_then(|g| g.config.instances_distribution)
                .is_some_and(|d| d.capacity_rebalance);
            (group, capacity_rebalance)
        });
        Ok(SpotInterruptionResponse {
            instance_id: id.to_string(),
            group,
            interruption_deadline: self.0.clock().rfc3339(deadline),
            capacity_rebalance,
        })
    }

    fn set_instance_protection(
        &self,
        id: &str,
        protected: bool,
    ) -> Result<ProtectionResponse, AdminError> {
        let instance = InstanceId::from(id.to_string());
        let group = self.command(|c, now| c.set_instance_protection(now, &instance, protected))?;
        Ok(ProtectionResponse {
            instance_id: id.to_string(),
            group,
            protected_from_scale_in: protected,
        })
    }

    fn prometheus(&self) -> String {
        self.0.prometheus()
    }

    fn upgrade(&self) -> Result<flotilla_admin::api::UpgradeResponse, AdminError> {
        self.0.upgrade()
    }

    fn reload(&self) -> Result<ReloadResponse, AdminError> {
        self.0.reload()
    }

    fn start_instance_refresh(
        &self,
        name: &str,
        overrides: RefreshOverrides,
    ) -> Result<InstanceRefreshInfo, AdminError> {
        let r = self.command(|c, now| c.start_instance_refresh(now, name, overrides))?;
        Ok(info::refresh(self.0.clock(), name, &r))
    }

    fn instance_refresh(&self, name: &str) -> Result<InstanceRefreshInfo, AdminError> {
        self.group_answer(name, |_, g| {
            g.asg
                .instance_refresh()
                .map(|r| info::refresh(self.0.clock(), name, r))
        })?
        .ok_or_else(|| AdminError::NotFound(format!("group {name} has had no instance refresh")))
    }

    fn cancel_instance_refresh(&self, name: &str) -> Result<InstanceRefreshInfo, AdminError> {
        let r = self.command(|c, now| c.cancel_instance_refresh(now, name))?;
        Ok(info::refresh(self.0.clock(), name, &r))
    }

    fn zones(&self) -> Vec<ZoneInfo> {
        self.0.read(|c| {
            c.zones()
                .zones()
                .map(|z| info::zone(self.0.clock(), c, z))
                .collect()
        })
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

    fn end_zonal_shift(&self, zone: &str) -> Result<ZoneInfo, AdminError> {
        self.zone_drill(zone, ZoneDrill::Shift, None)
    }

    fn lifecycle_actions(&self, name: &str) -> Result<Vec<LifecycleActionInfo>, AdminError> {
        self.group_answer(name, |_, g| {
            g.asg
                .lifecycle_actions()
                .iter()
                .map(|a| info::lifecycle_action(self.0.clock(), g.asg, a))
                .collect()
        })
    }

    fn complete_lifecycle_action(
        &self,
        name: &str,
        request: &CompleteLifecycleActionRequest,
    ) -> Result<CompleteLifecycleActionResponse, AdminError> {
        let id = InstanceId::from(request.instance_id.clone());
        let result = match request.result {
            LifecycleResult::Continue => LifecycleActionResult::Continue,
            LifecycleResult::Abandon => LifecycleActionResult::Abandon,
        };
        self.command(|c, now| c.complete_lifecycle_action(now, name, &id, &request.hook, result))?;
        let state = self.group_answer(name, |_, g| info::state_of(g.asg, &id).to_string())?;
        Ok(CompleteLifecycleActionResponse {
            instance_id: request.instance_id.clone(),
            hook: request.hook.clone(),
            result: request.result,
            state,
        })
    }

    fn record_lifecycle_action_heartbeat(
        &self,
        name: &str,
        request: &LifecycleHeartbeatRequest,
    ) -> Result<LifecycleActionInfo, AdminError> {
        let id = InstanceId::from(request.instance_id.clone());
        let action = self
            .command(|c, now| c.record_lifecycle_action_heartbeat(now, name, &id, &request.hook))?
            .ok_or_else(|| AdminError::Conflict("the lifecycle action ended".to_string()))?;
        self.group_answer(name, |_, g| {
            info::lifecycle_action(self.0.clock(), g.asg, &action)
        })
    }

    fn warm_pool(&self, name: &str) -> Result<WarmPoolInfo, AdminError> {
        self.group_answer(name, |c, g| {
            let pool = g.asg.warm_pool()?;
            Some(WarmPoolInfo {
                group: name.to_string(),
                min_size: pool.config.min_size,
                max_group_prepared_capacity: pool.config.prepared_capacity(g.asg.spec().max_size),
                pool_state: "running".to_string(),
                reuse_on_scale_in: pool.config.reuse_on_scale_in,
                desired_size: pool.desired_size,
                size: pool.size,
                instances: {
                    let bills = c.bills();
                    g.asg
                        .instances()
                        .filter(|i| i.lifecycle.is_warmed())
                        .map(|i| info::instance(&self.0, c, i, &bills))
                        .collect()
                },
            })
        })?
        .ok_or_else(|| {
            AdminError::NotFound(format!("auto scaling group `{name}` has no warm pool"))
        })
    }

    fn rule_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<RuleWeights, AdminError> {
        let key = self
            .0
            .read(|c| c.resolve_forward(lb, rule, listener).cloned())
            .map_err(operator_error)?;
        self.weights_of(&key)
    }

    fn shift_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
        weights: &std::collections::BTreeMap<String, u32>,
    ) -> Result<RuleWeights, AdminError> {
        let key = self.command(|c, now| c.set_weights(now, lb, rule, listener, Some(weights)))?;
        self.weights_of(&key)
    }

    fn reset_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<RuleWeights, AdminError> {
        let key = self.command(|c, now| c.set_weights(now, lb, rule, listener, None))?;
        self.weights_of(&key)
    }
}
