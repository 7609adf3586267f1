//! Subcommands about auto scaling groups: status, one metric, suspended processes, capacity,
//! instance refresh.

use std::process::ExitCode;

use flotilla_admin::api::{
    CapacityRequest, GroupDetail, GroupSummary, InstanceRefreshInfo, InstanceRefreshRequest,
    ListenerInfo, MetricDatapoints, ScalingInfo, SuspendedProcessesRequest, TargetHealthInfo,
};

use crate::cli::AdminArgs;
use crate::commands::{client, refused};
use crate::instance_cmds::purchase;
use crate::out::outln;

pub(crate) async fn status(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let summaries: Vec<GroupSummary> = client.get("/v1/groups").await?;
    let mut groups = Vec::new();
    let mut scaling = Vec::new();
    for s in &summaries {
        let detail: GroupDetail = client.get(&format!("/v1/groups/{}", s.name)).await?;
        groups.push(detail);
        // Older servers lack the endpoint: show no policies rather than fail.
        let info: ScalingInfo = client
            .get(&format!("/v1/groups/{}/scaling", s.name))
            .await
            .unwrap_or_default();
        scaling.push(info);
    }
    let listeners: Vec<ListenerInfo> = client.get("/v1/listeners").await?;
    let mut tg_names: Vec<String> = listeners
        .iter()
        .flat_map(|l| l.target_groups.iter().cloned())
        .collect();
    tg_names.sort();
    tg_names.dedup();
    let mut health = Vec::new();
    for name in &tg_names {
        let targets: Vec<TargetHealthInfo> = client
            .get(&format!("/v1/target-groups/{name}/health"))
            .await?;
        health.push((name.clone(), targets));
    }
    // Cluster mode: the nodes too (`flotilla up` has none and answers 404).
    let nodes: Option<Vec<flotilla_admin::api::NodeInfo>> = client.get("/v1/nodes").await.ok();
    if json {
        let mut value = serde_json::json!({
            "groups": groups,
            "scaling": groups
                .iter()
                .zip(&scaling)
                .map(|(g, s)| serde_json::json!({
                    "group": g.name,
                    "policies": s.policies,
                    "suspended_processes": s.suspended_processes,
                }))
                .collect::<Vec<_>>(),
            "listeners": listeners,
            "target_groups": health
                .iter()
                .map(|(name, targets)| serde_json::json!({"name": name, "targets": targets}))
                .collect::<Vec<_>>(),
        });
        if let (Some(nodes), Some(o)) = (&nodes, value.as_object_mut()) {
            o.insert("nodes".into(), serde_json::to_value(nodes)?);
        }
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(nodes) = &nodes {
        crate::cluster_mode::print_nodes(nodes);
        println!();
    }
    for l in &listeners {
        outln!(
            "listener {} {} {} -> {}",
            l.load_balancer,
            l.protocol,
            l.bind,
            l.target_groups.join(", ")
        );
    }
    for (g, s) in groups.iter().zip(&scaling) {
        outln!(
            "\ngroup {}  desired {}  in service {}  (min {}, max {})  zones {}  ${:.4}/hour",
            g.name,
            g.desired_capacity,
            g.in_service,
            g.min_size,
            g.max_size,
            g.zones.join(", "),
            g.cost_per_hour
        );
        outln!(
            "  {:<16} {:<6} {:<19} {:<10} {:<22} {:>8}  {}",
            "INSTANCE",
            "ZONE",
            "STATE",
            "HEALTH",
            "ADDRESS",
            "PID",
            "PURCHASE"
        );
        for i in &g.instances {
            outln!(
                "  {:<16} {:<6} {:<19} {:<10} {:<22} {:>8}  {}",
                i.id,
                i.zone,
                i.state,
                i.health,
                i.address.as_deref().unwrap_or("-"),
                i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                purchase(i)
            );
            if let Some(limits) = &i.limits {
                outln!("  {:<16} limits: {limits}", "");
            }
        }
        for p in &s.policies {
            outln!(
                "  policy {} ({}){}{}",
                p.name,
                p.kind,
                p.alarm_state
                    .as_deref()
                    .map(|a| format!("  alarm {a}"))
                    .unwrap_or_default(),
                p.last_value
                    .map(|v| format!("  last value {v:.3}"))
                    .unwrap_or_default()
            );
            if !p.description.is_empty() {
                outln!("    {}", p.description);
            }
        }
        if !s.suspended_processes.is_empty() {
            outln!("  suspended: {}", s.suspended_processes.join(", "));
        }
    }
    for (name, targets) in &health {
        outln!("\ntarget group {name}");
        outln!(
            "  {:<22} {:<16} {:<6} {:<10} REASON",
            "TARGET",
            "INSTANCE",
            "ZONE",
            "STATE"
        );
        for t in targets {
            outln!(
                "  {:<22} {:<16} {:<6} {:<10} {}",
                t.target,
                t.instance_id.as_deref().unwrap_or("-"),
                t.zone.as_deref().unwrap_or("-"),
                t.state,
                t.reason.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub(crate) fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) async fn metrics(
    admin: AdminArgs,
    metric: &str,
    query: &[(&str, String)],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let path = format!("/v1/metrics/{}?{}", encode(metric), qs.join("&"));
    let result: Result<MetricDatapoints, _> = client.get(&path).await;
    match result {
        Ok(m) if json => {
            outln!("{}", serde_json::to_string_pretty(&m)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(m) => {
            for d in &m.datapoints {
                outln!("{}  {}", d.time, d.value);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// All AWS process names, for "suspend/resume everything".
const ALL_PROCESSES: [&str; 7] = [
    "Launch",
    "Terminate",
    "HealthCheck",
    "ReplaceUnhealthy",
    "AZRebalance",
    "AlarmNotification",
    "ScheduledActions",
];

pub(crate) async fn suspend(
    admin: AdminArgs,
    group: &str,
    processes: Vec<String>,
    suspend: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let named: Vec<String> = if processes.is_empty() {
        ALL_PROCESSES.iter().map(|p| p.to_string()).collect()
    } else {
        processes
    };
    let current: ScalingInfo = match client.get(&format!("/v1/groups/{group}/scaling")).await {
        Ok(info) => info,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let same = |a: &str, b: &str| a.replace('_', "").eq_ignore_ascii_case(&b.replace('_', ""));
    let mut set: Vec<String> = current
        .suspended_processes
        .into_iter()
        .filter(|p| suspend || !named.iter().any(|n| same(n, p)))
        .collect();
    if suspend {
        for n in named {
            if !set.iter().any(|p| same(p, &n)) {
                set.push(n);
            }
        }
    }
    let result: Result<ScalingInfo, _> = client
        .put(
            &format!("/v1/groups/{group}/suspended-processes"),
            &SuspendedProcessesRequest { processes: set },
        )
        .await;
    match result {
        Ok(info) => {
            let list = if info.suspended_processes.is_empty() {
                "none".to_string()
            } else {
                info.suspended_processes.join(", ")
            };
            outln!("group {group}: suspended processes: {list}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) async fn scale(admin: AdminArgs, group: &str, desired: u32) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let result: Result<GroupSummary, _> = client
        .put(
            &format!("/v1/groups/{group}/capacity"),
            &CapacityRequest {
                desired_capacity: desired,
            },
        )
        .await;
    match result {
        Ok(s) => {
            outln!(
                "group {}: desired capacity {} (min {}, max {}, in service {})",
                s.name,
                s.desired_capacity,
                s.min_size,
                s.max_size,
                s.in_service
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What `flotilla refresh` was asked to do.
pub(crate) enum RefreshAction {
    /// Start a refresh; follow it to its end when `wait`.
    Start {
        request: InstanceRefreshRequest,
        wait: bool,
    },
    /// Show the latest refresh.
    Status,
    /// Cancel the running one.
    Cancel,
}

/// How often `flotilla refresh` looks at the progress while following it.
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) async fn refresh(
    admin: AdminArgs,
    group: &str,
    action: RefreshAction,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let path = format!("/v1/groups/{group}/instance-refresh");
    let (result, wait) = match action {
        RefreshAction::Start { request, wait } => (client.post(&path, &request).await, wait),
        RefreshAction::Status => (client.get(&path).await, false),
        RefreshAction::Cancel => (client.delete(&path).await, false),
    };
    let mut r: InstanceRefreshInfo = match result {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    if !json {
        outln!(
            "instance refresh {} of group {group}: {} — {} of {} instance(s) replaced ({}%), \
             min healthy {}%, warm-up {}",
            r.instance_refresh_id,
            r.status,
            r.instances_total.saturating_sub(r.instances_to_update),
            r.instances_total,
            r.percentage_complete,
            r.min_healthy_percentage,
            r.instance_warmup
        );
        outln!("  {}", r.status_reason);
    }
    if wait {
        let mut last = (
            r.status.clone(),
            r.percentage_complete,
            r.status_reason.clone(),
        );
        while matches!(
            r.status.as_str(),
            "Pending" | "InProgress" | "RollbackInProgress"
        ) {
            tokio::time::sleep(REFRESH_POLL).await;
            r = match client.get(&path).await {
                Ok(r) => r,
                Err(e) => return refused(e),
            };
            let now = (
                r.status.clone(),
                r.percentage_complete,
                r.status_reason.clone(),
            );
            if now != last && !json {
                outln!(
                    "  {:<10} {:>3}%  {}",
                    r.status,
                    r.percentage_complete,
                    r.status_reason
                );
            }
            last = now;
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    }
    // Failure: the refresh failed, or the one followed did not succeed.
    let failed = matches!(
        r.status.as_str(),
        "Failed" | "RollbackSuccessful" | "RollbackFailed"
    );
    let ok = r.status == "Successful" || (!wait && !failed);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
