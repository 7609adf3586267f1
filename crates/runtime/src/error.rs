//! Errors that stop `flotilla up` before or while it starts.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the runtime could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A listener or the admin API could not bind its address.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address from the config.
        addr: SocketAddr,
        /// The OS error (often: address already in use).
        source: std::io::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A load balancer's access log file could not be opened.
    #[error("cannot open access log {path}: {source}")]
    AccessLog {
        /// The file from the config.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The compute provider could not start.
    #[error("compute provider: {0}")]
    Compute(#[from] flotilla_compute::ComputeError),
    /// The admin API is reachable from other machines but no token protects it.
    #[error("admin_bind {addr} is not a loopback address, so a token is required: set the environment variable {env}")]
    AdminTokenRequired {
        /// The non-loopback admin address.
        addr: SocketAddr,
        /// The variable that should hold the token.
        env: String,
    },
    /// An https listener's certificates could not be loaded.
    #[error("https listener {addr}: {source}")]
    Tls {
        /// The listener's bind address.
        addr: SocketAddr,
        /// What was wrong, naming the file.
        source: flotilla_proxy::tls::TlsError,
    },
    /// The AWS API is reachable from other machines but no access key is configured.
    #[error("[aws_api] bind {addr} is not a loopback address, so access keys are required: set {env} to ACCESS_KEY_ID:SECRET_ACCESS_KEY")]
    AwsKeysRequired {
        /// The non-loopback address.
        addr: SocketAddr,
        /// The variables that may hold keys.
        env: String,
    },
    /// What the AWS API created earlier cannot run with this config.
    #[error("the AWS API's stored resources: {0}")]
    AwsOverlay(String),
    /// A distribution listener could not start (bind or certificates).
    #[error("{0}")]
    Edge(String),
    /// A hot upgrade's successor could not take over (the running process serves on).
    #[error("hot upgrade: {0}")]
    Upgrade(String),
    /// The durable state under `state_dir` could not be opened or read.
    #[error("{0}")]
    State(#[from] flotilla_state::StateError),
}
