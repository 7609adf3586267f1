//! Target groups as the data plane sees them: immutable membership snapshots swapped in by the
//! control plane ([`snapshot`]), read without locks on every request to pick a target
//! ([`pick`]); each target's counters, ejection and connections live in its [`Backend`].

mod backend;
mod pick;
mod snapshot;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub(crate) use backend::Backend;
pub use backend::BackendStats;

use crate::http2::upstream::ProtocolVersion;
use crate::lb::balance::TargetGroupSettings;
use crate::lb::hold::{DemandHook, Hold, HoldConfig};
use snapshot::{Snapshot, Writer};

/// What the control plane says about a target, reduced to what routing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteState {
    /// Registered, health checks not yet conclusive: only used when failing open.
    Initial,
    /// Passing health checks: gets new requests.
    Healthy,
    /// Failing health checks: only used when failing open.
    Unhealthy,
    /// Deregistering: never gets new requests; requests already on it finish.
    Draining,
}

/// One registered target in a membership update pushed by the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUpdate {
    /// Where the target listens; also its identity across updates.
    pub addr: SocketAddr,
    /// The instance behind the target, if it belongs to an auto scaling group.
    pub instance_id: Option<String>,
    /// The availability zone of the target, if known.
    pub zone: Option<String>,
    /// Its routing state.
    pub state: RouteState,
}

/// One target group as the data plane sees it: its backends and which of them may get new
/// requests.
///
/// Shared between every listener that forwards to it; the control plane replaces its snapshot
/// with [`TargetGroup::update`] while requests keep flowing.
pub struct TargetGroup {
    name: String,
    settings: TargetGroupSettings,
    snapshot: ArcSwap<Snapshot>,
    /// Round-robin cursor; lives in the group so that updates do not restart the rotation.
    next: AtomicUsize,
    /// Serialises writers only (updates are rare); readers never take it. Holds the zones
    /// under a zonal shift and the cross-zone setting, which every snapshot is built with.
    update_lock: Mutex<Writer>,
    /// HTTP version spoken to the targets (AWS `ProtocolVersion`).
    protocol_version: ProtocolVersion,
    /// Where requests wait while the group has no routable target (scale from zero).
    hold: Hold,
}

impl fmt::Debug for TargetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetGroup")
            .field("name", &self.name)
            .field("members", &self.snapshot.load().members)
            .finish()
    }
}

impl TargetGroup {
    /// An empty group (requests forwarded to it are answered 503 until targets are registered)
    /// with the AWS default settings: round robin, no slow start, no stickiness.
    pub fn new(name: impl Into<String>) -> Arc<TargetGroup> {
        TargetGroup::with_settings(name, TargetGroupSettings::default())
    }

    /// An empty group whose targets are spoken to in `version` (HTTP/2 for gRPC services),
    /// otherwise with the default settings.
    pub fn with_protocol_version(
        name: impl Into<String>,
        version: ProtocolVersion,
    ) -> Arc<TargetGroup> {
        TargetGroup::with_settings(
            name,
            TargetGroupSettings {
                protocol_version: version,
                ..TargetGroupSettings::default()
            },
        )
    }

    /// An empty group that balances according to `settings` (algorithm, slow start,
    /// stickiness, protocol version), usually [`TargetGroupSettings::from_config`].
    pub fn with_settings(
        name: impl Into<String>,
        settings: TargetGroupSettings,
    ) -> Arc<TargetGroup> {
        let version = settings.protocol_version;
        let writer = Writer {
            shifted: Vec::new(),
            cross_zone: settings.cross_zone,
        };
        Arc::new(TargetGroup {
            name: name.into(),
            settings,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            next: AtomicUsize::new(0),
            update_lock: Mutex::new(writer),
            protocol_version: version,
            hold: Hold::default(),
        })
    }

    /// The HTTP version spoken to this group's targets.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.protocol_version
    }

    /// How long connecting to one of its targets may take.
    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.settings.connect_timeout
    }

    /// How long an idempotent request may wait for its response head before it is tried on
    /// another target; `None`: no such deadline.
    pub(crate) fn per_try_timeout(&self) -> Option<std::time::Duration> {
        self.settings.per_try_timeout
    }

    /// The group's configured name, for logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Scale from zero: from now on a request that finds no routable target waits (bounded
    /// by `config`) for one instead of getting 503, and `on_demand` tells the control plane
    /// that capacity is wanted.
    pub fn enable_hold(&self, config: HoldConfig, on_demand: DemandHook) {
        self.hold.enable(config, on_demand);
    }

    /// Requests waiting for a routable target right now (scale from zero).
    pub fn held_requests(&self) -> usize {
        self.hold.waiting()
    }

    /// In-flight request count of a backend (draining completes when it reaches 0); `None` if
    /// the address is not registered.
    pub fn in_flight(&self, addr: SocketAddr) -> Option<usize> {
        self.snapshot
            .load()
            .members
            .iter()
            .find(|m| m.backend.addr == addr)
            .map(|m| m.backend.in_flight())
    }

    /// Idle keep-alive connections pooled for a backend now (diagnostics, tests); `None` if
    /// the address is not registered.
    pub fn pooled(&self, addr: SocketAddr) -> Option<usize> {
        self.snapshot
            .load()
            .members
            .iter()
            .find(|m| m.backend.addr == addr)
            .map(|m| m.backend.pool.h1.idle_len())
    }

    /// Counters of every registered backend, in registration order.
    pub fn stats(&self) -> Vec<BackendStats> {
        self.snapshot
            .load()
            .members
            .iter()
            .map(|m| m.backend.stats())
            .collect()
    }

    /// Whether `backend` is still registered (draining included). A TCP flow to a backend that
    /// is no longer registered is closed: its deregistration delay is over.
    pub(crate) fn is_registered(&self, backend: &Arc<Backend>) -> bool {
        self.snapshot
            .load()
            .members
            .iter()
            .any(|m| Arc::ptr_eq(&m.backend, backend))
    }
}
