//! The cluster's state in the admin API's words: one function per answer type, and the
//! mapping of the control plane's refusals onto HTTP statuses.

use flotilla_admin::api::{
    InstanceInfo, InstanceRefreshInfo, LifecycleActionInfo, PolicyInfo, RollbackInfo, RuleWeights,
    ZoneInfo,
};
use flotilla_admin::AdminError;
use std::collections::BTreeMap;

use flotilla_control::{
    AutoScalingGroup, Cluster, ForwardStatus, Instance, InstanceBill, InstanceId, InstanceRefresh,
    LifecycleAction, LifecycleActionError, OperatorError, RefreshError, RollbackState,
    ScalingController, SpotError, WeightSource, WeightsError, ZoneError, ZoneStatus,
};

use crate::clock::Clock;

use super::ControlHost;

/// The HTTP status an operator command's refusal deserves.
pub(crate) fn operator_error(e: OperatorError) -> AdminError {
    let msg = e.to_string();
    match e {
        OperatorError::NoGroup(_) | OperatorError::NoInstance(_) => AdminError::NotFound(msg),
        OperatorError::NotInService(_) => AdminError::Conflict(msg),
        OperatorError::Capacity(_) => AdminError::OutOfRange(msg),
        OperatorError::Refresh(r) => match r {
            RefreshError::MinHealthyPercentage(_) | RefreshError::CheckpointPercentages(_) => {
                AdminError::BadRequest(msg)
            }
            RefreshError::InProgress { .. } | RefreshError::NotInProgress => {
                AdminError::Conflict(msg)
            }
        },
        OperatorError::Zone(z) => match z {
            ZoneError::UnknownZone(_) => AdminError::NotFound(msg),
            ZoneError::BadDuration { .. } => AdminError::BadRequest(msg),
            ZoneError::NotActive { .. } => AdminError::Conflict(msg),
        },
        OperatorError::Lifecycle(l) => match l {
            LifecycleActionError::UnknownInstance(_) => AdminError::NotFound(msg),
            LifecycleActionError::NotWaiting { .. } => AdminError::Conflict(msg),
        },
        OperatorError::Weights(w) => match w {
            WeightsError::NotFound(_) => AdminError::NotFound(msg),
            WeightsError::Invalid(_) => AdminError::BadRequest(msg),
        },
        OperatorError::Spot(SpotError::NoInstance(_)) => AdminError::NotFound(msg),
        OperatorError::Spot(_) => AdminError::Conflict(msg),
    }
}

/// One instance, with its purchase option and price from `bills` ([`Cluster::bills`]).
pub(crate) fn instance(
    host: &impl ControlHost,
    c: &Cluster,
    i: &Instance,
    bills: &BTreeMap<InstanceId, InstanceBill>,
) -> InstanceInfo {
    let bill = bills.get(&i.id);
    InstanceInfo {
        id: i.id.to_string(),
        zone: i.zone.clone(),
        state: i.lifecycle.as_str().to_string(),
        health: i.health.as_str().to_string(),
        address: c.instance_address(&i.id).map(|a| a.to_string()),
        pid: host.pid(&i.id),
        launched_at: host.clock().rfc3339(i.launched_at),
        launch_template_version: i.launch_template_version,
        protected_from_scale_in: i.protected_from_scale_in,
        purchase_option: i.purchase_option.as_str().to_string(),
        billing: bill
            .map(|b| b.billing.as_str().to_string())
            .unwrap_or_default(),
        instance_type: bill.map(|b| b.instance_type.clone()).unwrap_or_default(),
        price_per_hour: bill.and_then(|b| b.hourly),
        interruption_deadline: bill
            .and_then(|b| b.interruption_deadline)
            .map(|t| host.clock().rfc3339(t)),
        limits: host.limits(&i.id),
    }
}

/// An instance refresh and its progress.
pub(crate) fn refresh(clock: &Clock, group: &str, r: &InstanceRefresh) -> InstanceRefreshInfo {
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

/// One zone and its drills.
pub(crate) fn zone(clock: &Clock, c: &Cluster, z: &ZoneStatus) -> ZoneInfo {
    let state = if z.outage_until.is_some() {
        "outage"
    } else if z.shift_until.is_some() {
        "shifted"
    } else {
        "available"
    };
    let instances = c
        .groups()
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

/// Every policy of a group.
pub(crate) fn policies(controller: &ScalingController) -> Vec<PolicyInfo> {
    controller
        .policy_status()
        .into_iter()
        .map(|p| PolicyInfo {
            name: p.name,
            kind: p.kind.to_string(),
            description: p.description,
            alarm_state: p.alarm_state.map(|s| s.as_str().to_string()),
            last_value: p.last_value,
        })
        .collect()
}

/// The instance's lifecycle state as the API names it; `terminated` once the group let go.
pub(crate) fn state_of(asg: &AutoScalingGroup, id: &flotilla_control::InstanceId) -> &'static str {
    asg.instances()
        .find(|i| i.id == *id)
        .map_or("terminated", |i| i.lifecycle.as_str())
}

/// A waiting lifecycle action.
pub(crate) fn lifecycle_action(
    clock: &Clock,
    asg: &AutoScalingGroup,
    a: &LifecycleAction,
) -> LifecycleActionInfo {
    LifecycleActionInfo {
        instance_id: a.instance_id.to_string(),
        hook: a.hook.clone(),
        transition: a.transition.as_str().to_string(),
        state: state_of(asg, &a.instance_id).to_string(),
        timeout_at: clock.rfc3339(a.timeout_at),
        default_result: a.default_result.as_str().to_string(),
    }
}

/// A forward action's weights and canary rollback.
pub(crate) fn weights(clock: &Clock, f: &ForwardStatus<'_>) -> RuleWeights {
    let map = |groups: &[flotilla_control::WeightedTargetGroup]| {
        groups.iter().map(|g| (g.name.clone(), g.weight)).collect()
    };
    let o = f.weights;
    RuleWeights {
        load_balancer: f.rule.load_balancer.clone(),
        listener: f.rule.listener.to_string(),
        rule: f.rule.rule(),
        weights: map(o.map_or(f.configured, |o| &o.weights)),
        configured: map(f.configured),
        source: match o.map(|o| &o.source) {
            None => "config",
            Some(WeightSource::Operator) => "operator",
            Some(WeightSource::Rollback(_)) => "rollback",
        }
        .to_string(),
        cause: o.map(|o| match &o.source {
            WeightSource::Operator => "shifted by an operator".to_string(),
            WeightSource::Rollback(cause) => cause.clone(),
        }),
        rollback: f.rollback.map(|r| {
            let (alarm_state, alarm) = r.alarm();
            let (state, at, cause) = match r.state() {
                RollbackState::Idle => ("idle", None, None),
                RollbackState::Watching => ("watching", None, None),
                RollbackState::RolledBack { at, cause } => {
                    ("rolled_back", Some(clock.rfc3339(*at)), Some(cause.clone()))
                }
            };
            RollbackInfo {
                target_group: r.spec().target_group.clone(),
                state: state.to_string(),
                alarm,
                alarm_state: alarm_state.as_str().to_string(),
                rolled_back_at: at,
                cause,
            }
        }),
    }
}
