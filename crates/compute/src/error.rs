//! Errors of the compute layer.

use std::io;
use std::path::PathBuf;

/// Why an instance could not be launched (or the provider could not start).
///
/// Launch failures are ordinary events for an auto scaler (a bad launch template, a missing
/// binary), so they are values the control plane can record as a failed activity, never panics.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The launch spec's command was empty, so there is no program to run.
    #[error("instance {instance_id}: the command is empty")]
    EmptyCommand {
        /// The instance that was being launched.
        instance_id: String,
    },
    /// The instance id cannot name a log file (empty, or contains a path separator).
    #[error("invalid instance id {0:?}: must be non-empty and contain no '/' or NUL")]
    InvalidInstanceId(String),
    /// An instance with this id is already running.
    #[error("instance {0} is already running")]
    DuplicateInstance(String),
    /// The provider is shutting down and accepts no new instances.
    #[error("the compute provider is shutting down")]
    ShuttingDown,
    /// No free loopback port could be found for the instance.
    #[error("no free loopback port for instance {instance_id}: {source}")]
    NoFreePort {
        /// The instance that was being launched.
        instance_id: String,
        /// The last error from binding `127.0.0.1:0`.
        #[source]
        source: io::Error,
    },
    /// The log directory or the instance's log file could not be created.
    #[error("cannot open log file {path}: {source}")]
    Log {
        /// The log file (or directory) that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The operating system refused to start the program (missing binary, bad working dir, ...).
    #[error("cannot start {program:?} for instance {instance_id}: {source}")]
    Spawn {
        /// The instance that was being launched.
        instance_id: String,
        /// The program that failed to start.
        program: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The provider must be created inside a Tokio runtime (it spawns exit watchers there).
    #[error("the compute provider needs a Tokio runtime: {0}")]
    NoRuntime(String),
    /// The dedicated spawner thread could not be started or is gone.
    #[error("the process spawner thread is unavailable: {0}")]
    Spawner(String),
    /// Another Flotilla owns the instance keeper of this state directory.
    #[error(
        "the state directory is in use: the instance keeper at {socket} is owned by flotilla \
         pid {owners:?}"
    )]
    StateDirInUse {
        /// The keeper's socket.
        socket: std::path::PathBuf,
        /// The pids attached to it.
        owners: Vec<u32>,
    },
    /// A process to adopt is not running (or its pid now belongs to another process).
    #[error("cannot adopt instance {instance_id}: process {pid} is not running")]
    NotRunning {
        /// The instance that was to be adopted.
        instance_id: String,
        /// The pid recorded for it.
        pid: u32,
    },
    /// A launch spec with an image reached the process provider (or one without an image the
    /// container provider).
    #[error("instance {0}: the launch spec is for the other provider (image vs command)")]
    WrongProvider(String),
    /// The container engine is missing or refused the launch (unknown image, failed pull, bad
    /// option): its own words, so the failed launch activity says what to fix.
    #[error("instance {instance_id}: {reason}")]
    Engine {
        /// The instance that was being launched.
        instance_id: String,
        /// What the engine said (or why there is no engine).
        reason: String,
    },
    /// The container started but exited before it was up (within its settle time).
    #[error("instance {instance_id}: the container exited at once ({status}){output}")]
    ExitedAtOnce {
        /// The instance that was being launched.
        instance_id: String,
        /// Its exit status, as in exit events.
        status: String,
        /// `": "` and the last lines of its output (the engine's reason, or the app's), or
        /// nothing.
        output: String,
    },
}
