//! The listener: accepts client connections (plain or TLS), serves HTTP/1.1 and HTTP/2 on them
//! (h2c with prior knowledge on plain listeners, ALPN over TLS), routes each request, and shuts
//! down gracefully.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::ctx::ConnCtx;
use crate::headers::Forwarded;
use crate::lb::Routing;
use crate::limits::Limits;
use crate::net::accept::{Acceptor, Sock};
use crate::net::drain::Drain;
use crate::{http1 as h1, http2 as h2};
use crate::{ListenerConfig, ListenerStats, ProxyError, Router};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How a listener talks to clients beyond the timeouts of [`ListenerConfig`]: TLS (for `https`
/// listeners) and the request limits. Separate from `ListenerConfig` so that adding protocol
/// options does not touch every caller that only sets timeouts.
#[derive(Clone, Default)]
pub struct ListenerOptions {
    /// TLS server configuration of an `https` listener (see [`crate::net::tls::server_config`]);
    /// `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Header/body size limits and the header read timeout.
    pub limits: Limits,
}

impl std::fmt::Debug for ListenerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerOptions")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Decrements the active-connection count when a client connection task ends, however it ends.
struct ConnectionGuard(Arc<ListenerStats>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Accepts on `listener` until `shutdown` turns true (or its sender is dropped); then stops
/// accepting, lets in-flight requests finish (graceful shutdown of every connection: idle
/// keep-alive connections close at once, busy ones after their current response), and returns.
///
/// The router is read per request, so swapping it changes routing without restarting the
/// listener.
pub async fn serve(
    listener: TcpListener,
    router: Arc<ArcSwap<Router>>,
    config: ListenerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ProxyError> {
    let stats = Arc::new(ListenerStats::default());
    serve_with_stats(listener, router, config, stats, shutdown).await
}

/// [`serve`], counting requests, generated errors and connections into `stats`, which the
/// runtime keeps to publish load-balancer-scope metrics.
pub async fn serve_with_stats(
    listener: TcpListener,
    router: Arc<ArcSwap<Router>>,
    config: ListenerConfig,
    stats: Arc<ListenerStats>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ProxyError> {
    let options = ListenerOptions::default();
    serve_listener(listener, router, config, options, stats, shutdown).await
}

/// [`serve_with_stats`] with TLS and request limits: the entry point of `https` listeners and
/// of listeners with non-default limits.
pub async fn serve_listener(
    listener: TcpListener,
    router: Arc<ArcSwap<Router>>,
    config: ListenerConfig,
    options: ListenerOptions,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProxyError> {
    let local = listener.local_addr().map_err(ProxyError::Listener)?;
    let port = HeaderValue::from(local.port());
    let limits = options.limits;
    let tls = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let drain = Arc::new(Drain::default());
    let acceptor = Acceptor::new(listener).map_err(ProxyError::Listener)?;
    tracing::info!(addr = %local, tls = tls.is_some(), "listener started");
    crate::net::pass::spawn_releaser();

    loop {
        let accepted = tokio::select! {
            res = acceptor.accept() => res,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(addr = %local, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = acceptor.set_nodelay(&stream) {
            tracing::debug!(error = %e, "TCP_NODELAY on client connection");
        }
        stats.connection_opened();
        let guard = ConnectionGuard(Arc::clone(&stats));
        let fwd = Forwarded {
            client_ip: Forwarded::client_ip_value(peer.ip()),
            port: port.clone(),
            proto: HeaderValue::from_static(if tls.is_some() { "https" } else { "http" }),
        };
        let conn = Conn {
            // Shared at once: moved into an `Arc` later, it would leave its room unused in
            // the connection's task for the connection's whole life.
            ctx: Arc::new(ConnCtx {
                peer,
                local,
                routing: Arc::clone(&router) as Arc<dyn Routing>,
                config,
                limits,
                stats: Arc::clone(&stats),
                fwd,
                drain: Arc::clone(&drain),
                tls: tls.is_some(),
            }),
            _live: drain.enter(),
        };
        let tls = tls.clone();
        let span = crate::trace::conn(peer, local, tls.is_some());
        let task = async move {
            let _guard = guard;
            // Each protocol's state lives in its own allocation, so this task stays small and
            // spawning it copies little.
            match tls {
                None => Box::pin(conn.serve(stream, false)).await,
                Some(acceptor) => Box::pin(conn.serve_tls(acceptor, stream)).await,
            }
        };
        tokio::spawn(task.instrument(span));
    }

    drop(acceptor);
    tracing::info!(addr = %local, "listener stopping; waiting for in-flight requests");
    drain.shutdown().await;
    Ok(())
}

/// One accepted client connection, before its protocol is known.
struct Conn {
    /// Its shared state.
    ctx: Arc<ConnCtx>,
    /// Keeps the listener's shutdown waiting until this connection ends.
    _live: crate::net::drain::Live,
}

impl Conn {
    /// The TLS handshake (bounded by the header read timeout), then [`Conn::serve`] with the
    /// protocol ALPN chose.
    async fn serve_tls(self, acceptor: tokio_rustls::TlsAcceptor, stream: Sock) {
        let peer = self.ctx.peer;
        let handshake = Box::pin(acceptor.accept(stream));
        match tokio::time::timeout(self.ctx.limits.header_read_timeout, handshake).await {
            Ok(Ok(tls_stream)) => {
                let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                Box::pin(self.serve(tls_stream, h2)).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
            }
            Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
        }
    }

    /// Serve HTTP/1 with the engine of [`crate::http1`], or HTTP/2 with [`crate::http2`] when ALPN
    /// chose `h2` or a plain-listener client opens with the HTTP/2 preface.
    async fn serve<S>(self, stream: S, h2: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Moved, not cloned: this runs for every connection.
        let Conn { ctx, _live } = self;
        let tls = ctx.tls;
        if h2 {
            Box::pin(h2::serve(stream, Vec::new(), ctx)).await;
            return;
        }
        match h1::serve(stream, Arc::clone(&ctx), !tls).await {
            h1::Ended::Done => {}
            h1::Ended::Http2 { io, read } => Box::pin(h2::serve(io, read, ctx)).await,
        }
    }
}
