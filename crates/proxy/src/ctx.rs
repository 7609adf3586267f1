//! What a client connection's engine (HTTP/1 or HTTP/2) is given by the listener that accepted
//! it: addresses, settings, counters, the listener's shutdown, and the routing it reaches
//! through the [`Routing`] trait — so the engines know nothing of the listener itself.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::headers::Forwarded;
use crate::lb::Routing;
use crate::limits::Limits;
use crate::net::drain::Drain;
use crate::{ListenerConfig, ListenerStats};

/// Everything a client connection needs, shared by all of its requests.
pub(crate) struct ConnCtx {
    /// The client's address: the access log, and `source-ip` conditions (the TCP peer,
    /// never X-Forwarded-For).
    pub(crate) peer: SocketAddr,
    /// The listener's address, for the access log.
    pub(crate) local: SocketAddr,
    /// Where requests go: the listener's current rules.
    pub(crate) routing: Arc<dyn Routing>,
    pub(crate) config: ListenerConfig,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<ListenerStats>,
    pub(crate) fwd: Forwarded,
    /// The listener's shutdown, which every connection watches.
    pub(crate) drain: Arc<Drain>,
    /// The connection is TLS (it ends with close_notify).
    pub(crate) tls: bool,
}

impl ConnCtx {
    /// A plain-HTTP client connection from 192.0.2.1 routed by `router`, with default
    /// settings (unit tests and fuzzing).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn for_tests(router: crate::Router) -> Arc<ConnCtx> {
        Arc::new(ConnCtx {
            peer: ([192, 0, 2, 1], 40000).into(),
            local: ([192, 0, 2, 2], 80).into(),
            routing: Arc::new(arc_swap::ArcSwap::from_pointee(router)),
            config: ListenerConfig::default(),
            limits: Limits::default(),
            stats: Arc::new(ListenerStats::default()),
            fwd: Forwarded {
                client_ip: http::HeaderValue::from_static("192.0.2.1"),
                port: http::HeaderValue::from_static("80"),
                proto: http::HeaderValue::from_static("http"),
            },
            drain: Arc::new(Drain::default()),
            tls: false,
        })
    }
}
