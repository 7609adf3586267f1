//! Flotilla's data plane: the HTTP/1.1 reverse proxy behind every Application Load Balancer
//! listener.
//!
//! The control plane decides which targets exist and how healthy they are; it pushes immutable
//! snapshots into a [`TargetGroup`] with [`TargetGroup::update`]. The request path only reads
//! those snapshots (lock-free, through `arc-swap`), routes each request by the listener's rules
//! ([`rules::compile`] builds the [`Router`]), picks a backend with the target group's
//! algorithm (round robin, least outstanding requests, weighted random; slow start; `AWSALB`
//! stickiness), and forwards the request over a pooled keep-alive connection, streaming
//! bodies both ways. Failures that happen
//! before the target produced any response are retried once on another target, so that killing
//! an instance under steady traffic costs clients nothing; everything else becomes one of the
//! load-balancer-generated status codes of AWS (502, 503, 504).
//!
//! Network load balancer listeners ([`serve_tcp`]) splice TCP connections to targets chosen by
//! flow hash, optionally announcing the client with a PROXY protocol v2 header.
//!
//! Entry points: [`serve`] runs an HTTP listener, [`serve_tcp`] a TCP one, [`probe_http`] and
//! [`probe_tcp`] perform one active health check; [`TargetGroup::stats`] and
//! [`ListenerStats::snapshot`] feed the metrics.
#![warn(missing_docs)]
// No unsafe code but two calls in `accept.rs`: the registration of a listening socket and
// the `setsockopt` that defers its accepts.
#![deny(unsafe_code)]

mod access_log;
mod body;
mod ctx;
mod errors;
#[cfg(fuzzing)]
pub mod fuzz;
mod headers;
mod http1;
mod http2;
mod l4;
mod lb;
mod limits;
mod net;
mod probe;
mod request;
mod stats;
mod trace;

pub use l4::proxy_protocol;
pub use lb::rules;
pub use net::tls;

use std::time::Duration;

pub use lb::balance::{Algorithm, Clock, TargetGroupSettings, STICKY_COOKIE};

pub use access_log::AccessLog;
pub use http1::spare::set_memory_release;
pub use http2::upstream::ProtocolVersion;
pub use l4::tcp::{serve_tcp, serve_tcp_with_stats, TcpListenerConfig};
pub use lb::hold::{DemandHook, HoldConfig};
pub use lb::router::{Decision, RouteAction, Router, WeightedGroups};
pub use lb::rules::RedirectAction;
pub use lb::target_group::{BackendStats, RouteState, TargetGroup, TargetUpdate};
pub use limits::Limits;
pub use net::listener::{serve, serve_listener, serve_with_stats, ListenerOptions};
pub use probe::{probe_http, probe_tcp, ProbeError};
pub use stats::{Histogram, HistogramSnapshot, ListenerStats, ListenerStatsSnapshot};

/// Per-listener settings that shape timeouts, mirroring the ALB attributes.
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    /// ALB `idle_timeout`: how long a client keep-alive connection may sit idle (and how long a
    /// client may take to send request headers), how long a pooled upstream connection is kept
    /// idle, and how long to wait for a target's response headers before answering 504.
    pub idle_timeout: Duration,
}

impl Default for ListenerConfig {
    /// The AWS default: 60 s idle timeout (the connect timeout is the target group's).
    fn default() -> Self {
        ListenerConfig {
            idle_timeout: Duration::from_secs(60),
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
