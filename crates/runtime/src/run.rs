//! `flotilla up`: binds every listener, builds the cluster, runs the control loop, and on
//! shutdown stops accepting, lets in-flight requests finish, then stops every instance.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_compute::{Compute, ComputeEvent, ComputeProvider};
use flotilla_config::Config;
use flotilla_control::{Cluster, InstanceId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::admin_adapter::AdminView;
use crate::clock::Clock;
use crate::data_plane::DataPlane;
use crate::executor::{execute_pending, LaunchContext};
use crate::listeners::{BoundListener, ListenerSet};
use crate::shared::{lock, Shared, SharedParts};
use crate::{persist, RuntimeError};

/// How long shutdown waits for in-flight client requests before stopping instances anyway.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(30);
/// How often the loop looks at in-flight counts while a target drains.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// What `flotilla up` needs besides the config.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Path substituted for `{flotilla}` in launch template commands.
    pub flotilla_exe: PathBuf,
    /// Seed for instance ids, so every run gets fresh ids while tests can fix them.
    pub id_seed: u64,
    /// Admin API token; required when `admin_bind` is not loopback.
    pub admin_token: Option<String>,
}

/// What the start leaves running.
struct Running {
    shared: Arc<Shared>,
    compute_events: mpsc::UnboundedReceiver<ComputeEvent>,
    admin: JoinHandle<std::io::Result<()>>,
    aws: Option<JoinHandle<std::io::Result<()>>>,
    stop_admin: watch::Sender<bool>,
}

/// Runs the cluster described by `config` until `shutdown` completes, then stops cleanly.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let mut running = start(config, options).await?;
    control_loop(&running.shared, &mut running.compute_events, shutdown).await;
    stop(running).await;
    Ok(())
}

/// Binds everything first (a taken port fails the start before any instance exists), builds
/// the cluster, takes back what an earlier run left, and starts serving.
async fn start(file_config: Config, options: RunOptions) -> Result<Running, RuntimeError> {
    let clock = Clock::start();
    let admin_addr = file_config.cluster.admin_bind;
    if !admin_addr.ip().is_loopback() && options.admin_token.is_none() {
        return Err(RuntimeError::AdminTokenRequired {
            addr: admin_addr,
            env: file_config.cluster.admin_token_env.clone(),
        });
    }
    let state_dir = file_config.cluster.state_dir.clone();
    let log_dir = state_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|source| RuntimeError::StateDir {
        path: log_dir.clone(),
        source,
    })?;
    let store = persist::open_store(&state_dir)?;
    let aws = crate::aws_adapter::prepare(&file_config, &store).await?;
    let config = aws.config.clone();
    let stored = persist::read(&store, config.auto_scaling_groups.keys())?;
    let admin_listener =
        TcpListener::bind(admin_addr)
            .await
            .map_err(|source| RuntimeError::Bind {
                addr: admin_addr,
                source,
            })?;
    let listeners = ListenerSet::default();
    let bound = crate::listeners::bind_new(&listeners, &config)?;
    let edge = crate::edge::bind(&config).await?;
    // Containers are labelled with the state directory: the next run with it adopts or
    // removes what this one leaves.
    let home = std::fs::canonicalize(&config.cluster.state_dir)
        .unwrap_or_else(|_| config.cluster.state_dir.clone());
    let (provider, compute_events) = Compute::new(log_dir, home.to_string_lossy().into_owned())?;
    let provider = Arc::new(provider);
    let persister =
        persist::Persister::start(Box::new(store), clock, format!("{:016x}", options.id_seed))
            .map_err(|source| RuntimeError::StateDir {
                path: state_dir.clone(),
                source,
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
    let admin_bound = admin_listener.local_addr().unwrap_or(admin_addr);
    let shared = Shared::new(SharedParts {
        cluster,
        clock,
        data_plane: DataPlane::from_config(&config),
        listeners,
        provider,
        processes,
        persister,
        launch: LaunchContext {
            flotilla_exe: options.flotilla_exe.clone(),
            admin_url: format!("http://{admin_bound}"),
            user_data_dir: state_dir.join("user-data"),
        },
        history: stored.history,
        config,
        file_config,
        overlay: aws.overlay.clone(),
    });
    // Routing tables, weights and held requests are in place before the first request.
    execute_pending(&shared);
    for b in bound {
        shared.listeners.start(b, &shared.data_plane);
    }
    edge.start(&shared);
    let (stop_admin, stop_rx) = watch::channel(false);
    let admin = tokio::spawn(flotilla_admin::serve(
        admin_listener,
        Arc::new(AdminView(shared.clone())),
        options.admin_token.clone().map(Arc::from),
        stop_rx.clone(),
    ));
    let aws = aws.serve(&shared, stop_rx);
    let name = shared.config().cluster.name.clone();
    tracing::info!(cluster = %name, admin = %admin_bound, "flotilla is up");
    Ok(Running {
        shared,
        compute_events,
        admin,
        aws,
        stop_admin,
    })
}

/// The cluster `config` describes, its forward actions keyed by the addresses `bound` took.
fn spec_of(config: &Config, bound: &[BoundListener]) -> flotilla_control::ClusterSpec {
    config.cluster_spec(|addr| {
        bound
            .iter()
            .find(|b| b.listener.bind == addr)
            .map_or(addr, BoundListener::bound)
    })
}

/// What the loop last saw of the data plane.
#[derive(Default)]
struct Observed {
    /// Requests held per target group, as last reported to the cluster.
    held: HashMap<String, usize>,
    /// When each draining target was first seen draining.
    draining_since: HashMap<(String, SocketAddr), Instant>,
}

/// Feeds the cluster what it learns by looking rather than being told: requests the data
/// plane holds for an empty group, and draining targets that have nothing in flight (looked
/// at once they have drained for a poll interval, so a request on its way still lands).
/// Returns whether some target still drains (the loop then looks again soon).
fn observe_data_plane(shared: &Shared, seen: &mut Observed) -> bool {
    let (holding, draining): (Vec<String>, Vec<(String, SocketAddr)>) = {
        let c = shared.cluster();
        (
            c.holding_target_groups().map(str::to_string).collect(),
            c.draining_targets()
                .map(|(tg, addr)| (tg.to_string(), addr))
                .collect(),
        )
    };
    for tg in holding {
        let held = shared.data_plane.held_requests(&tg);
        // Told on every change, back to zero too: a stale count would wake an idle group.
        if seen.held.insert(tg.clone(), held).unwrap_or(0) != held {
            shared.with_cluster(|c, now| c.handle_held_requests(now, &tg, held));
        }
    }
    let now = Instant::now();
    seen.draining_since.retain(|k, _| draining.contains(k));
    for key in &draining {
        let since = *seen.draining_since.entry(key.clone()).or_insert(now);
        let (tg, addr) = key;
        if now >= since + DRAIN_POLL && shared.data_plane.in_flight(tg, *addr) == 0 {
            shared.with_cluster(|c, now| c.handle_target_idle(now, tg, *addr));
        }
    }
    !draining.is_empty()
}

/// The control loop: lets the cluster act on time, carries out its effects, and sleeps until
/// its next timeout or the next event.
async fn control_loop(
    shared: &Arc<Shared>,
    compute_events: &mut mpsc::UnboundedReceiver<ComputeEvent>,
    shutdown: impl Future<Output = ()>,
) {
    // SIGHUP reloads the config; without the handler it would end the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::pin!(shutdown);
    let mut seen = Observed::default();
    loop {
        let draining = observe_data_plane(shared, &mut seen);
        shared.with_cluster(|c, now| c.handle_timeout(now));
        execute_pending(shared);
        let mut deadline = shared
            .cluster()
            .poll_timeout()
            .map(|t| shared.clock.instant(t));
        if draining {
            let poll = Instant::now() + DRAIN_POLL;
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = sleep => {}
            _ = shared.wake.notified() => {}
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::info!("SIGHUP received: reloading the config");
                let shared = Arc::clone(shared);
                tokio::task::spawn_blocking(move || crate::reload::reload_and_log(&shared));
            }
            Some(event) = compute_events.recv() => {
                let ComputeEvent::Exited { instance_id, status, .. } = event;
                let id = InstanceId::from(instance_id);
                lock(&shared.processes).remove(&id);
                shared.with_cluster(|c, now| c.handle_instance_exited(now, &id, &status));
            }
        }
    }
}

/// Stops accepting and lets in-flight requests finish, then stops every instance.
async fn stop(running: Running) {
    let Running {
        shared,
        admin,
        aws,
        stop_admin,
        ..
    } = running;
    tracing::info!("shutting down: draining listeners");
    let _ = stop_admin.send(true);
    crate::edge::stop(&shared).await;
    let mut proxies = shared.listeners.stop_all();
    let drained = tokio::time::timeout(DRAIN_ON_SHUTDOWN, async {
        while let Some(result) = proxies.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "listener stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            after = ?DRAIN_ON_SHUTDOWN,
            "in-flight requests still running; stopping anyway"
        );
        proxies.abort_all();
    }
    tracing::info!("stopping every instance");
    shared.provider.shutdown().await;
    // Every instance is stopped: none is left for a later run to adopt.
    let writer = lock(&shared.persister).take().and_then(|mut p| {
        p.clear_instances();
        p.close()
    });
    if let Some(writer) = writer {
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    let _ = admin.await;
    if let Some(aws) = aws {
        let _ = aws.await;
    }
    tracing::info!("flotilla stopped");
}
