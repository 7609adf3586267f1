//! The dispatch of every subcommand, and the ones about the process and its config (validate,
//! up, reload, upgrade, zones); groups and instances have their own files.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use flotilla_admin::api::{InstanceRefreshRequest, ReloadResponse, ZoneDrillRequest, ZoneInfo};
use flotilla_admin::{AdminClient, ClientError};
use flotilla_config::ConfigError;

use crate::cli::{AdminArgs, Cli, Command, DrillArgs, ZoneCommand};
use crate::group_cmds::{metrics, refresh, scale, status, suspend, RefreshAction};
use crate::instance_cmds::{activities, instances, protect, terminate};
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
