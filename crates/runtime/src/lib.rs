//! The real runtime: the executor of the sans-IO control plane (`flotilla-control`'s
//! `Cluster`). It feeds the cluster wall-clock time, process exits, probe results and the data
//! plane's counters, and carries out its effects with real processes
//! (`flotilla-compute`), routing snapshots (`flotilla-proxy`) and durable writes
//! (`flotilla-state`). The admin API reads and changes it through
//! [`AdminBackend`](flotilla_admin::AdminBackend).
//!
//! Every decision lives in `flotilla-control`; everything here only carries out. The rooms:
//! `run` (start, the control loop, shutdown), `executor` (effects → I/O), `sampler` (counters
//! and `/proc` → samples), `data_plane` and `listeners` (the proxy's objects), `reload`,
//! `persist` (the state store), `admin_adapter` (the admin API), `aws_adapter` (the AWS API:
//! its overlay merged with the file and applied like a reload), `prometheus`, `start` (fresh
//! or as a hot upgrade's successor), `upgrade` (hot upgrade), `systemd` (readiness).
#![warn(missing_docs)]
// `deny`, not `forbid`: `upgrade/fds.rs` alone may turn a received descriptor into an
// `OwnedFd` (see there).
#![deny(unsafe_code)]

mod admin_adapter;
mod aws_adapter;
mod clock;
mod data_plane;
mod edge;
mod error;
mod executor;
mod launch;
mod listeners;
mod node;
mod persist;
mod probe;
mod prometheus;
mod protocols;
mod reload;
mod run;
mod sampler;
mod shared;
mod start;
mod systemd;
mod upgrade;

pub use error::RuntimeError;
pub use node::{run_node, NodeError, NodeOptions, Roles};
pub use run::{run, RunOptions};
pub use upgrade::{Successor, UPGRADE_ENV};
