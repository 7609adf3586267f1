//! `flotilla up`: binds every listener, builds the cluster, runs the control loop, and on
//! shutdown stops accepting, lets in-flight requests finish, then stops every instance.

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_compute::{ComputeEvent, ComputeProvider};
use flotilla_config::Config;
use flotilla_control::InstanceId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::executor::execute_pending;
use crate::shared::{lock, Shared};
use crate::upgrade::Successor;
use crate::RuntimeError;

/// How long shutdown waits for in-flight client requests before stopping instances anyway.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(30);
/// How often the loop looks at in-flight counts while a target drains.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// What `flotilla up` needs besides the config.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Path substituted for `{flotilla}` in launch template commands; also the binary a hot
    /// upgrade starts (the file now at this path) and the instance keeper runs.
    pub flotilla_exe: PathBuf,
    /// The arguments this process was started with (after the program), for a hot upgrade's
    /// successor.
    pub args: Vec<OsString>,
    /// Seed for instance ids, so every run gets fresh ids while tests can fix them.
    pub id_seed: u64,
    /// Admin API token; required when `admin_bind` is not loopback.
    pub admin_token: Option<String>,
}

/// What the start leaves running.
pub(crate) struct Running {
    pub(crate) shared: Arc<Shared>,
    pub(crate) compute_events: mpsc::UnboundedReceiver<ComputeEvent>,
    pub(crate) admin: JoinHandle<std::io::Result<()>>,
    /// The AWS API, when configured.
    pub(crate) aws: Option<JoinHandle<std::io::Result<()>>>,
    /// Stops the admin API and the AWS API.
    pub(crate) stop_admin: watch::Sender<bool>,
}

/// How the control loop ended.
enum Exit {
    /// Ctrl-C / SIGTERM: stop everything.
    Shutdown,
    /// A hot upgrade's successor took over: drain and exit, instances keep running.
    HandedOver,
}

/// Runs the cluster described by `config` until `shutdown` completes, then stops cleanly —
/// or until a hot upgrade's successor has taken over, then drains and exits leaving the
/// instances to it. With `successor`, this process *is* such a successor and starts from its
/// predecessor's sockets, instances and state.
pub async fn run(
    config: Config,
    options: RunOptions,
    successor: Option<Successor>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let mut running = match successor {
        Some(s) => crate::start::successor(config, options, s).await?,
        None => crate::start::fresh(config, options).await?,
    };
    match control_loop(&running.shared, &mut running.compute_events, shutdown).await {
        Exit::Shutdown => stop(running).await,
        Exit::HandedOver => step_down(running).await,
    }
    Ok(())
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
            let tg = tg.clone();
            shared.event(move |c, now| c.handle_held_requests(now, &tg, held));
        }
    }
    let now = Instant::now();
    seen.draining_since.retain(|k, _| draining.contains(k));
    for key in &draining {
        let since = *seen.draining_since.entry(key.clone()).or_insert(now);
        let (tg, addr) = key;
        if now >= since + DRAIN_POLL && shared.data_plane.in_flight(tg, *addr) == 0 {
            let (tg, addr) = (tg.clone(), *addr);
            shared.event(move |c, now| c.handle_target_idle(now, &tg, addr));
        }
    }
    !draining.is_empty()
}

/// A unix signal's next arrival, or never when its handler could not be installed.
async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Feeds a process exit to the cluster (queued while a hot upgrade hands over).
fn exited(shared: &Shared, event: ComputeEvent) {
    let ComputeEvent::Exited {
        instance_id,
        status,
        ..
    } = event;
    let id = InstanceId::from(instance_id);
    lock(&shared.processes).remove(&id);
    shared.event(move |c, now| c.handle_instance_exited(now, &id, &status));
}

/// The control loop: lets the cluster act on time, carries out its effects, and sleeps until
/// its next timeout or the next event. While a hot upgrade has retired the cluster it only
/// queues events, until the upgrade commits (then it ends) or fails (then it goes on).
async fn control_loop(
    shared: &Arc<Shared>,
    compute_events: &mut mpsc::UnboundedReceiver<ComputeEvent>,
    shutdown: impl Future<Output = ()>,
) -> Exit {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGHUP reloads the config; without the handler it would end the process.
    let mut hangup = signal(SignalKind::hangup()).ok();
    // SIGUSR2 starts a hot upgrade (as nginx's binary upgrade).
    let mut usr2 = signal(SignalKind::user_defined2()).ok();
    tokio::pin!(shutdown);
    let mut seen = Observed::default();
    loop {
        if shared.is_retired() {
            tokio::select! {
                _ = &mut shutdown => return Exit::Shutdown,
                _ = shared.handover.commit.notified() => return Exit::HandedOver,
                _ = shared.gate_changed.notified() => {}
                Some(event) = compute_events.recv() => exited(shared, event),
            }
            continue;
        }
        let draining = observe_data_plane(shared, &mut seen);
        shared.event(|c, now| c.handle_timeout(now));
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
            _ = &mut shutdown => return Exit::Shutdown,
            _ = shared.handover.commit.notified() => return Exit::HandedOver,
            _ = sleep => {}
            _ = shared.wake.notified() => {}
            _ = shared.gate_changed.notified() => {}
            () = next(&mut hangup) => {
                tracing::info!("SIGHUP received: reloading the config");
                let shared = Arc::clone(shared);
                tokio::task::spawn_blocking(move || crate::reload::reload_and_log(&shared));
            }
            () = next(&mut usr2) => {
                tracing::info!("SIGUSR2 received: hot upgrade");
                let shared = Arc::clone(shared);
                tokio::task::spawn_blocking(move || crate::upgrade::upgrade_and_log(&shared));
            }
            Some(event) = compute_events.recv() => exited(shared, event),
        }
    }
}

/// Stops the admin API and every listener from accepting and lets in-flight requests finish
/// (bounded by [`DRAIN_ON_SHUTDOWN`]).
async fn drain(shared: &Shared, stop_admin: &watch::Sender<bool>) {
    let _ = stop_admin.send(true);
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
}

/// After a hot upgrade: drains, closes the state store and exits; the instances stay with
/// the successor (this process's keeper connection closes, the successor's stays). Every
/// socket — the DNS server's and the distributions' too — stays open in the successor, which
/// serves on it already.
async fn step_down(running: Running) {
    let Running {
        shared,
        admin,
        aws,
        stop_admin,
        ..
    } = running;
    tracing::info!("handed over: draining listeners; instances keep running");
    shared.provider.detach().await;
    tokio::join!(crate::edge::stop(&shared), drain(&shared, &stop_admin));
    let writer = lock(&shared.persister).take().and_then(|mut p| p.close());
    if let Some(writer) = writer {
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    let _ = admin.await;
    if let Some(aws) = aws {
        let _ = aws.await;
    }
    tracing::info!("flotilla stepped down");
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
    crate::systemd::notify("STOPPING=1");
    // A successor still starting must not take over what is being stopped.
    shared.handover.abort_successor();
    if shared.is_retired() {
        shared.resume();
    }
    crate::edge::stop(&shared).await;
    drain(&shared, &stop_admin).await;
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
