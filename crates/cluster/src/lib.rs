//! Cluster mode's foundation: Flotilla nodes on several hosts coordinate through etcd, and this
//! crate is everything they need from it that does not depend on the control core.
//!
//! - [`client::Etcd`]: a connection with the settings etcd's pitfalls demand (HTTP/2 pings no
//!   more often than every 5 s) and unary calls that are bounded and retried with jittered
//!   backoff ([`retry`]), ending in a clear [`ClusterError::Unreachable`], never a hang.
//! - [`store::Store`]: typed records ([`records`]) at the key layout ([`keys`]) under
//!   `/flotilla/v1/`.
//! - [`lease::LeaseKeeper`]: a lease kept alive across member deaths, re-granted when lost,
//!   with the age of its last confirmation so holders can fence themselves.
//! - [`election`]: campaign, follow the leader, and [`fence::FencedWrite`]s that a deposed
//!   leader cannot land.
//! - [`watcher::PrefixWatcher`]: list-then-watch with re-list on compaction or a broken stream,
//!   handing out consistent snapshots and diffs.
//!
//! See docs/cluster-mode.md for the design and the measured behaviour.

#![warn(missing_docs)]

pub mod client;
pub mod election;
pub mod error;
pub mod fence;
pub mod keys;
pub mod lease;
pub mod records;
pub mod retry;
pub mod store;
pub mod watcher;

pub use client::{Etcd, EtcdConfig};
pub use election::{Candidate, LeaderInfo, LeaderWatch, Leadership, ObservedLeader};
pub use error::{ClusterError, Result};
pub use fence::{Fence, FencedWrite};
pub use keys::{Key, Keys};
pub use lease::{LeaseKeeper, LeaseOptions, LeaseSnapshot, LeaseStatus};
pub use store::{Store, Versioned};
pub use watcher::{Change, PrefixWatcher, Snapshot, Update};
