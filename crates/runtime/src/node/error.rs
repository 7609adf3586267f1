//! Why `flotilla node` could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A reason to refuse starting a node; each is a clear message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node's name cannot be a key segment.
    #[error("node name {0:?} must be non-empty and contain no '/'")]
    BadName(String),
    /// `--zone` names a zone the applied config does not have.
    #[error("zone {zone:?} is not one of the cluster's zones ({zones}); apply a config that lists it, or pick one of those")]
    UnknownZone {
        /// The zone asked for.
        zone: String,
        /// The config's zones, comma-separated.
        zones: String,
    },
    /// Another node is registered under this name.
    #[error("a node named {name:?} is already registered (zone {zone}, address {address}); choose another --name, or stop that node first (a node that just died is forgotten when its lease expires, within {ttl_secs} s)")]
    DuplicateName {
        /// The name.
        name: String,
        /// The registered node's zone.
        zone: String,
        /// The registered node's address.
        address: String,
        /// The lease TTL after which a dead node's registration goes.
        ttl_secs: u64,
    },
    /// The admin API's address could not be bound.
    #[error("cannot bind the admin API on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The admin API is reachable from other machines but no token protects it.
    #[error("--admin-bind {addr} is not a loopback address, so a token is required: set FLOTILLA_ADMIN_TOKEN")]
    AdminTokenRequired {
        /// The address.
        addr: SocketAddr,
    },
    /// The state directory could not be created or written.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another node process uses the state directory.
    #[error("state directory {path} is in use by another flotilla node (pid {pid}); give each node its own --state-dir")]
    StateDirInUse {
        /// The directory.
        path: PathBuf,
        /// The other process.
        pid: u32,
    },
    /// The store refused something it will keep refusing.
    #[error(transparent)]
    Store(#[from] flotilla_cluster::ClusterError),
    /// The compute provider could not start.
    #[error(transparent)]
    Compute(#[from] flotilla_compute::ComputeError),
    /// Something else the node needs failed to start.
    #[error(transparent)]
    Runtime(#[from] crate::RuntimeError),
}
