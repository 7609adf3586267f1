//! How `flotilla up` comes to serve: a fresh start (merges the AWS API's stored overlay into
//! the config, binds every listener, the admin and AWS APIs and the edge before launching
//! anything, or takes them from systemd's socket activation; starts the instance keeper;
//! restores and adopts what an earlier run left), or a hot upgrade's successor (takes its
//! predecessor's sockets — the edge's too —, instances and whole cluster).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flotilla_compute::keeper::KeeperCommand;
use flotilla_compute::{Compute, ComputeEvent};
use flotilla_config::Config;
use flotilla_control::{Cluster, InstanceId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::admin_adapter::AdminView;
use crate::clock::Clock;
use crate::data_plane::DataPlane;
use crate::executor::{execute_pending, LaunchContext};
use crate::listeners::{BoundListener, ListenerSet};
use crate::run::{RunOptions, Running};
use crate::shared::{Process, Shared, SharedParts};
use crate::upgrade::{Handover, Inherited, Successor};
use crate::{persist, RuntimeError};

/// Checks what must hold before anything starts: a token for a non-loopback admin API, and
/// the log directory. Returns the log directory.
fn preflight(config: &Config, options: &RunOptions) -> Result<PathBuf, RuntimeError> {
    let admin_addr = config.cluster.admin_bind;
    if !admin_addr.ip().is_loopback() && options.admin_token.is_none() {
        return Err(RuntimeError::AdminTokenRequired {
            addr: admin_addr,
            env: config.cluster.admin_token_env.clone(),
        });
    }
    let log_dir = config.cluster.state_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|source| RuntimeError::StateDir {
        path: log_dir.clone(),
        source,
    })?;
    Ok(log_dir)
}

/// The instance keeper of `state_dir`: this binary as `flotilla keeper SOCKET`, logging in
/// this process's format (`--log-format`), so a JSON log stays JSON on every line.
fn keeper_command(options: &RunOptions, state_dir: &Path) -> KeeperCommand {
    let mut args: Vec<String> = Vec::new();
    let mut given = options.args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = given.next() {
        if arg == "--log-format" {
            if let Some(value) = given.next() {
                args.extend(["--log-format".to_string(), value.into_owned()]);
            }
        } else if arg.starts_with("--log-format=") {
            args.push(arg.into_owned());
        }
    }
    args.push("keeper".into());
    KeeperCommand {
        program: options.flotilla_exe.clone(),
        args,
        socket: state_dir.join("keeper.sock"),
    }
}

/// The admin API's socket: inherited, or bound now.
async fn admin_socket(
    inherited: &mut Inherited,
    config: &Config,
) -> Result<TcpListener, RuntimeError> {
    let addr = config.cluster.admin_bind;
    let bound = match inherited.take(addr) {
        Some(socket) => socket,
        None => TcpListener::bind(addr).await,
    };
    bound.map_err(|source| RuntimeError::Bind { addr, source })
}

/// The cluster `config` describes, its forward actions keyed by the addresses `bound` took.
pub(crate) fn spec_of(config: &Config, bound: &[BoundListener]) -> flotilla_control::ClusterSpec {
    config.cluster_spec(|addr| {
        bound
            .iter()
            .find(|b| b.listener.bind == addr)
            .map_or(addr, BoundListener::bound)
    })
}

/// Containers are labelled with the state directory: the next run with it adopts or removes
/// what this one leaves.
fn home_of(config: &Config) -> String {
    std::fs::canonicalize(&config.cluster.state_dir)
        .unwrap_or_else(|_| config.cluster.state_dir.clone())
        .to_string_lossy()
        .into_owned()
}

/// A fresh start.
pub(crate) async fn fresh(
    file_config: Config,
    options: RunOptions,
) -> Result<Running, RuntimeError> {
    let clock = Clock::start();
    let log_dir = preflight(&file_config, &options)?;
    let state_dir = file_config.cluster.state_dir.clone();
    let mut inherited = Inherited::from_systemd();
    let store = persist::open_store(&state_dir)?;
    let aws = crate::aws_adapter::prepare(&file_config, &store, None).await?;
    let config = aws.config.clone();
    let stored = persist::read(&store, config.auto_scaling_groups.keys())?;
    let admin_listener = admin_socket(&mut inherited, &config).await?;
    let listeners = ListenerSet::default();
    let bound = crate::listeners::bind_new(&listeners, &config, &mut inherited)?;
    inherited.close_unused();
    let edge = crate::edge::bind(&config, crate::edge::Sockets::default()).await?;
    let keeper = keeper_command(&options, &state_dir);
    let (provider, compute_events) =
        Compute::with_keeper(log_dir, home_of(&config), keeper).await?;
    let provider = Arc::new(provider);
    let run_id = format!("{:016x}", options.id_seed);
    let persister =
        persist::Persister::start(Box::new(store), clock, run_id.clone()).map_err(|source| {
            RuntimeError::StateDir {
                path: state_dir.clone(),
                source,
            }
        })?;
    let now = clock.now();
    let mut cluster = Cluster::new(spec_of(&config, &bound), options.id_seed, now);
    cluster.restore(now, stored.restored);
    let processes = persist::adopt_survivors(
        &mut cluster,
        &provider,
        &config,
        &persister,
        stored.instances,
        now,
    )
    .await;
    let parts = Parts {
        cluster,
        clock,
        provider,
        processes,
        persister,
        history: stored.history,
        run_id,
        deferring: false,
        file_config,
        aws,
    };
    let running = finish(
        config,
        &options,
        parts,
        admin_listener,
        bound,
        compute_events,
    );
    edge.start(&running.shared);
    crate::systemd::notify("READY=1");
    Ok(running)
}

/// What both starts build before the shared state.
struct Parts {
    cluster: Cluster,
    clock: Clock,
    provider: Arc<Compute>,
    processes: std::collections::HashMap<InstanceId, Process>,
    persister: persist::Persister,
    history: std::collections::BTreeMap<String, Vec<flotilla_admin::api::ActivityInfo>>,
    run_id: String,
    deferring: bool,
    /// The config file as loaded (the config in force has the AWS API's overlay merged in).
    file_config: Config,
    /// The AWS API: its overlay and its socket.
    aws: crate::aws_adapter::Prepared,
}

/// Builds the shared state, publishes the routing, starts the listeners and the admin API.
fn finish(
    config: Config,
    options: &RunOptions,
    parts: Parts,
    admin_listener: TcpListener,
    bound: Vec<BoundListener>,
    compute_events: mpsc::UnboundedReceiver<ComputeEvent>,
) -> Running {
    use std::os::fd::AsFd;
    let admin_addr = config.cluster.admin_bind;
    let admin_bound = admin_listener.local_addr().unwrap_or(admin_addr);
    let admin_fd = admin_listener.as_fd().try_clone_to_owned().ok();
    let handover = Handover::new(
        options.flotilla_exe.clone(),
        options.args.clone(),
        config.cluster.state_dir.clone(),
        admin_fd.map(|fd| (admin_addr, fd)),
        parts.aws.socket(&parts.file_config),
        parts.run_id,
    );
    let state_dir = config.cluster.state_dir.clone();
    let shared = Shared::new(SharedParts {
        cluster: parts.cluster,
        clock: parts.clock,
        data_plane: DataPlane::from_config(&config),
        listeners: ListenerSet::default(),
        provider: parts.provider,
        processes: parts.processes,
        persister: parts.persister,
        launch: LaunchContext {
            flotilla_exe: options.flotilla_exe.clone(),
            admin_url: format!("http://{admin_bound}"),
            user_data_dir: state_dir.join("user-data"),
        },
        history: parts.history,
        config,
        file_config: parts.file_config,
        overlay: parts.aws.overlay.clone(),
        handover,
        deferring: parts.deferring,
    });
    // Routing tables, weights and held requests are in place before the first request.
    execute_pending(&shared);
    for b in bound {
        shared.listeners.start(b, &shared.data_plane);
    }
    let (stop_admin, stop_rx) = watch::channel(false);
    let admin = tokio::spawn(flotilla_admin::serve(
        admin_listener,
        Arc::new(AdminView(shared.clone())),
        options.admin_token.clone().map(Arc::from),
        stop_rx.clone(),
    ));
    let aws = parts.aws.serve(&shared, stop_rx);
    let name = shared.config().cluster.name.clone();
    tracing::info!(cluster = %name, admin = %admin_bound, pid = std::process::id(), "flotilla is up");
    Running {
        shared,
        compute_events,
        admin,
        aws,
        stop_admin,
    }
}

/// A hot upgrade's successor: everything from the predecessor; `Ready` once serving. A
/// failure is told to the predecessor, which serves on.
pub(crate) async fn successor(
    config: Config,
    options: RunOptions,
    s: Successor,
) -> Result<Running, RuntimeError> {
    let running = match take_over(config, &options, &s).await {
        Ok(running) => running,
        Err(e) => {
            s.fail(&e.to_string());
            return Err(e);
        }
    };
    if let Err(e) = s.ready() {
        tracing::warn!(error = %e, "the previous flotilla did not hear Ready; serving anyway");
    }
    // Committed: what was held back (launches, stops, probes, writes) is carried out now.
    running.shared.provider.commit().await;
    crate::executor::execute_deferred(&running.shared);
    running.shared.wake.notify_one();
    crate::systemd::notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
    tracing::info!("hot upgrade: this process has taken over");
    Ok(running)
}

async fn take_over(
    file_config: Config,
    options: &RunOptions,
    s: &Successor,
) -> Result<Running, RuntimeError> {
    let log_dir = preflight(&file_config, options)?;
    let state_dir = file_config.cluster.state_dir.clone();
    let sockets = s.sockets()?;
    let mut admin_inherited = inherited_one(sockets.admin);
    let admin_listener = admin_socket(&mut admin_inherited, &file_config).await?;
    let store = persist::open_store(&state_dir)?;
    // The AWS API's overlay is in the state store: read back as a fresh start would.
    let aws = crate::aws_adapter::prepare(&file_config, &store, sockets.aws).await?;
    let config = aws.config.clone();
    let mut inherited = sockets.listeners;
    let listeners = ListenerSet::default();
    let bound = crate::listeners::bind_new(&listeners, &config, &mut inherited)?;
    // Sockets the new config has no listener for stay with the old process, which drains them.
    inherited.close_unused();
    let edge = crate::edge::bind(&config, sockets.edge).await?;
    let handed = s.state()?;
    let clock = Clock::continued(handed.elapsed, handed.epoch_wall);
    let mut cluster = handed.cluster;
    let spec = spec_of(&config, &bound);
    let blockers = cluster.reconfigure_blockers(&spec);
    if !blockers.is_empty() {
        return Err(RuntimeError::Upgrade(format!(
            "the config file changed in a way that needs a restart ({})",
            blockers.join("; ")
        )));
    }
    let keeper = keeper_command(options, &state_dir);
    let mut limits: std::collections::HashMap<String, _> = handed.limits.into_iter().collect();
    let processes = handed
        .pids
        .iter()
        .map(|(id, pid, start_time)| {
            let process = Process {
                pid: *pid,
                start_time: *start_time,
                limits: limits.remove(id),
            };
            (InstanceId::from(id.clone()), process)
        })
        .collect();
    let (provider, compute_events) =
        Compute::take_over(log_dir, home_of(&config), keeper, handed.compute).await?;
    let persister = persist::Persister::start(Box::new(store), clock, handed.run_id.clone())
        .map_err(|source| RuntimeError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
    let now = clock.now();
    cluster.resume_after_handover(now);
    for change in cluster.reconfigure(now, spec) {
        tracing::info!(change = change.as_str(), "the new config file applies");
    }
    let parts = Parts {
        cluster,
        clock,
        provider: Arc::new(provider),
        processes,
        persister,
        history: handed.history,
        run_id: handed.run_id,
        deferring: true,
        file_config,
        aws,
    };
    let running = finish(
        config,
        options,
        parts,
        admin_listener,
        bound,
        compute_events,
    );
    // On the predecessor's sockets: both serve until it steps down.
    edge.start(&running.shared);
    Ok(running)
}

/// One handed-over socket as an [`Inherited`] set.
fn inherited_one(socket: Option<(std::net::SocketAddr, OwnedFd)>) -> Inherited {
    match socket {
        Some((addr, fd)) => Inherited::from_predecessor(vec![(addr, fd)]),
        None => Inherited::default(),
    }
}
