//! The listener: accepts client connections (plain or TLS), serves HTTP/1.1 and HTTP/2 on them
//! (h2c with prior knowledge on plain listeners, ALPN over TLS), routes each request, and shuts
//! down gracefully.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::Either;
use http::header::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::ctx::{ConnCtx, ListenerCtx};
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
    let tls = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let drain = Arc::new(Drain::default());
    // Shared by every connection: a connection adds only its client's address.
    let shared = Arc::new(ListenerCtx {
        local,
        routing: router as Arc<dyn Routing>,
        config,
        limits: options.limits,
        stats,
        drain: Arc::clone(&drain),
        tls: tls.is_some(),
        port: HeaderValue::from(local.port()),
        proto: HeaderValue::from_static(if tls.is_some() { "https" } else { "http" }),
    });
    let acceptor = Acceptor::new(listener).map_err(ProxyError::Listener)?;
    tracing::info!(addr = %local, tls = tls.is_some(), "listener started");
    crate::net::pass::spawn_releaser();
    crate::http1::spare::spawn_trimmer();

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
        let ctx = Arc::new(ConnCtx::new(peer, Arc::clone(&shared)));
        let tls = tls.clone();
        let span = crate::trace::conn(peer, local, tls.is_some());
        // A plain connection's HTTP/1 state is the task itself: one allocation (tokio's,
        // rounded up to 128 bytes) instead of a small task and a boxed future. A TLS
        // connection's handshake and stream live in their own allocation.
        let task = match tls {
            None => Either::Left(h1::serve(stream, ctx, true)),
            Some(acceptor) => Either::Right(Box::pin(serve_tls(ctx, acceptor, stream))),
        };
        tokio::spawn(task.instrument(span));
    }

    drop(acceptor);
    tracing::info!(addr = %local, "listener stopping; waiting for in-flight requests");
    drain.shutdown().await;
    Ok(())
}

/// The TLS handshake (bounded by the header read timeout), then HTTP/1 with the engine of
/// [`crate::http1`], or HTTP/2 with [`crate::http2`] when ALPN chose `h2`.
async fn serve_tls(ctx: Arc<ConnCtx>, acceptor: tokio_rustls::TlsAcceptor, stream: Sock) {
    let handshake = Box::pin(acceptor.accept(stream));
    match tokio::time::timeout(ctx.limits.header_read_timeout, handshake).await {
        Ok(Ok(tls_stream)) => {
            if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                Box::pin(h2::serve(tls_stream, Vec::new(), ctx)).await;
            } else {
                Box::pin(h1::serve(tls_stream, ctx, false)).await;
            }
        }
        Ok(Err(e)) => {
            tracing::debug!(client = %ctx.peer, error = %e, "TLS handshake failed");
        }
        Err(_) => tracing::debug!(client = %ctx.peer, "TLS handshake timed out"),
    }
}
