//! One function per subcommand.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use flotilla_admin::api::{
    ActivityInfo, CapacityRequest, GroupDetail, GroupSummary, InstanceRefreshInfo,
    InstanceRefreshRequest, ListenerInfo, MetricDatapoints, ProtectionRequest, ProtectionResponse,
    ReloadResponse, ScalingInfo, SuspendedProcessesRequest, TargetHealthInfo, TerminateRequest,
    TerminateResponse, ZoneDrillRequest, ZoneInfo,
};
use flotilla_admin::{AdminClient, ClientError};
use flotilla_config::ConfigError;

use crate::cli::{AdminArgs, Cli, Command, DrillArgs, ZoneCommand};
use crate::out::outln;

pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up {
            config,
            worker_threads,
        } => up(&config, worker_threads),
        Command::Validate { config } => Ok(validate(&config)),
        Command::Apply { config, etcd } => block_on(crate::cluster_mode::apply(&config, &etcd)),
        Command::Node(args) => crate::cluster_mode::node(args),
        Command::Nodes { json, admin } => block_on(crate::cluster_mode::nodes(admin, json)),
        Command::Status { json, admin } => block_on(status(admin, json)),
        Command::Scale {
            group,
            desired,
            admin,
        } => block_on(scale(admin, &group, desired)),
        Command::ShiftWeights {
            load_balancer,
            rule,
            listener,
            reset,
            json,
            weights,
            admin,
        } => {
            let client = client(&admin)?;
            let args = crate::shift::ShiftArgs {
                load_balancer,
                rule,
                listener,
                reset,
                json,
                weights,
            };
            block_on(crate::shift::shift_weights(client, args))
        }
        Command::Suspend {
            group,
            processes,
            admin,
        } => block_on(suspend(admin, &group, processes, true)),
        Command::Resume {
            group,
            processes,
            admin,
        } => block_on(suspend(admin, &group, processes, false)),
        Command::Metrics {
            metric,
            scope,
            period,
            statistic,
            since,
            json,
            admin,
        } => {
            let mut query = vec![
                ("period", period),
                ("statistic", statistic),
                ("since", since),
            ];
            if let Some(scope) = scope {
                query.push(("scope", scope));
            }
            block_on(metrics(admin, &metric, &query, json))
        }
        Command::Instances { json, admin } => block_on(instances(admin, json)),
        Command::Activities {
            group,
            limit,
            json,
            admin,
        } => block_on(activities(admin, &group, limit, json)),
        Command::Terminate {
            id,
            decrement_desired,
            admin,
        } => block_on(terminate(admin, &id, decrement_desired)),
        Command::Protect { id, admin } => block_on(protect(admin, &id, true)),
        Command::Unprotect { id, admin } => block_on(protect(admin, &id, false)),
        Command::Reload { admin } => block_on(reload(admin)),
        Command::Upgrade { admin } => block_on(upgrade(admin)),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "flotilla", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keeper { socket } => {
            flotilla_compute::keeper::run(&socket).context("instance keeper")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Refresh {
            group,
            min_healthy_percentage,
            instance_warmup,
            checkpoint_percentages,
            checkpoint_delay,
            auto_rollback,
            no_wait,
            status,
            cancel,
            json,
            admin,
        } => {
            let action = if status {
                RefreshAction::Status
            } else if cancel {
                RefreshAction::Cancel
            } else {
                RefreshAction::Start {
                    request: InstanceRefreshRequest {
                        min_healthy_percentage,
                        instance_warmup,
                        checkpoint_percentages: (!checkpoint_percentages.is_empty())
                            .then_some(checkpoint_percentages),
                        checkpoint_delay,
                        auto_rollback: auto_rollback.then_some(true),
                    },
                    wait: !no_wait,
                }
            };
            block_on(refresh(admin, &group, action, json))
        }
        Command::Zone { command } => match command {
            ZoneCommand::List { json, admin } => block_on(zones(admin, json)),
            ZoneCommand::Outage(args) => block_on(zone_drill(args, "outage")),
            ZoneCommand::Shift(args) => block_on(zone_drill(args, "shift")),
        },
        Command::Lifecycle { command } => block_on(crate::lifecycle::run(command)),
        Command::Dns { command } => block_on(crate::edge_cmds::dns(command)),
        Command::Distributions { json, admin } => {
            block_on(crate::edge_cmds::distributions(admin, json))
        }
        Command::Invalidate {
            distribution,
            paths,
            admin,
        } => block_on(crate::edge_cmds::invalidate(admin, &distribution, paths)),
        Command::WarmPool { group, json, admin } => {
            block_on(crate::lifecycle::warm_pool(admin, &group, json))
        }
        Command::Load {
            url,
            rps,
            concurrency,
            duration,
            path,
            timeout,
            max_in_flight,
            json,
        } => block_on(crate::load::run(crate::load::LoadArgs {
            url,
            rps,
            concurrency,
            duration,
            path,
            timeout,
            max_in_flight,
            json,
        })),
        Command::Spot { command } => block_on(crate::spot::run(command)),
        Command::Simulate {
            scenario,
            config,
            seed,
            out,
            json,
            compare,
        } => crate::simulate::run(crate::simulate::SimulateArgs {
            scenario,
            config,
            seed,
            out,
            json,
            compare,
        }),
        Command::Forecast { group, json, admin } => {
            block_on(crate::forecast::run(admin, &group, json))
        }
        Command::DemoApp => {
            flotilla_demo::main_blocking().context("demo app")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

/// Prints config errors as FILE:LINE:COL lines; returns whether the config was usable.
pub(crate) fn load_config(path: &std::path::Path) -> Option<flotilla_config::Config> {
    load_config_or(path, "nothing was started")
}

/// [`load_config`], saying `consequence` after the errors.
pub(crate) fn load_config_or(
    path: &std::path::Path,
    consequence: &str,
) -> Option<flotilla_config::Config> {
    match flotilla_config::load(path) {
        Ok(config) => Some(config),
        Err(ConfigError::Invalid(diagnostics)) => {
            for d in &diagnostics.0 {
                eprintln!("{d}");
            }
            let n = diagnostics.0.len();
            eprintln!(
                "{}: {n} error{} found; {consequence}",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            None
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// A config error as one message for a hot upgrade's predecessor (and its API answer).
fn config_failure(path: &std::path::Path, e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid(diagnostics) => {
            let lines: Vec<String> = diagnostics.0.iter().map(|d| d.to_string()).collect();
            format!(
                "{}: {} error(s) in the config: {}",
                path.display(),
                lines.len(),
                lines.join("; ")
            )
        }
        e => e.to_string(),
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match load_config(path) {
        Some(_) => {
            outln!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

fn up(path: &std::path::Path, worker_threads: Option<usize>) -> anyhow::Result<ExitCode> {
    // A hot upgrade's successor reports to its predecessor from the start, so that even a
    // config that no longer parses is told there (and the predecessor serves on).
    let successor = flotilla_runtime::Successor::from_env().context("hot upgrade")?;
    let config = match flotilla_config::load(path) {
        Ok(config) => config,
        Err(e) => {
            if let Some(s) = &successor {
                s.fail(&config_failure(path, &e));
            }
            let _ = load_config(path); // prints every error, as without an upgrade
            return Ok(ExitCode::FAILURE);
        }
    };
    let admin_token = std::env::var(&config.cluster.admin_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let flotilla_exe = std::env::current_exe().context("finding the flotilla binary")?;
    let id_seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let options = flotilla_runtime::RunOptions {
        flotilla_exe,
        args: std::env::args_os().skip(1).collect(),
        id_seed,
        admin_token,
    };
    // One worker: a current-thread runtime, like one HAProxy thread or one nginx worker — no
    // cross-thread wake-ups or work-stealing bookkeeping on the request path.
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        flotilla_runtime::run(config, options, successor, shutdown)
            .await
            .context("flotilla up")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

pub(crate) fn client(admin: &AdminArgs) -> anyhow::Result<AdminClient> {
    Ok(AdminClient::new(&admin.url, admin.token.clone())?)
}

async fn status(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
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
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn metrics(
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

async fn suspend(
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

async fn scale(admin: AdminArgs, group: &str, desired: u32) -> anyhow::Result<ExitCode> {
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

/// Prints an admin API refusal (with every itemised problem) and returns the failure code.
pub(crate) fn refused(e: ClientError) -> anyhow::Result<ExitCode> {
    match e {
        ClientError::Api { details, .. } if !details.is_empty() => {
            for d in &details {
                eprintln!("{d}");
            }
            eprintln!(
                "error: {} problem(s) found; nothing was changed",
                details.len()
            );
        }
        e => eprintln!("error: {e}"),
    }
    Ok(ExitCode::FAILURE)
}

/// "t3.micro spot $0.0033/h", with the interruption deadline of a noticed Spot instance.
fn purchase(i: &flotilla_admin::api::InstanceInfo) -> String {
    let price = i
        .price_per_hour
        .map_or_else(|| "no price".to_string(), |p| format!("${p:.4}/h"));
    let mut s = format!("{} {} {price}", i.instance_type, i.billing);
    if let Some(d) = &i.interruption_deadline {
        s.push_str(&format!(" (reclaimed at {d})"));
    }
    s
}

async fn instances(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
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

async fn activities(
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

async fn terminate(
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

async fn protect(admin: AdminArgs, id: &str, protected: bool) -> anyhow::Result<ExitCode> {
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

async fn upgrade(admin: AdminArgs) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let result: Result<flotilla_admin::api::UpgradeResponse, _> =
        client.post("/v1/upgrade", &serde_json::json!({})).await;
    match result {
        Ok(r) => {
            println!("upgraded: {}", r.message);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

async fn reload(admin: AdminArgs) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let result: Result<ReloadResponse, _> = client.post("/v1/reload", &serde_json::json!({})).await;
    match result {
        Ok(r) if r.changes.is_empty() => {
            outln!("config reloaded: nothing changed");
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            outln!("config reloaded:");
            for c in &r.changes {
                outln!("  {c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

/// What `flotilla refresh` was asked to do.
enum RefreshAction {
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

async fn refresh(
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

async fn zones(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let list: Vec<ZoneInfo> = match client.get("/v1/zones").await {
        Ok(l) => l,
        Err(e) => return refused(e),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<10} {:<10} {:>9}  UNTIL", "ZONE", "STATE", "INSTANCES");
    for z in &list {
        let until = z
            .outage_until
            .as_deref()
            .or(z.shift_until.as_deref())
            .unwrap_or("-");
        outln!("{:<10} {:<10} {:>9}  {until}", z.name, z.state, z.instances);
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts (`--for`) or ends (`--end`) a zone drill, `drill` being `outage` or `shift`.
async fn zone_drill(args: DrillArgs, drill: &str) -> anyhow::Result<ExitCode> {
    let DrillArgs {
        zone,
        duration,
        end,
        admin,
    } = args;
    let duration = duration.filter(|_| !end);
    let client = client(&admin)?;
    let path = format!("/v1/zones/{zone}/{drill}");
    let result: Result<ZoneInfo, _> = match &duration {
        Some(d) => {
            client
                .post(
                    &path,
                    &ZoneDrillRequest {
                        duration: d.clone(),
                    },
                )
                .await
        }
        None => client.delete(&path).await,
    };
    match result {
        Ok(z) => {
            let what = match (drill, &duration) {
                ("outage", Some(_)) => format!(
                    "outage until {} (its instances were killed; no launches there)",
                    z.outage_until.as_deref().unwrap_or("-")
                ),
                ("shift", Some(_)) => format!(
                    "shifted away from until {} (no new traffic to its targets)",
                    z.shift_until.as_deref().unwrap_or("-")
                ),
                (_, None) => format!("{drill} ended; now {}", z.state),
                _ => z.state.clone(),
            };
            outln!("zone {}: {what}", z.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}
