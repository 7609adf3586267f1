//! What a client connection's engine (HTTP/1 or HTTP/2) is given by the listener that accepted
//! it: addresses, settings, counters, the listener's shutdown, and the routing it reaches
//! through the [`Routing`] trait — so the engines know nothing of the listener itself.
//!
//! Everything the listener's connections share is one [`ListenerCtx`], made once per
//! listener; a connection adds only its client's address ([`ConnCtx`]). An idle connection's
//! memory is what decides how many clients one process holds (`bench/idle-memory.sh`): the
//! settings copied into every connection were ~250 bytes of it.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use http::HeaderValue;

use crate::headers::Forwarded;
use crate::lb::Routing;
use crate::limits::Limits;
use crate::net::drain::Drain;
use crate::{ListenerConfig, ListenerStats};

/// What every connection of one listener shares.
pub(crate) struct ListenerCtx {
    /// The listener's address, for the access log.
    pub(crate) local: SocketAddr,
    /// Where requests go: the listener's current rules.
    pub(crate) routing: Arc<dyn Routing>,
    pub(crate) config: ListenerConfig,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<ListenerStats>,
    /// The listener's shutdown, which every connection watches.
    pub(crate) drain: Arc<Drain>,
    /// The connection is TLS (it ends with close_notify).
    pub(crate) tls: bool,
    /// `X-Forwarded-Port`: the listener's port.
    pub(crate) port: HeaderValue,
    /// `X-Forwarded-Proto`: `http` or `https`.
    pub(crate) proto: HeaderValue,
}

/// One client connection's context: its client and its listener's [`ListenerCtx`] (reached
/// through `Deref`). While it lives, the connection counts as open for the listener's stats
/// and as live for its shutdown.
pub(crate) struct ConnCtx {
    /// The client's address: the access log, `X-Forwarded-For` and `source-ip` conditions
    /// (the TCP peer, never X-Forwarded-For).
    pub(crate) peer: SocketAddr,
    listener: Arc<ListenerCtx>,
}

impl ConnCtx {
    /// A new connection from `peer`, counted as open and live until the context is dropped.
    pub(crate) fn new(peer: SocketAddr, listener: Arc<ListenerCtx>) -> ConnCtx {
        listener.stats.connection_opened();
        listener.drain.enter();
        ConnCtx { peer, listener }
    }

    /// The `X-Forwarded-*` values of this connection's requests.
    pub(crate) fn forwarded(&self) -> Forwarded<'_> {
        Forwarded {
            client: self.peer.ip(),
            port: &self.listener.port,
            proto: &self.listener.proto,
        }
    }

    /// A plain-HTTP client connection from 192.0.2.1 routed by `router`, with default
    /// settings (unit tests and fuzzing).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn for_tests(router: crate::Router) -> Arc<ConnCtx> {
        let listener = Arc::new(ListenerCtx {
            local: ([192, 0, 2, 2], 80).into(),
            routing: Arc::new(arc_swap::ArcSwap::from_pointee(router)),
            config: ListenerConfig::default(),
            limits: Limits::default(),
            stats: Arc::new(ListenerStats::default()),
            drain: Arc::new(Drain::default()),
            tls: false,
            port: HeaderValue::from_static("80"),
            proto: HeaderValue::from_static("http"),
        });
        Arc::new(ConnCtx::new(([192, 0, 2, 1], 40000).into(), listener))
    }
}

impl Deref for ConnCtx {
    type Target = ListenerCtx;

    fn deref(&self) -> &ListenerCtx {
        &self.listener
    }
}

impl Drop for ConnCtx {
    fn drop(&mut self) {
        self.listener.stats.connection_closed();
        self.listener.drain.leave();
    }
}
