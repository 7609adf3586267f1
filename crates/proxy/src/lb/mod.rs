//! Load balancing: where a request goes and which target serves it. The listener's rules
//! ([`router`], compiled by [`rules`]), target groups and their snapshots ([`target_group`]),
//! the algorithms, slow start and stickiness ([`balance`]), passive health ([`outlier`]), the
//! scale-from-zero waiting room ([`hold`]), the connections kept per target ([`pool`]), and
//! the one forwarding path every protocol takes to a target ([`forwarding`]).

pub(crate) mod balance;
pub(crate) mod forwarding;
pub(crate) mod hold;
pub(crate) mod outlier;
pub(crate) mod pool;
pub(crate) mod router;
pub mod rules;
pub(crate) mod target_group;

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Response;

use crate::body::ProxyBody;
use crate::request::Req;
use router::{Decision, Router};
use target_group::TargetGroup;

/// Where a request goes: to a target group, or answered by the load balancer itself.
pub(crate) enum Routed {
    /// Forward to this group (through [`forwarding::Forwarding`]).
    Forward(Arc<TargetGroup>),
    /// A redirect, a fixed response or a 503 of a forward without weight (boxed: rarer
    /// than a forward, and much larger).
    Answer(Box<Response<ProxyBody>>),
}

/// How the HTTP engines reach the listener's rules: one call per request, whatever the
/// protocol, so the engines do not depend on the listener or on how its rules are stored.
pub(crate) trait Routing: Send + Sync {
    /// The decision for `req` from the client at `peer` (for `source-ip` conditions).
    fn route(&self, req: Req<'_>, peer: IpAddr) -> Routed;
}

/// A listener's rules, swapped whole on reload: each request reads the current table.
impl Routing for ArcSwap<Router> {
    fn route(&self, req: Req<'_>, peer: IpAddr) -> Routed {
        let router = self.load();
        match router.route_view(&req, peer) {
            Decision::Forward(group) => Routed::Forward(Arc::clone(group)),
            other => Routed::Answer(Box::new(other.respond())),
        }
    }
}
