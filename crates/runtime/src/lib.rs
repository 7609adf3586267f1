//! The real runtime: feeds the sans-IO control plane (`flotilla-control`) wall-clock time,
//! real processes (`flotilla-compute`) and real health probes, and turns its decisions into
//! data-plane snapshots (`flotilla-proxy`). The admin API reads and changes it through
//! [`AdminBackend`](flotilla_admin::AdminBackend).
//!
//! Everything that decides lives in `flotilla-control`; everything here only carries out.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod clock;
mod control;
mod error;
mod launch;
mod lb_metrics;
mod lifecycle;
mod persist;
mod probe;
mod prometheus;
mod protocols;
mod reload;
mod run;
mod scale_from_zero;
mod scaling;
mod shift;
mod weights;

pub use error::RuntimeError;
pub use run::{run, RunOptions};
