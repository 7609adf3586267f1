//! The embedded provider: every instance is a local child process.

mod adopt;
mod handover;
mod ports;
pub(crate) mod procfs;
pub(crate) mod spawner;
pub(crate) mod sys;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::keeper::KeeperHandle;
use crate::{ComputeError, ComputeEvent, ComputeProvider, LaunchSpec, LaunchedInstance, Signal};
pub use handover::HandedProcess;
pub use spawner::SpawnSpec;
use spawner::{SpawnRequest, Spawner};

/// How instances are forked.
pub(crate) enum Backend {
    /// A long-lived thread of this process: instances die when this process does.
    Thread(Spawner),
    /// The instance keeper, a small process of its own: instances die when it does, and it
    /// dies when the last Flotilla attached to it has gone (see `keeper`).
    Keeper(KeeperHandle),
}

/// A forked instance: its pid and how it will end.
pub(crate) struct Forked {
    pub(crate) pid: u32,
    /// Resolves to the exit status, worded for operators.
    pub(crate) exit: Pin<Box<dyn Future<Output = String> + Send>>,
}

impl Backend {
    async fn fork(&self, spec: SpawnSpec) -> Result<Forked, ComputeError> {
        match self {
            Backend::Thread(spawner) => {
                let (reply, response) = oneshot::channel();
                spawner.submit(SpawnRequest { spec, reply })?;
                let mut child = response
                    .await
                    .map_err(|_| ComputeError::Spawner("thread dropped the request".into()))??;
                // A spawned child always has a pid until it has been waited for, which only
                // the exit future does.
                let pid = child.id().unwrap_or(0);
                let exit = Box::pin(async move {
                    match child.wait().await {
                        Ok(status) => describe(status),
                        Err(err) => format!("unknown ({err})"),
                    }
                });
                Ok(Forked { pid, exit })
            }
            Backend::Keeper(keeper) => keeper.fork(spec).await,
        }
    }
}

/// Runs instances as local child processes (the default, single-machine provider).
///
/// See the crate documentation for the guarantees. Dropping the provider kills every instance it
/// started (through the parent-death signal); call [`ComputeProvider::shutdown`] first for a
/// graceful stop.
pub struct LocalProcessProvider {
    shared: Arc<Shared>,
    /// Held by the provider and, briefly, by launch tasks; when the last holder goes, the
    /// spawner thread ends (or the keeper connection closes) and the parent-death signal kills
    /// every instance.
    backend: Arc<Backend>,
}

/// State shared with the per-instance exit watchers and stop timers.
struct Shared {
    log_dir: PathBuf,
    runtime: Handle,
    events: mpsc::UnboundedSender<ComputeEvent>,
    state: Mutex<State>,
    /// Number of live or launching instances, so `shutdown` can wait for zero.
    live: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    instances: HashMap<String, Entry>,
    /// Ports given to live (or launching) instances; never handed out twice.
    held_ports: HashSet<u16>,
    /// Launches that have reserved a port but whose process is not registered yet.
    launching: usize,
    shutting_down: bool,
}

struct Entry {
    pid: u32,
    /// The port the instance was given (held while it lives).
    port: u16,
    /// Its process start time, when known (handed to a successor with the pid).
    start_time: Option<u64>,
    /// A child of the instance keeper (its exit comes from there) rather than a process
    /// adopted by pid, whose exit is polled.
    kept: bool,
    stop_signal: Signal,
    stop_timeout: Duration,
    /// Flotilla asked this instance to stop (or killed it).
    requested: bool,
    /// A graceful stop (with its SIGKILL timer) is already under way.
    stopping: bool,
    /// Becomes `true` once the exit has been observed; lets the stop timer stand down.
    exited: watch::Receiver<bool>,
}

impl State {
    fn live_count(&self) -> usize {
        self.instances.len() + self.launching
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // more than losing track of instances entirely, so keep going with the data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log_path(&self, instance_id: &str) -> PathBuf {
        self.log_dir.join(format!("{instance_id}.log"))
    }

    /// Gives back a reservation after a failed launch.
    fn unreserve(&self, port: u16) {
        let mut state = self.lock();
        state.held_ports.remove(&port);
        state.launching = state.launching.saturating_sub(1);
        self.publish_live(&state);
    }

    fn publish_live(&self, state: &State) {
        self.live.send_replace(state.live_count());
    }

    /// Starts a graceful stop of `instance_id` if it is live and not already stopping.
    fn stop(self: &Arc<Self>, instance_id: &str) {
        let mut state = self.lock();
        let Some(entry) = state.instances.get_mut(instance_id) else {
            tracing::debug!(instance_id, "stop: no such live instance");
            return;
        };
        entry.requested = true;
        if entry.stopping {
            return;
        }
        entry.stopping = true;
        let (pid, signal, timeout) = (entry.pid, entry.stop_signal, entry.stop_timeout);
        let mut exited = entry.exited.clone();
        drop(state);

        tracing::info!(instance_id, pid, %signal, ?timeout, "stopping instance");
        sys::signal_group(pid, signal);
        let instance_id = instance_id.to_owned();
        self.runtime.spawn(async move {
            let timed_out = tokio::select! {
                _ = exited.wait_for(|done| *done) => false,
                () = tokio::time::sleep(timeout) => true,
            };
            if timed_out && !*exited.borrow() {
                tracing::warn!(%instance_id, pid, ?timeout, "stop timed out; sending SIGKILL");
                sys::signal_group(pid, Signal::KILL);
            }
        });
    }

    /// SIGKILLs the instance's process group at once.
    fn kill(&self, instance_id: &str) {
        let mut state = self.lock();
        let Some(entry) = state.instances.get_mut(instance_id) else {
            tracing::debug!(instance_id, "kill: no such live instance");
            return;
        };
        entry.requested = true;
        let pid = entry.pid;
        drop(state);
        tracing::info!(instance_id, pid, "killing instance");
        sys::signal_group(pid, Signal::KILL);
    }

    /// Awaits the child's exit, forgets the instance and reports the exit.
    async fn watch_exit(
        self: Arc<Self>,
        instance_id: String,
        port: u16,
        forked: Forked,
        exited: watch::Sender<bool>,
    ) {
        let Forked { pid, exit } = forked;
        let status = exit.await;
        // Anything the instance left behind in its group (helpers it forked) goes with it: an
        // instance is one unit, and stragglers would hold its port. The group id cannot have been
        // reused yet, because a pid is not recycled while a group of that id has members.
        sys::signal_group(pid, Signal::KILL);
        let requested = {
            let mut state = self.lock();
            let requested = state
                .instances
                .remove(&instance_id)
                .is_some_and(|entry| entry.requested);
            state.held_ports.remove(&port);
            self.publish_live(&state);
            requested
        };
        exited.send_replace(true);
        if requested {
            tracing::info!(%instance_id, pid, %status, "instance exited");
        } else {
            tracing::warn!(%instance_id, pid, %status, "instance exited unexpectedly");
        }
        // The receiver may be gone during teardown; nobody is left to care then.
        let _ = self.events.send(ComputeEvent::Exited {
            instance_id,
            status,
            requested,
        });
    }
}

/// Renders an exit status the way operators read it: `exit code 3`, `signal 9 (SIGKILL)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(number) => match Signal::from_number(number).and_then(Signal::name) {
            Some(name) => format!("signal {number} ({name})"),
            None => format!("signal {number}"),
        },
        None => status.to_string(),
    }
}

/// Rejects ids that could not safely name `<log_dir>/<id>.log`.
fn validate_id(id: &str) -> Result<(), ComputeError> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(ComputeError::InvalidInstanceId(id.to_owned()));
    }
    Ok(())
}

impl LocalProcessProvider {
    /// Creates the provider and the channel on which instance exits are reported.
    ///
    /// Must be called inside a Tokio runtime: exit watchers and stop timers run there. Logs go
    /// to `<log_dir>/<instance_id>.log`; the directory is created on first launch.
    pub fn new(
        log_dir: PathBuf,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let runtime =
            Handle::try_current().map_err(|err| ComputeError::NoRuntime(err.to_string()))?;
        let spawner = Spawner::start(runtime)?;
        Self::with_backend(log_dir, Backend::Thread(spawner))
    }

    pub(crate) fn with_backend(
        log_dir: PathBuf,
        backend: Backend,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let runtime =
            Handle::try_current().map_err(|err| ComputeError::NoRuntime(err.to_string()))?;
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            log_dir,
            runtime,
            events,
            state: Mutex::new(State::default()),
            live: watch::Sender::new(0),
        });
        let backend = Arc::new(backend);
        Ok((Self { shared, backend }, receiver))
    }

    /// Where the given instance's output goes (`<log_dir>/<instance_id>.log`).
    pub fn log_path(&self, instance_id: &str) -> PathBuf {
        self.shared.log_path(instance_id)
    }

    /// Reserves a port and a launch slot; fails if shutting down or the id is taken.
    fn reserve(&self, instance_id: &str) -> Result<u16, ComputeError> {
        let mut state = self.shared.lock();
        if state.shutting_down {
            return Err(ComputeError::ShuttingDown);
        }
        if state.instances.contains_key(instance_id) {
            return Err(ComputeError::DuplicateInstance(instance_id.to_owned()));
        }
        let port =
            ports::pick_port(&state.held_ports, ports::ephemeral_port).map_err(|source| {
                ComputeError::NoFreePort {
                    instance_id: instance_id.to_owned(),
                    source,
                }
            })?;
        state.held_ports.insert(port);
        state.launching += 1;
        self.shared.publish_live(&state);
        Ok(port)
    }

    /// What to fork for `spec`, listening on `port` (Flotilla's own variables win).
    fn spawn_spec(&self, spec: &LaunchSpec, port: u16) -> Result<SpawnSpec, ComputeError> {
        let Some((program, args)) = spec.command.split_first() else {
            return Err(ComputeError::EmptyCommand {
                instance_id: spec.instance_id.clone(),
            });
        };
        let mut env: Vec<(String, String)> = spec.env.clone().into_iter().collect();
        env.extend([
            ("PORT".to_string(), port.to_string()),
            ("FLOTILLA_INSTANCE_ID".to_string(), spec.instance_id.clone()),
            ("FLOTILLA_ZONE".to_string(), spec.zone.clone()),
            ("FLOTILLA_GROUP".to_string(), spec.group.clone()),
        ]);
        Ok(SpawnSpec {
            instance_id: spec.instance_id.clone(),
            program: program.clone(),
            args: args.to_vec(),
            env,
            working_dir: spec.working_dir.clone(),
            log_path: self.shared.log_path(&spec.instance_id),
        })
    }
}

/// Forks the instance for a reserved `port` and registers it. Runs as its own task, so a caller
/// that gives up half-way cannot leave an unwatched process or a leaked reservation behind.
async fn launch_reserved(
    shared: Arc<Shared>,
    backend: Arc<Backend>,
    spec: LaunchSpec,
    fork: SpawnSpec,
    port: u16,
) -> Result<LaunchedInstance, ComputeError> {
    let result = fork_and_register(&shared, &backend, spec, fork, port).await;
    if result.is_err() {
        shared.unreserve(port);
    }
    result
}

async fn fork_and_register(
    shared: &Arc<Shared>,
    backend: &Backend,
    spec: LaunchSpec,
    fork: SpawnSpec,
    port: u16,
) -> Result<LaunchedInstance, ComputeError> {
    let log_path = fork.log_path.clone();
    let forked = backend.fork(fork).await?;
    let pid = forked.pid;
    let (exited_tx, exited_rx) = watch::channel(false);
    let stop_now = {
        let mut state = shared.lock();
        state.launching = state.launching.saturating_sub(1);
        state.instances.insert(
            spec.instance_id.clone(),
            Entry {
                pid,
                port,
                start_time: procfs::process_start_time(pid),
                kept: matches!(backend, Backend::Keeper(_)),
                stop_signal: spec.stop_signal,
                stop_timeout: spec.stop_timeout,
                requested: false,
                stopping: false,
                exited: exited_rx,
            },
        );
        shared.publish_live(&state);
        state.shutting_down
    };
    shared.runtime.spawn(Arc::clone(shared).watch_exit(
        spec.instance_id.clone(),
        port,
        forked,
        exited_tx,
    ));
    if stop_now {
        // Shutdown began while this process was being forked: it must not be left behind.
        shared.stop(&spec.instance_id);
    }
    tracing::info!(instance_id = %spec.instance_id, pid, port, "instance launched");
    Ok(LaunchedInstance {
        instance_id: spec.instance_id,
        pid,
        address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        log_path,
    })
}

impl ComputeProvider for LocalProcessProvider {
    async fn launch(&self, spec: LaunchSpec) -> Result<LaunchedInstance, ComputeError> {
        validate_id(&spec.instance_id)?;
        if spec.command.is_empty() {
            return Err(ComputeError::EmptyCommand {
                instance_id: spec.instance_id,
            });
        }
        let port = self.reserve(&spec.instance_id)?;
        let fork = match self.spawn_spec(&spec, port) {
            Ok(fork) => fork,
            Err(e) => {
                self.shared.unreserve(port);
                return Err(e);
            }
        };
        // On failure the reservation is returned; on success the exit watcher frees the port.
        let task = launch_reserved(
            Arc::clone(&self.shared),
            Arc::clone(&self.backend),
            spec,
            fork,
            port,
        );
        match self.shared.runtime.spawn(task).await {
            Ok(result) => result,
            Err(err) => Err(ComputeError::Spawner(format!("launch task failed: {err}"))),
        }
    }

    fn stop(&self, instance_id: &str) {
        self.shared.stop(instance_id);
    }

    fn kill(&self, instance_id: &str) {
        self.shared.kill(instance_id);
    }

    async fn shutdown(&self) {
        let ids: Vec<String> = {
            let mut state = self.shared.lock();
            state.shutting_down = true;
            state.instances.keys().cloned().collect()
        };
        tracing::info!(count = ids.len(), "stopping all instances");
        for id in &ids {
            self.shared.stop(id);
        }
        // Bounded: every instance is SIGKILLed after its own stop_timeout at the latest.
        let mut live = self.shared.live.subscribe();
        let _ = live.wait_for(|count| *count == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ids_that_escape_the_log_dir() {
        assert!(validate_id("i-0a1b2c").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn describes_statuses_for_operators() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exit code 3");
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9 (SIGKILL)");
    }
}
