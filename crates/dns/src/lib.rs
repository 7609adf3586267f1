//! Flotilla's authoritative DNS: hosted zones with Route 53's routing policies (simple,
//! weighted, failover, multivalue, latency, geoproximity), health checks, and alias records
//! that answer with a load balancer's or distribution's node addresses.
//!
//! The decisions are pure and tested without sockets or clocks: [`answer`] picks the records
//! of a question, [`policy`] applies a routing policy, [`health`] is the health checks' sans-IO
//! state machine. The wire format is hickory's ([`server`]; UDP queries are read and answered
//! in batches by [`udp`], simple fixed answers kept encoded by [`fast`]); [`service`] runs it all under `flotilla up`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod alias;
pub mod answer;
pub mod changes;
pub mod fast;
#[cfg(fuzzing)]
pub mod fuzz;
pub mod health;
pub mod location;
pub mod policy;
pub mod probe;
pub mod server;
pub mod service;
pub mod udp;
pub mod wire;
pub mod zones;

pub use alias::{AliasAddress, AliasSource, AliasTable};
pub use server::BoundDns;
pub use service::{ChangeError, DnsService};
