//! Instance refreshes and suspended processes: operator actions, allowed on the file's
//! groups too (as `flotilla refresh` and the admin API allow them).

use crate::backend::RefreshLive;
use crate::call::{iso, Call};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult};

use super::existing;

/// The processes Flotilla's groups have (AWS's `AddToLoadBalancer` and `InstanceRefresh`
/// are not separate processes here).
const PROCESSES: [&str; 7] = [
    "Launch",
    "Terminate",
    "HealthCheck",
    "ReplaceUnhealthy",
    "AZRebalance",
    "AlarmNotification",
    "ScheduledActions",
];

pub(crate) fn suspend(call: &mut Call<'_>, suspend: bool) -> AwsResult<()> {
    let group = existing(call)?;
    let given = call
        .p
        .strings("ScalingProcesses", true)?
        .unwrap_or_default();
    for name in &given {
        if !PROCESSES.contains(&name.as_str()) {
            let known = matches!(name.as_str(), "AddToLoadBalancer" | "InstanceRefresh");
            return Err(AwsError::validation(if known {
                format!(
                    "Process {name} is not supported by Flotilla ({})",
                    PROCESSES.join(", ")
                )
            } else {
                format!("Invalid processes: {name}")
            }));
        }
    }
    let wanted: Vec<String> = if given.is_empty() {
        PROCESSES.iter().map(|s| s.to_string()).collect()
    } else {
        given
    };
    let live = call
        .backend
        .group(&group)
        .ok_or_else(|| super::no_group(&group))?;
    let mut set = live.suspended;
    if suspend {
        set.extend(wanted);
    } else {
        set.retain(|p| !wanted.contains(p));
    }
    set.sort();
    set.dedup();
    call.backend
        .set_suspended_processes(&group, &set)
        .map_err(AwsError::validation)
}

fn refresh_error(e: String) -> AwsError {
    if e.contains("already in progress") {
        AwsError::new(
            "InstanceRefreshInProgress",
            format!("An Instance Refresh is already in progress and blocks the execution of this Instance Refresh: {e}"),
        )
    } else if e.contains("no instance refresh is in progress") {
        AwsError::new(
            "ActiveInstanceRefreshNotFound",
            format!("No in progress or pending Instance Refresh found: {e}"),
        )
    } else {
        AwsError::validation(e)
    }
}

pub(crate) fn start_refresh(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = existing(call)?;
    if p.get("Strategy").is_some_and(|s| s != "Rolling") {
        return Err(AwsError::validation(
            "Only the Rolling strategy is supported",
        ));
    }
    if p.has("DesiredConfiguration") {
        return Err(AwsError::validation(
            "DesiredConfiguration is not supported by Flotilla: update the group's launch template, then refresh",
        ));
    }
    let prefs = p.sub("Preferences");
    if prefs
        .u32("MaxHealthyPercentage", 100, 200)?
        .is_some_and(|m| m != 100)
    {
        return Err(AwsError::validation(
            "MaxHealthyPercentage above 100 is not supported by Flotilla",
        ));
    }
    let checkpoints = prefs.strings("CheckpointPercentages", true)?;
    let checkpoints = checkpoints
        .map(|l| {
            l.iter()
                .map(|c| c.parse::<u32>().ok().filter(|n| (1..=100).contains(n)))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| AwsError::validation("CheckpointPercentages must be 1-100"))
        })
        .transpose()?;
    let r = call
        .backend
        .start_instance_refresh(
            &group,
            prefs.u32("MinHealthyPercentage", 0, 100)?,
            prefs.u32("InstanceWarmup", 0, 86_400)?.map(u64::from),
            checkpoints,
            prefs.u32("CheckpointDelay", 0, 172_800)?.map(u64::from),
        )
        .map_err(refresh_error)?;
    let mut x = Xml::new();
    x.leaf("InstanceRefreshId", &r.id);
    Ok(x.finish())
}

fn write_refresh(x: &mut Xml, group: &str, r: &RefreshLive) {
    x.leaf("InstanceRefreshId", &r.id)
        .leaf("AutoScalingGroupName", group)
        .leaf("Status", &r.status)
        .leaf("StatusReason", &r.status_reason)
        .leaf("StartTime", iso(r.start_ms))
        .opt("EndTime", r.end_ms.map(iso))
        .leaf("PercentageComplete", r.percentage_complete.to_string())
        .leaf("InstancesToUpdate", r.instances_to_update.to_string())
        .node("Preferences", |x| {
            x.leaf("MinHealthyPercentage", r.min_healthy_percentage.to_string())
                .leaf("InstanceWarmup", r.instance_warmup.to_string())
                .leaf("MaxHealthyPercentage", "100")
                .boolean("SkipMatching", false)
                .boolean("AutoRollback", false)
                .leaf("ScaleInProtectedInstances", "Ignore")
                .leaf("StandbyInstances", "Ignore");
        });
}

pub(crate) fn describe_refreshes(call: &mut Call<'_>) -> AwsResult<String> {
    let group = existing(call)?;
    let ids = call
        .p
        .strings("InstanceRefreshIds", true)?
        .unwrap_or_default();
    let all: Vec<RefreshLive> = call
        .backend
        .group(&group)
        .map(|g| g.refreshes)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .collect();
    let (page, next) = super::page(call, all, 100)?;
    let mut x = Xml::new();
    x.list("InstanceRefreshes", "member", &page, |x, r| {
        write_refresh(x, &group, r)
    });
    x.opt("NextToken", next);
    Ok(x.finish())
}

pub(crate) fn cancel_refresh(call: &mut Call<'_>) -> AwsResult<String> {
    let group = existing(call)?;
    let r = call
        .backend
        .cancel_instance_refresh(&group)
        .map_err(refresh_error)?;
    let mut x = Xml::new();
    x.leaf("InstanceRefreshId", &r.id);
    Ok(x.finish())
}
