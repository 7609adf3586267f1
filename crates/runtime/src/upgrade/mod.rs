//! Hot upgrade (`flotilla upgrade`, `POST /v1/upgrade`, `SIGUSR2`): the binary now at this
//! process's path is started with the same arguments; it receives every listening socket,
//! takes over the instances (through the instance keeper, none restarted) and the whole
//! cluster state, says it is ready, and only then does this process stop accepting, finish
//! its in-flight requests (bounded) and exit — leaving the instances running. A successor that
//! fails to start or to become ready is killed and this process keeps serving; the answer says
//! why. The conversation is in `wire.rs`; the successor's side in `successor.rs`; the design
//! in docs/upgrade.md.

mod fds;
pub(crate) mod successor;
mod wire;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use flotilla_admin::api::UpgradeResponse;
use flotilla_admin::AdminError;

pub(crate) use fds::Inherited;
pub use successor::Successor;

use crate::shared::{lock, Shared};
use wire::{State, ToNew, ToOld};

/// The environment variable that tells a new process it succeeds the one listening there.
pub const UPGRADE_ENV: &str = "FLOTILLA_UPGRADE_FROM";
/// How long a successor may take from its start to `Ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may wait for launches under way before it can be snapshotted.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a hot upgrade needs of the running process.
pub(crate) struct Handover {
    /// The binary's path and arguments, as started.
    pub(crate) exe: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// The state directory (the upgrade socket lives there).
    pub(crate) state_dir: PathBuf,
    /// The admin API's configured address and a duplicate of its socket.
    pub(crate) admin: Option<(SocketAddr, OwnedFd)>,
    /// The AWS API's, when it runs.
    pub(crate) aws: Option<(SocketAddr, OwnedFd)>,
    /// The run the activities are stored under.
    pub(crate) run_id: String,
    /// An upgrade is under way (a second one is refused with 409).
    pub(crate) busy: AtomicBool,
    /// The successor under way, to kill if this process is told to stop meanwhile.
    pub(crate) successor_pid: AtomicU32,
    /// Set once a successor said `Ready`: the control loop then steps down.
    pub(crate) committed: AtomicBool,
    pub(crate) commit: tokio::sync::Notify,
}

impl Handover {
    pub(crate) fn new(
        exe: PathBuf,
        args: Vec<OsString>,
        state_dir: PathBuf,
        admin: Option<(SocketAddr, OwnedFd)>,
        aws: Option<(SocketAddr, OwnedFd)>,
        run_id: String,
    ) -> Self {
        Handover {
            exe,
            args,
            state_dir,
            admin,
            aws,
            run_id,
            busy: AtomicBool::new(false),
            successor_pid: AtomicU32::new(0),
            committed: AtomicBool::new(false),
            commit: tokio::sync::Notify::new(),
        }
    }

    /// Kills a successor still starting (this process is stopping instead).
    pub(crate) fn abort_successor(&self) {
        let pid = self.successor_pid.swap(0, Ordering::SeqCst);
        if let Ok(pid) = i32::try_from(pid) {
            if pid > 0 {
                tracing::warn!(pid, "stopping: killing the successor still starting");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// The answer to operator commands while the cluster is handed over.
pub(crate) fn handing_over() -> AdminError {
    AdminError::Conflict(
        "a hot upgrade is handing this flotilla over to a new process; retry in a moment".into(),
    )
}

/// `upgrade` for `SIGUSR2`: the outcome goes to the log.
pub(crate) fn upgrade_and_log(shared: &Arc<Shared>) {
    match upgrade(shared) {
        Ok(r) => tracing::info!(new_pid = r.new_pid, "hot upgrade done: {}", r.message),
        Err(e) => tracing::error!(reason = %e, "hot upgrade failed; this process keeps serving"),
    }
}

/// Runs a hot upgrade to its end (blocking): `Ok` once the successor is ready and this
/// process is stepping down; `Err` with the reason otherwise, this process serving on.
pub(crate) fn upgrade(shared: &Arc<Shared>) -> Result<UpgradeResponse, AdminError> {
    let h = &shared.handover;
    if h.committed.load(Ordering::SeqCst) || h.busy.swap(true, Ordering::SeqCst) {
        return Err(AdminError::Conflict(
            "an upgrade is already in progress".into(),
        ));
    }
    let socket = h.state_dir.join("upgrade.sock");
    tracing::info!(exe = %h.exe.display(), "hot upgrade: starting the new flotilla");
    let result = run_upgrade(shared, &socket);
    let _ = std::fs::remove_file(&socket);
    if let Err(e) = &result {
        tracing::error!(reason = %e, "hot upgrade failed; this process keeps serving");
        h.busy.store(false, Ordering::SeqCst);
    }
    result.map_err(AdminError::UpgradeFailed)
}

fn run_upgrade(shared: &Arc<Shared>, socket: &std::path::Path) -> Result<UpgradeResponse, String> {
    let h = &shared.handover;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    let mut child = Command::new(&h.exe)
        .args(&h.args)
        .env(UPGRADE_ENV, socket)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", h.exe.display()))?;
    h.successor_pid.store(child.id(), Ordering::SeqCst);
    let deadline = Instant::now() + READY_TIMEOUT;
    let outcome = converse(shared, &listener, &mut child, deadline);
    h.successor_pid.store(0, Ordering::SeqCst);
    match outcome {
        Ok(()) => {
            let new_pid = child.id();
            tracing::info!(new_pid, "the new flotilla is ready; this one stops accepting, drains and exits; instances keep running");
            h.committed.store(true, Ordering::SeqCst);
            h.commit.notify_one();
            Ok(UpgradeResponse {
                old_pid: std::process::id(),
                new_pid,
                message: format!(
                    "flotilla pid {new_pid} now serves; pid {} drains and exits",
                    std::process::id()
                ),
            })
        }
        Err(e) => {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            if shared.is_retired() {
                shared.resume();
                crate::executor::execute_pending(shared);
            }
            Err(if e.contains("exited") || status.is_empty() {
                e
            } else {
                format!("{e} (the new process was stopped: {status})")
            })
        }
    }
}

/// Accepts the successor's connection, watching it does not die first.
fn accept(
    listener: &UnixListener,
    child: &mut Child,
    deadline: Instant,
) -> Result<UnixStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("accepting the new process: {e}")),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the new flotilla exited ({status}) before it connected; see its error in the log"
            ));
        }
        if Instant::now() > deadline {
            return Err("the new flotilla did not connect in time".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the successor's next message before `deadline`.
fn hear(stream: &UnixStream, deadline: Instant) -> Result<ToOld, String> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    match wire::recv::<ToOld>(stream) {
        Ok(ToOld::Failed { error }) => Err(format!("the new flotilla failed: {error}")),
        Ok(m) => Ok(m),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err("the new flotilla exited before it was ready; see its error in the log".into())
        }
        Err(e) => Err(format!("the new flotilla did not answer in time ({e})")),
    }
}

fn converse(
    shared: &Arc<Shared>,
    listener: &UnixListener,
    child: &mut Child,
    deadline: Instant,
) -> Result<(), String> {
    let stream = accept(listener, child, deadline)?;
    let ToOld::Hello { pid } = hear(&stream, deadline)? else {
        return Err("the new flotilla spoke out of turn".into());
    };
    tracing::info!(
        pid,
        "the new flotilla connected; handing over the listening sockets"
    );
    if let Err(e) = send_sockets(shared, &stream) {
        // It may have given up already (a config that does not parse): its reason is waiting.
        return Err(hear(&stream, deadline).err().unwrap_or(e));
    }
    if !matches!(hear(&stream, deadline)?, ToOld::Prepared) {
        return Err("the new flotilla spoke out of turn".into());
    }
    let state = retire(shared)?;
    wire::send(&stream, &ToNew::State(Box::new(state)))
        .map_err(|e| format!("sending the state: {e}"))?;
    match hear(&stream, deadline)? {
        ToOld::Ready => Ok(()),
        _ => Err("the new flotilla spoke out of turn".into()),
    }
}

/// Sends every listening socket in one frame, in [`wire::Sockets`]'s order.
fn send_sockets(shared: &Shared, stream: &UnixStream) -> Result<(), String> {
    let mut frame = wire::Sockets::default();
    let mut fds = Vec::new();
    for (configured, bound, fd) in shared.listeners.sockets() {
        frame.listeners.push((configured, bound));
        fds.push(fd);
    }
    let mut attach = |socket: &Option<(SocketAddr, OwnedFd)>| match socket {
        Some((addr, fd)) => match fd.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                fds.push(fd);
                Some(*addr)
            }
            Err(_) => None,
        },
        None => None,
    };
    frame.admin = attach(&shared.handover.admin);
    frame.aws = attach(&shared.handover.aws);
    let edge = lock(&shared.edge)
        .as_ref()
        .map(|e| e.sockets.try_clone())
        .transpose()
        .map_err(|e| format!("duplicating the edge's sockets: {e}"))?
        .unwrap_or_default();
    if let Some((addr, udp, tcp)) = edge.dns {
        frame.dns = Some(addr);
        fds.extend([udp, tcp]);
    }
    for (addr, fd) in edge.distributions {
        frame.distributions.push(addr);
        fds.push(fd);
    }
    let body = wire::encode(&frame).map_err(|e| e.to_string())?;
    fds::send_with_fds(stream, &body, &fds).map_err(|e| format!("handing over the sockets: {e}"))
}

/// Carries out every effect, waits for launches under way, then retires the cluster and
/// returns its snapshot with the processes behind it.
fn retire(shared: &Arc<Shared>) -> Result<State, String> {
    let deadline = Instant::now() + QUIESCE_TIMEOUT;
    loop {
        crate::executor::execute_pending(shared);
        let snapshot = {
            let _turn = lock(&shared.executing);
            shared.retire_if(
                |c| !c.has_pending_effects(),
                |c| {
                    let elapsed = shared.clock.now().as_duration();
                    (wire::encode(c), elapsed, shared.provider.handover())
                },
            )
        };
        if let Some((cluster, elapsed, compute)) = snapshot {
            let cluster = cluster.map_err(|e| format!("cannot serialise the cluster: {e}"))?;
            tracing::info!(
                bytes = cluster.len(),
                processes = compute.processes.len(),
                containers = compute.containers.len(),
                "cluster retired and handed over"
            );
            let processes = lock(&shared.processes);
            let pids = processes
                .iter()
                .map(|(id, p)| (id.to_string(), p.pid, p.start_time))
                .collect();
            let limits = processes
                .iter()
                .filter_map(|(id, p)| Some((id.to_string(), p.limits.clone()?)))
                .collect();
            drop(processes);
            return Ok(State {
                format: flotilla_control::SNAPSHOT_FORMAT,
                cluster,
                elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
                epoch_wall_ns: shared
                    .clock
                    .epoch_wall()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                    .unwrap_or(0),
                run_id: shared.handover.run_id.clone(),
                compute,
                pids,
                limits,
                history: shared.history.clone(),
            });
        }
        if Instant::now() > deadline {
            return Err("instances kept launching; the cluster could not be handed over".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
