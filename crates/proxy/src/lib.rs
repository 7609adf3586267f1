//! Flotilla's data plane: the HTTP/1.1 reverse proxy behind every Application Load Balancer
//! listener.
//!
//! The control plane decides which targets exist and how healthy they are; it pushes immutable
//! snapshots into a [`TargetGroup`] with [`TargetGroup::update`]. The request path only reads
//! those snapshots (lock-free, through `arc-swap`), picks a backend round robin, and forwards the
//! request over a pooled keep-alive connection, streaming bodies both ways. Failures that happen
//! before the target produced any response are retried once on another target, so that killing
//! an instance under steady traffic costs clients nothing; everything else becomes one of the
//! load-balancer-generated status codes of AWS (502, 503, 504).
//!
//! Entry points: [`serve`] runs a listener, [`probe_http`] performs one active health check.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod errors;
mod forward;
mod h2_upstream;
mod headers;
mod limits;
mod pool;
mod probe;
mod server;
mod smuggling;
mod stats;
mod target_group;
pub mod tls;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

pub use h2_upstream::ProtocolVersion;
pub use limits::Limits;
pub use probe::{probe_http, ProbeError};
pub use server::{serve, serve_listener, serve_with_stats, ListenerOptions};
pub use stats::ListenerStats;
pub use target_group::{BackendStats, RouteState, TargetGroup, TargetUpdate};

/// What a listener does with a request.
///
/// Only the default action exists for now; listener rules (ordered by priority, first match
/// wins) will be added beside it, and [`Router::route`] is the single place that will evaluate
/// them, so callers of `route` do not change when rules arrive.
#[derive(Debug, Clone)]
pub struct Router {
    /// Applied to every request that matches no rule (today: every request).
    pub default_action: RouteAction,
}

impl Router {
    /// A router that applies `default_action` to every request.
    pub fn new(default_action: RouteAction) -> Self {
        Router { default_action }
    }

    /// The action for a request. Takes the request head so that rule conditions (host, path,
    /// method, headers, query, source IP) can be evaluated here later without changing callers.
    pub fn route(&self, _req: &http::request::Parts) -> &RouteAction {
        &self.default_action
    }
}

/// One listener action, as in ELBv2 (`forward`, `fixed-response`).
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to the routable targets of a target group (round robin).
    Forward(Arc<TargetGroup>),
    /// Answer directly from the load balancer without involving any target.
    FixedResponse {
        /// HTTP status code; an invalid code is answered as 500.
        status: u16,
        /// `Content-Type` of the answer.
        content_type: String,
        /// Body of the answer.
        body: String,
    },
}

/// Per-listener settings that shape timeouts, mirroring the ALB attributes.
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    /// ALB `idle_timeout`: how long a client keep-alive connection may sit idle (and how long a
    /// client may take to send request headers), how long a pooled upstream connection is kept
    /// idle, and how long to wait for a target's response headers before answering 504.
    pub idle_timeout: Duration,
    /// How long connecting to a target may take before the request is answered 504
    /// (AWS: 10 s).
    pub connect_timeout: Duration,
}

impl Default for ListenerConfig {
    /// The AWS defaults: 60 s idle timeout, 10 s target connect timeout.
    fn default() -> Self {
        ListenerConfig {
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why [`serve`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be inspected (its local address is needed for
    /// `X-Forwarded-Port`).
    #[error("listener socket: {0}")]
    Listener(#[source] std::io::Error),
}
