//! Subcommands about single instances: list, activities, terminate, scale-in protection.

use std::process::ExitCode;

use flotilla_admin::api::{
    ActivityInfo, GroupDetail, GroupSummary, ProtectionRequest, ProtectionResponse,
    TerminateRequest, TerminateResponse,
};

use crate::cli::AdminArgs;
use crate::commands::{client, refused};
use crate::out::outln;

/// "t3.micro spot $0.0033/h", with the interruption deadline of a noticed Spot instance.
pub(crate) fn purchase(i: &flotilla_admin::api::InstanceInfo) -> String {
    let price = i
        .price_per_hour
        .map_or_else(|| "no price".to_string(), |p| format!("${p:.4}/h"));
    let mut s = format!("{} {} {price}", i.instance_type, i.billing);
    if let Some(d) = &i.interruption_deadline {
        s.push_str(&format!(" (reclaimed at {d})"));
    }
    s
}

pub(crate) async fn instances(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let summaries: Vec<GroupSummary> = client.get("/v1/groups").await?;
    let mut rows = Vec::new();
    for s in &summaries {
        let detail: GroupDetail = client.get(&format!("/v1/groups/{}", s.name)).await?;
        for i in detail.instances {
            rows.push((s.name.clone(), i));
        }
    }
    if json {
        let value: Vec<serde_json::Value> = rows
            .iter()
            .map(|(group, i)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("group".into(), group.clone().into());
                }
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!("no instances");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<16} {:<12} {:<8} {:<19} {:<10} {:<22} {:>8}  LAUNCHED",
        "INSTANCE",
        "GROUP",
        "ZONE",
        "STATE",
        "HEALTH",
        "ADDRESS",
        "PID"
    );
    for (group, i) in &rows {
        outln!(
            "{:<16} {:<12} {:<8} {:<19} {:<10} {:<22} {:>8}  {}",
            i.id,
            group,
            i.zone,
            i.state,
            i.health,
            i.address.as_deref().unwrap_or("-"),
            i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            i.launched_at
        );
        outln!("{:<16} {}", "", purchase(i));
        if let Some(limits) = &i.limits {
            outln!("{:<16} limits: {limits}", "");
        }
        if i.protected_from_scale_in {
            outln!("{:<16} protected from scale-in", "");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn activities(
    admin: AdminArgs,
    group: &str,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let result: Result<Vec<ActivityInfo>, _> =
        client.get(&format!("/v1/groups/{group}/activities")).await;
    let mut list = match result {
        Ok(list) => list,
        Err(e) => return refused(e),
    };
    list.truncate(limit);
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        outln!("no activities for group {group}");
        return Ok(ExitCode::SUCCESS);
    }
    for a in &list {
        outln!("{}  {:<11}  {}", a.time, a.status, a.description);
        outln!("    cause: {}", a.cause);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn terminate(
    admin: AdminArgs,
    id: &str,
    decrement_desired: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let result: Result<TerminateResponse, _> = client
        .post(
            &format!("/v1/instances/{id}/terminate"),
            &TerminateRequest { decrement_desired },
        )
        .await;
    match result {
        Ok(r) => {
            let then = if r.replaced {
                "a replacement will be launched"
            } else {
                "not replaced"
            };
            outln!(
                "instance {} of group {}: terminating (draining, then stopping); {then}; desired capacity {}",
                r.instance_id, r.group, r.desired_capacity
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

pub(crate) async fn protect(
    admin: AdminArgs,
    id: &str,
    protected: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let result: Result<ProtectionResponse, _> = client
        .put(
            &format!("/v1/instances/{id}/protection"),
            &ProtectionRequest {
                protected_from_scale_in: protected,
            },
        )
        .await;
    match result {
        Ok(r) => {
            let what = if r.protected_from_scale_in {
                "protected from scale-in"
            } else {
                "no longer protected from scale-in"
            };
            outln!("instance {} of group {}: {what}", r.instance_id, r.group);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}
