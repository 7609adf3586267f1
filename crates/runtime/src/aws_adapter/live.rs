//! The cluster's live state in the AWS API's terms: AWS lifecycle state names, wall-clock
//! milliseconds, status codes.

use flotilla_aws::{ActivityLive, GroupLive, InstanceLive, RefreshLive, TargetLive};
use flotilla_control::pricing::PurchaseOption;
use flotilla_control::{ActivityStatus, Cluster, InstanceHealth, InstanceRefresh, LifecycleState};

use crate::clock::Clock;
use crate::shared::Shared;

/// AWS's spelling of a lifecycle state.
pub(crate) fn lifecycle(s: LifecycleState) -> &'static str {
    match s {
        LifecycleState::Pending => "Pending",
        LifecycleState::PendingWait => "Pending:Wait",
        LifecycleState::InService => "InService",
        LifecycleState::Terminating => "Terminating",
        LifecycleState::TerminatingWait => "Terminating:Wait",
        LifecycleState::TerminatingProceed => "Terminating:Proceed",
        LifecycleState::Terminated => "Terminated",
        LifecycleState::WarmedPending => "Warmed:Pending",
        LifecycleState::WarmedPendingWait => "Warmed:Pending:Wait",
        LifecycleState::WarmedRunning => "Warmed:Running",
    }
}

/// A group as the API describes it. `instance_type` is its launch template's.
pub(crate) fn group_with(
    clock: &Clock,
    c: &Cluster,
    name: &str,
    instance_type: &str,
) -> Option<GroupLive> {
    let g = c.group(name)?;
    let spec = g.asg.spec();
    let instances = g
        .asg
        .instances()
        .filter(|i| i.lifecycle != LifecycleState::Terminated)
        .map(|i| InstanceLive {
            id: i.id.to_string(),
            group: name.to_string(),
            zone: i.zone.clone(),
            lifecycle: lifecycle(i.lifecycle).to_string(),
            health: match i.health {
                InstanceHealth::Healthy => "Healthy",
                InstanceHealth::Unhealthy => "Unhealthy",
            }
            .to_string(),
            protected: i.protected_from_scale_in,
            launch_template_version: i.launch_template_version,
            address: c.instance_address(&i.id).map(|a| a.to_string()),
            launched_ms: clock.wall_ms(i.launched_at),
            instance_type: instance_type.to_string(),
            spot: i.purchase_option == PurchaseOption::Spot,
        })
        .collect();
    Some(GroupLive {
        desired: g.asg.desired_capacity(),
        min: spec.min_size,
        max: spec.max_size,
        instances,
        suspended: g
            .asg
            .suspended_processes()
            .map(|p| p.as_str().to_string())
            .collect(),
        refreshes: g
            .asg
            .instance_refresh()
            .map(|r| refresh(clock, r))
            .into_iter()
            .collect(),
        waiting: g
            .asg
            .lifecycle_actions()
            .iter()
            .map(|a| (a.instance_id.to_string(), a.hook.clone()))
            .collect(),
    })
}

/// A group, its instance type read from the config in force.
pub(crate) fn group(shared: &Shared, c: &Cluster, name: &str) -> Option<GroupLive> {
    let template = c.group(name)?.config.launch_template.clone();
    let instance_type = shared
        .config_snapshot_instance_type(&template)
        .unwrap_or_else(|| "t3.micro".to_string());
    group_with(&shared.clock, c, name, &instance_type)
}

/// An instance refresh.
pub(crate) fn refresh(clock: &Clock, r: &InstanceRefresh) -> RefreshLive {
    RefreshLive {
        id: r.id.clone(),
        status: r.status.as_str().to_string(),
        status_reason: r.status_reason.clone(),
        start_ms: clock.wall_ms(r.start_time),
        end_ms: r.end_time.map(|t| clock.wall_ms(t)),
        percentage_complete: r.percentage_complete,
        instances_to_update: r.instances_to_update,
        min_healthy_percentage: r.preferences.min_healthy_percentage,
        instance_warmup: r.preferences.instance_warmup.as_secs(),
    }
}

fn activity_id(group: &str, ms: i64, what: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.bytes().chain(ms.to_le_bytes()).chain(what.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let g = h.rotate_left(17) ^ 0x5bd1_e995_5bd1_e995;
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        g & 0xfff,
        g >> 16 & 0xffff_ffff_ffff
    )
}

fn status(s: &str) -> &'static str {
    match s {
        "in_progress" => "InProgress",
        "failed" => "Failed",
        "cancelled" => "Cancelled",
        _ => "Successful",
    }
}

/// A group's activities, newest first: this run's, then earlier runs'.
pub(crate) fn activities(shared: &Shared, c: &Cluster, name: &str) -> Option<Vec<ActivityLive>> {
    let g = c.group(name)?;
    let clock = &shared.clock;
    let mut out: Vec<ActivityLive> = g
        .asg
        .activities()
        .map(|a| {
            let start_ms = clock.wall_ms(a.time);
            let done = a.status != ActivityStatus::InProgress;
            ActivityLive {
                id: activity_id(name, start_ms, &a.description),
                start_ms,
                end_ms: a
                    .end_time
                    .map(|t| clock.wall_ms(t))
                    .or(done.then_some(start_ms)),
                cause: a.cause.clone(),
                description: a.description.clone(),
                status: status(crate::persist::status_str(a.status)).to_string(),
                progress: if done { 100 } else { 50 },
            }
        })
        .collect();
    for a in shared.history.get(name).into_iter().flatten() {
        let start_ms = humantime::parse_rfc3339(&a.time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        out.push(ActivityLive {
            id: activity_id(name, start_ms, &a.description),
            start_ms,
            end_ms: Some(start_ms),
            cause: a.cause.clone(),
            description: a.description.clone(),
            status: status(&a.status).to_string(),
            progress: 100,
        });
    }
    Some(out)
}

/// A target group's targets.
pub(crate) fn target_health(c: &Cluster, name: &str) -> Option<Vec<TargetLive>> {
    let tg = c.target_group_health(name)?;
    Some(
        tg.targets()
            .map(|t| {
                let instance = c.instance_at(t.target);
                TargetLive {
                    address: t.target.to_string(),
                    instance_id: instance.map(|i| i.to_string()),
                    zone: instance.and_then(|i| c.zone_of(i)),
                    state: t.state.as_str().to_string(),
                    reason: t.reason.clone(),
                }
            })
            .collect(),
    )
}
