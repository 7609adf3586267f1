//! Where Flotilla's instances run.
//!
//! The auto scaler decides *how many* instances a group needs; this crate decides *where and
//! how* they run. [`ComputeProvider`] is the seam: the embedded default,
//! [`LocalProcessProvider`], runs every instance as a local child process, and later providers
//! can run them on other hosts without the control plane noticing.
//!
//! Guarantees of the local provider, all of which exist so that an instance behaves like a
//! disposable VM that Flotilla alone controls:
//! - each instance gets a free `PORT` on its host's address (`FLOTILLA_HOST`, loopback
//!   under `flotilla up`) and the `FLOTILLA_*` identity variables;
//! - its stdout and stderr go to `<log_dir>/<instance_id>.log`;
//! - it runs in its own process group, so a terminal Ctrl-C reaches Flotilla only (which drains
//!   before stopping) and stop/kill reach the instance's whole process tree;
//! - it never outlives Flotilla, not even when Flotilla is SIGKILLed (parent-death signal) —
//!   yet with an instance [`keeper`] it survives a hot upgrade of Flotilla, which hands it to
//!   the new process; and a cluster-mode agent may ask otherwise ([`LocalOptions`]), to adopt
//!   its instances after its own restart.
//!
//! [`ContainerProvider`] runs instances from OCI images through Podman or Docker with the same
//! guarantees (see its module), and [`Compute`] puts both behind one provider.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod compute;
mod container;
mod error;
pub mod keeper;
pub(crate) mod local;
mod provider;
mod signal;
mod types;

pub use compute::{Compute, Handed};
pub use container::{ContainerProvider, ENGINE_ENV, SETTLE};
pub use error::ComputeError;
pub use local::procfs::process_start_time;
pub use local::{HandedProcess, LocalOptions, LocalProcessProvider, SpawnSpec};
pub use provider::ComputeProvider;
pub use signal::Signal;
pub use types::{
    ComputeEvent, CpuLimit, InstanceLimits, LaunchSpec, LaunchedInstance, MemoryLimit,
};
