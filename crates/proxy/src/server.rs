//! The listener: accepts client connections, serves HTTP/1.1 on them with keep-alive, routes
//! each request, and shuts down gracefully.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access_log;
use crate::body::ProxyBody;
use crate::forward::forward;
use crate::headers::Forwarded;
use crate::{Decision, ListenerConfig, ListenerStats, ProxyError, Router};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Everything a client connection needs, shared by all of its requests.
struct ConnCtx {
    /// The client's address: the access log, and `source-ip` conditions (the TCP peer,
    /// never X-Forwarded-For).
    peer: std::net::SocketAddr,
    /// The listener's address, for the access log.
    local: std::net::SocketAddr,
    router: Arc<ArcSwap<Router>>,
    config: ListenerConfig,
    stats: Arc<ListenerStats>,
    fwd: Forwarded,
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
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProxyError> {
    let local = listener.local_addr().map_err(ProxyError::Listener)?;
    let port = HeaderValue::from(local.port());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.idle_timeout);
    let graceful = GracefulShutdown::new();
    tracing::info!(addr = %local, "listener started");

    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
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
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on client connection");
        }
        stats.connection_opened();
        let guard = ConnectionGuard(Arc::clone(&stats));
        let ctx = Arc::new(ConnCtx {
            peer,
            local,
            router: Arc::clone(&router),
            config,
            stats: Arc::clone(&stats),
            fwd: Forwarded {
                // An IP address in text form is always a valid header value.
                client_ip: HeaderValue::from_str(&peer.ip().to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
                port: port.clone(),
            },
        });
        let service = service_fn(move |req| {
            let ctx = Arc::clone(&ctx);
            async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = conn.await {
                tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(addr = %local, "listener stopping; waiting for in-flight requests");
    graceful.shutdown().await;
    Ok(())
}

/// Route one request, produce its response, and count it.
async fn handle(mut req: Request<Incoming>, ctx: &ConnCtx) -> Response<ProxyBody> {
    let log = ctx.stats.access_log();
    let pending = log.map(|_| access_log::Pending::start(&mut req, ctx.peer, ctx.local));
    let resp = route(req, ctx).await;
    let generated = matches!(resp.body(), ProxyBody::Full(_));
    ctx.stats.record(resp.status(), generated);
    if let (Some(log), Some(p)) = (log, pending) {
        log.log(p.finish(&resp));
    }
    resp
}

async fn route(req: Request<Incoming>, ctx: &ConnCtx) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let group = {
        let router = ctx.router.load();
        match router.route(&parts, ctx.peer.ip()) {
            Decision::Forward(group) => Arc::clone(group),
            other => return other.respond(),
        }
    };
    forward(&group, parts, body, &ctx.fwd, &ctx.config).await
}
