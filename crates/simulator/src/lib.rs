//! `flotilla simulate`: the real control plane ([`Cluster`](flotilla_control::Cluster)) in
//! virtual time against simulated instances and traffic.
//!
//! Nothing here decides anything about scaling: the world (boot times, crashes, health checks,
//! load balancing, queueing latency, the scenario's events) is simulated, and every decision —
//! policies, warm-up, cooldowns, zone balancing, health replacement, purchase options,
//! predictive scaling, Spot interruptions — is the same `Cluster` that `flotilla up` runs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod charts;
mod latency;
mod summary;
mod traffic;
mod world;

pub use charts::write_charts;
pub use summary::{csv, Second, Summary};
pub use world::{simulate, simulate_fed, simulate_recorded, Feed, SimError, Tap};
