//! The embedded provider: every instance is a local child process.

mod adopt;
pub(crate) mod core;
pub(crate) mod handover;
pub(crate) mod ports;
pub(crate) mod procfs;
pub(crate) mod spawner;
pub(crate) mod sys;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::keeper::KeeperHandle;
use crate::{ComputeError, ComputeEvent, ComputeProvider, LaunchSpec, LaunchedInstance, Signal};
use core::{Control, Entry, Shared};
pub use handover::HandedProcess;
pub(crate) use handover::Live;
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
    pub(crate) shared: Arc<Shared>,
    /// Held by the provider and, briefly, by launch tasks; when the last holder goes, the
    /// spawner thread ends (or the keeper connection closes) and the parent-death signal kills
    /// every instance. Shared with the container provider's core when both fork through one
    /// instance keeper.
    pub(crate) backend: Arc<Backend>,
}

/// How the local provider runs its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalOptions {
    /// The address instances listen on (`FLOTILLA_HOST`) and are reached at: loopback under
    /// `flotilla up`, the host's address on a cluster-mode agent.
    pub host: IpAddr,
    /// Whether instances die with the provider's process (parent-death signal). `flotilla up`
    /// wants that (no instance outlives it, even SIGKILLed); a cluster-mode agent does not: its
    /// instances keep serving while it restarts, and the new agent adopts them.
    pub die_with_parent: bool,
}

impl Default for LocalOptions {
    /// Loopback, dying with the parent: `flotilla up`'s guarantees.
    fn default() -> Self {
        LocalOptions {
            host: IpAddr::from(Ipv4Addr::LOCALHOST),
            die_with_parent: true,
        }
    }
}

/// One child to start as an instance: what to fork is resolved, the port reserved.
pub(crate) struct Start {
    pub(crate) instance_id: String,
    pub(crate) spawn: SpawnSpec,
    pub(crate) port: u16,
    pub(crate) stop_signal: Signal,
    pub(crate) stop_timeout: Duration,
    pub(crate) control: Control,
    /// Whether the launcher judges the launch after the start (an exit meanwhile is then not
    /// reported as an event: the launch fails instead).
    pub(crate) settling: bool,
}

/// A started child: its pid, its log file, and its exit status once it has exited.
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) log_path: PathBuf,
    pub(crate) exited: watch::Receiver<Option<String>>,
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
        let (events, receiver) = mpsc::unbounded_channel();
        Ok((Self::with_events(log_dir, events)?, receiver))
    }

    /// Like [`new`](Self::new), reporting exits on `events` (shared with other providers).
    pub fn with_events(
        log_dir: PathBuf,
        events: mpsc::UnboundedSender<ComputeEvent>,
    ) -> Result<Self, ComputeError> {
        Self::with_options(log_dir, LocalOptions::default(), events)
    }

    /// [`with_events`](Self::with_events) with instances on `options.host`, surviving the
    /// provider or not (a cluster-mode agent).
    pub fn with_options(
        log_dir: PathBuf,
        options: LocalOptions,
        events: mpsc::UnboundedSender<ComputeEvent>,
    ) -> Result<Self, ComputeError> {
        let runtime =
            Handle::try_current().map_err(|err| ComputeError::NoRuntime(err.to_string()))?;
        let spawner = Spawner::start(runtime)?;
        Self::with_backend(log_dir, options, Arc::new(Backend::Thread(spawner)), events)
    }

    /// A provider forking through `backend` (which another provider may share).
    pub(crate) fn with_backend(
        log_dir: PathBuf,
        options: LocalOptions,
        backend: Arc<Backend>,
        events: mpsc::UnboundedSender<ComputeEvent>,
    ) -> Result<Self, ComputeError> {
        let runtime =
            Handle::try_current().map_err(|err| ComputeError::NoRuntime(err.to_string()))?;
        Ok(Self {
            shared: Arc::new(Shared::new(log_dir, options, runtime, events)),
            backend,
        })
    }

    /// Where the given instance's output goes (`<log_dir>/<instance_id>.log`).
    pub fn log_path(&self, instance_id: &str) -> PathBuf {
        self.shared.log_path(instance_id)
    }

    /// Reserves a port and a launch slot; fails if shutting down or the id is taken.
    pub(crate) fn reserve(&self, instance_id: &str) -> Result<u16, ComputeError> {
        validate_id(instance_id)?;
        let mut state = self.shared.lock();
        if state.shutting_down {
            return Err(ComputeError::ShuttingDown);
        }
        if state.instances.contains_key(instance_id) {
            return Err(ComputeError::DuplicateInstance(instance_id.to_owned()));
        }
        let port = ports::reserve(self.shared.options.host).map_err(|source| {
            ComputeError::NoFreePort {
                instance_id: instance_id.to_owned(),
                source,
            }
        })?;
        state.launching += 1;
        self.shared.publish_live(&state);
        Ok(port)
    }

    /// Gives back a reservation whose launch failed before [`start`](Self::start).
    pub(crate) fn unreserve(&self, port: u16) {
        self.shared.unreserve(port);
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
            (
                "FLOTILLA_HOST".to_string(),
                self.shared.options.host.to_string(),
            ),
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
            die_with_parent: true,
        })
    }

    /// Forks a child for a reserved port and registers it, in a task of its own so that a
    /// caller that gives up half-way cannot leave an unwatched process or a leaked reservation
    /// behind. The reservation is given back on failure.
    pub(crate) async fn start(&self, start: Start) -> Result<Started, ComputeError> {
        let port = start.port;
        let task = start_child(Arc::clone(&self.shared), Arc::clone(&self.backend), start);
        let result = match self.shared.runtime.spawn(task).await {
            Ok(result) => result,
            Err(err) => Err(ComputeError::Spawner(format!("launch task failed: {err}"))),
        };
        if result.is_err() {
            self.shared.unreserve(port);
        }
        result
    }
}

async fn start_child(
    shared: Arc<Shared>,
    backend: Arc<Backend>,
    start: Start,
) -> Result<Started, ComputeError> {
    let Start {
        instance_id,
        mut spawn,
        port,
        stop_signal,
        stop_timeout,
        control,
        settling,
    } = start;
    spawn.die_with_parent = shared.options.die_with_parent;
    let log_path = spawn.log_path.clone();
    let forked = backend.fork(spawn).await?;
    let pid = forked.pid;
    let (exited_tx, exited_rx) = watch::channel(None);
    let entry = Entry {
        pid,
        port,
        start_time: procfs::process_start_time(pid),
        kept: matches!(*backend, Backend::Keeper(_)),
        stop_signal,
        stop_timeout,
        control,
        requested: false,
        stopping: false,
        settling,
        exited: exited_rx.clone(),
    };
    let stop_now = shared.register(&instance_id, entry);
    shared
        .runtime
        .spawn(Arc::clone(&shared).watch_exit(instance_id.clone(), forked, exited_tx));
    if stop_now {
        // Shutdown began while this process was being forked: it must not be left behind.
        shared.stop(&instance_id);
    }
    Ok(Started {
        pid,
        log_path,
        exited: exited_rx,
    })
}

impl ComputeProvider for LocalProcessProvider {
    async fn launch(&self, spec: LaunchSpec) -> Result<LaunchedInstance, ComputeError> {
        validate_id(&spec.instance_id)?;
        if spec.image.is_some() {
            return Err(ComputeError::WrongProvider(spec.instance_id));
        }
        let port = self.reserve(&spec.instance_id)?;
        let spawn = match self.spawn_spec(&spec, port) {
            Ok(spawn) => spawn,
            Err(e) => {
                self.unreserve(port);
                return Err(e);
            }
        };
        let started = self
            .start(Start {
                instance_id: spec.instance_id.clone(),
                spawn,
                port,
                stop_signal: spec.stop_signal,
                stop_timeout: spec.stop_timeout,
                control: Control::Group,
                settling: false,
            })
            .await?;
        tracing::info!(instance_id = %spec.instance_id, pid = started.pid, port, "instance launched");
        Ok(LaunchedInstance {
            instance_id: spec.instance_id,
            pid: started.pid,
            address: SocketAddr::new(self.shared.options.host, port),
            log_path: started.log_path,
            limits: None,
        })
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
