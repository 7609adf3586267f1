//! The listener: accepts client connections (plain or TLS), serves HTTP/1.1 and HTTP/2 on them
//! (h2c with prior knowledge on plain listeners, ALPN over TLS), routes each request, and shuts
//! down gracefully.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::accept::{Acceptor, Sock};
use crate::access_log;
use crate::body::{BodyLimit, BoxError, ProxyBody, ReqBody, TargetBodyError};
use crate::drain::Drain;
use crate::errors::{self, Generated};
use crate::forward::forward;
use crate::headers::Forwarded;
use crate::limits::Limits;
use crate::{h1, h2};
use crate::{Decision, ListenerConfig, ListenerStats, ProxyError, Router};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How a listener talks to clients beyond the timeouts of [`ListenerConfig`]: TLS (for `https`
/// listeners) and the request limits. Separate from `ListenerConfig` so that adding protocol
/// options does not touch every caller that only sets timeouts.
#[derive(Clone, Default)]
pub struct ListenerOptions {
    /// TLS server configuration of an `https` listener (see [`crate::tls::server_config`]);
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

/// Everything a client connection needs, shared by all of its requests.
pub(crate) struct ConnCtx {
    /// The client's address: the access log, and `source-ip` conditions (the TCP peer,
    /// never X-Forwarded-For).
    pub(crate) peer: SocketAddr,
    /// The listener's address, for the access log.
    pub(crate) local: SocketAddr,
    pub(crate) router: Arc<ArcSwap<Router>>,
    pub(crate) config: ListenerConfig,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<ListenerStats>,
    pub(crate) fwd: Forwarded,
    /// The listener's shutdown, which every connection watches.
    pub(crate) drain: Arc<Drain>,
    /// The connection is TLS (it ends with close_notify).
    pub(crate) tls: bool,
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
    crate::pass::spawn_releaser();

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
            ctx: ConnCtx {
                peer,
                local,
                router: Arc::clone(&router),
                config,
                limits,
                stats: Arc::clone(&stats),
                fwd,
                drain: Arc::clone(&drain),
                tls: tls.is_some(),
            },
            _live: drain.enter(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _guard = guard;
            // Each protocol's state lives in its own allocation, so this task stays small and
            // spawning it copies little.
            match tls {
                None => Box::pin(conn.serve(stream, false)).await,
                Some(acceptor) => Box::pin(conn.serve_tls(acceptor, stream)).await,
            }
        });
    }

    drop(acceptor);
    tracing::info!(addr = %local, "listener stopping; waiting for in-flight requests");
    drain.shutdown().await;
    Ok(())
}

/// One accepted client connection, before its protocol is known.
struct Conn {
    /// Its shared state.
    ctx: ConnCtx,
    /// Keeps the listener's shutdown waiting until this connection ends.
    _live: crate::drain::Live,
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

    /// Serve HTTP/1 with the engine of [`crate::h1`], or HTTP/2 with [`crate::h2`] when ALPN
    /// chose `h2` or a plain-listener client opens with the HTTP/2 preface.
    async fn serve<S>(self, stream: S, h2: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Moved, not cloned: this runs for every connection.
        let Conn { ctx, _live } = self;
        let tls = ctx.tls;
        let ctx = Arc::new(ctx);
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

/// Route an HTTP/2 client's request and produce its response, with the first frame of its body
/// (`None`: it has none): forwarded, or answered by the load balancer (redirect, fixed
/// response, 4xx/5xx). A target's answer whose body fails before its first frame — before
/// anything of it reached the client — becomes a 502 (504 if the target went silent). Counted
/// and access-logged here. One async level over [`forward`] on purpose: each level keeps its
/// own copy of the request's parts in the stream's future, which is moved into place for
/// every request.
pub(crate) async fn handle(
    mut parts: http::request::Parts,
    body: ReqBody,
    ctx: &ConnCtx,
) -> (Response<ProxyBody>, Option<Result<Frame<Bytes>, BoxError>>) {
    let log = ctx.stats.access_log();
    let pending = log.map(|_| access_log::Pending::start(&mut parts, ctx.peer, ctx.local));
    let mut resp = match route(parts, body, ctx) {
        Routed::Answer(resp) => resp,
        Routed::Forward {
            group,
            parts,
            body,
            exceeded,
        } => {
            let resp = forward(&group, parts, body, &ctx.fwd, &ctx.config).await;
            if exceeded.is_some_and(|e| e.load(Ordering::Relaxed)) {
                payload_too_large()
            } else {
                resp
            }
        }
    };
    let mut first = first_frame(resp.body_mut()).await;
    if let Some(Err(e)) = &first {
        let timeout = e
            .downcast_ref::<TargetBodyError>()
            .is_some_and(|e| *e == TargetBodyError::Timeout);
        let generated = if timeout {
            Generated::GatewayTimeout
        } else {
            Generated::BadGateway
        };
        resp = generated.response();
        first = first_frame(resp.body_mut()).await;
    }
    let generated = matches!(resp.body(), ProxyBody::Full(_));
    ctx.stats.record(resp.status(), generated);
    if let (Some(log), Some(p)) = (log, pending) {
        log.log(p.finish(&resp));
    }
    (resp, first)
}

/// The first frame of a response body, so that the head and it go out together.
async fn first_frame(body: &mut ProxyBody) -> Option<Result<Frame<Bytes>, BoxError>> {
    if body.is_end_stream() {
        return None;
    }
    body.frame().await
}

/// Where a request goes, decided without waiting.
enum Routed {
    /// The load balancer answers itself.
    Answer(Response<ProxyBody>),
    /// To a target group, with the body limited; `exceeded` is raised if the limit was hit.
    Forward {
        group: Arc<crate::TargetGroup>,
        parts: http::request::Parts,
        body: ReqBody,
        exceeded: Option<Arc<AtomicBool>>,
    },
}

fn route(parts: http::request::Parts, body: ReqBody, ctx: &ConnCtx) -> Routed {
    if let Some(max) = ctx.limits.max_request_body {
        if let Some(resp) = over_body_limit(&body, max) {
            return Routed::Answer(resp);
        }
    }
    let group = {
        let router = ctx.router.load();
        match router.route(&parts, ctx.peer.ip()) {
            Decision::Forward(group) => Arc::clone(group),
            other => return Routed::Answer(other.respond()),
        }
    };
    let mut body = body;
    let mut exceeded = None;
    if let Some(left) = ctx.limits.max_request_body {
        let flag = Arc::new(AtomicBool::new(false));
        body = body.with_limit(BodyLimit {
            left,
            exceeded: Arc::clone(&flag),
        });
        exceeded = Some(flag);
    }
    Routed::Forward {
        group,
        parts,
        body,
        exceeded,
    }
}

/// 413 for a request whose declared length exceeds the body limit (checked before anything is
/// forwarded). The connection is closed after the answer: the unread body must not be taken
/// for the next request.
fn over_body_limit(body: &ReqBody, max: u64) -> Option<Response<ProxyBody>> {
    let declared = http_body::Body::size_hint(body).lower();
    if declared <= max {
        return None;
    }
    Some(payload_too_large())
}

/// The 413 answer (only HTTP/2 clients come here: the HTTP/1 engine answers its own).
fn payload_too_large() -> Response<ProxyBody> {
    errors::text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
        Bytes::from_static(b"413 Payload Too Large: the request body exceeds the limit\n"),
    )
}
