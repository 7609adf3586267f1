//! The dedicated thread that forks every instance.
//!
//! WHY a dedicated thread: instances are started with `PR_SET_PDEATHSIG = SIGKILL` so that none
//! outlives Flotilla. The kernel delivers that signal when the *thread* that forked the child
//! exits, not when the process does. Tokio's blocking-pool and worker threads come and go (idle
//! blocking threads exit after a few seconds), which would SIGKILL perfectly healthy instances.
//! So every fork happens on this one long-lived std thread. It lives exactly as long as the
//! provider: dropping the provider closes the request channel, the thread ends, and the kernel
//! kills every instance it started — the same guarantee as when Flotilla dies.
//!
//! The thread enters the Tokio runtime handle so that the children are `tokio::process` children
//! whose exits are awaited by ordinary tasks (no waiter thread per instance).

use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use serde::{Deserialize, Serialize};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::ComputeError;

/// What to fork for one instance, fully resolved: the same value whether this process forks it
/// (the spawner thread) or the instance keeper does (sent over its socket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnSpec {
    /// The instance id (names the log file).
    pub instance_id: String,
    /// The program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment added to the forking process's own, in order (later wins).
    pub env: Vec<(String, String)>,
    /// Working directory; empty for the forking process's own.
    pub working_dir: PathBuf,
    /// Where stdout and stderr go (appended).
    pub log_path: PathBuf,
    /// Whether the child gets the parent-death signal of the forking thread (not on a
    /// cluster-mode agent whose instances outlive it).
    #[serde(default = "yes")]
    pub die_with_parent: bool,
}

fn yes() -> bool {
    true
}

impl SpawnSpec {
    /// The OS command: own process group (the terminal's Ctrl-C reaches Flotilla only, which
    /// drains, then stops instances in order; stop/kill address the instance's whole tree) and
    /// the parent-death signal tied to the forking thread, unless `die_with_parent` is off.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        if !self.working_dir.as_os_str().is_empty() {
            command.current_dir(&self.working_dir);
        }
        if self.die_with_parent {
            super::sys::die_with_parent(&mut command);
        }
        command
    }
}

impl SpawnSpec {
    /// What to fork for a command built elsewhere (a container engine's client), its output
    /// going to `log_path`. Non-UTF-8 parts are taken lossily (engine paths and arguments are
    /// ours and plain).
    pub(crate) fn of_command(instance_id: &str, command: &Command, log_path: PathBuf) -> Self {
        let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        SpawnSpec {
            instance_id: instance_id.to_owned(),
            program: text(command.get_program()),
            args: command.get_args().map(text).collect(),
            env: command
                .get_envs()
                .filter_map(|(k, v)| Some((text(k), text(v?))))
                .collect(),
            working_dir: command
                .get_current_dir()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            log_path,
            die_with_parent: true,
        }
    }
}

/// One fork request: what to fork and where to send the result.
pub(crate) struct SpawnRequest {
    pub(crate) spec: SpawnSpec,
    pub(crate) reply: oneshot::Sender<Result<tokio::process::Child, ComputeError>>,
}

/// Handle to the spawner thread; dropping it ends the thread (and, via the parent-death signal,
/// every instance the thread started).
pub(crate) struct Spawner {
    requests: mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    /// Starts the spawner thread bound to `runtime`.
    pub(crate) fn start(runtime: Handle) -> Result<Self, ComputeError> {
        let (requests, receiver) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("flotilla-spawner".into())
            .spawn(move || {
                let _entered = runtime.enter();
                // Ends when the provider (the only sender) is dropped.
                while let Ok(request) = receiver.recv() {
                    let SpawnRequest { spec, reply } = request;
                    let result = spawn_one(&spec);
                    // The launcher may have given up (its future was dropped); then the child is
                    // dropped here, and tokio keeps reaping it in the background.
                    let _ = reply.send(result);
                }
                tracing::debug!("spawner thread stopping");
            })
            .map_err(|err| ComputeError::Spawner(err.to_string()))?;
        Ok(Self { requests })
    }

    /// Hands a request to the thread.
    pub(crate) fn submit(&self, request: SpawnRequest) -> Result<(), ComputeError> {
        self.requests
            .send(request)
            .map_err(|_| ComputeError::Spawner("thread has stopped".into()))
    }
}

/// Opens the log file and forks the command. Runs on the spawner thread, or on the keeper's
/// one thread.
pub(crate) fn spawn_one(spec: &SpawnSpec) -> Result<tokio::process::Child, ComputeError> {
    let (instance_id, log_path) = (spec.instance_id.as_str(), spec.log_path.as_path());
    let mut command = spec.command();
    let log = open_log(log_path)?;
    let log_err = log.try_clone().map_err(|source| ComputeError::Log {
        path: log_path.to_path_buf(),
        source,
    })?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let program = command.get_program().to_string_lossy().into_owned();
    let mut command = tokio::process::Command::from(command);
    // Instances are stopped deliberately (stop/kill) or by the parent-death signal, never because
    // a handle went out of scope.
    command.kill_on_drop(false);
    command.spawn().map_err(|source| ComputeError::Spawn {
        instance_id: instance_id.to_owned(),
        program,
        source,
    })
}

/// Creates the log directory and opens `<instance_id>.log` for appending.
fn open_log(path: &Path) -> Result<File, ComputeError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| ComputeError::Log {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ComputeError::Log {
            path: path.to_path_buf(),
            source,
        })
}
