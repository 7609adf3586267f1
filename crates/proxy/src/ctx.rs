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
