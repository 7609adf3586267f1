//! Flotilla's edge cache: CloudFront-style distributions in front of load balancers, target
//! groups or origin groups.
//!
//! The decisions are pure and tested without sockets: [`cache_control`] and [`freshness`]
//! (RFC 9111 storability, lifetimes with the behaviour's TTL bounds, ages), [`key`] (cache
//! keys and what reaches the origin), [`behavior`] (path patterns), [`range`],
//! [`invalidate`], [`compress`]. [`store`] keeps objects in a byte-capped quick_cache;
//! [`dist`] is one distribution's request path (hits, revalidation, stale serving, request
//! collapsing in [`fetch`]); [`server`] and [`service`] run it all under `flotilla up`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod behavior;
pub mod body;
pub mod cache_control;
pub mod compress;
pub mod dist;
pub mod fetch;
pub mod freshness;
pub mod invalidate;
pub mod key;
pub mod origin;
pub mod range;
pub mod sendfile;
pub mod serve;
pub mod server;
pub mod service;
pub mod stats;
pub mod store;

pub use dist::Edge;
pub use origin::{AddressesOnly, OriginResolver};
pub use service::{BoundEdges, EdgeService};
pub use stats::StatsSnapshot;
