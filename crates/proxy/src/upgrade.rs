//! WebSocket upgrades: the HTTP/1.1 `Upgrade: websocket` request is forwarded to one target on a
//! fresh connection, and once the target answers 101 the client and target connections are
//! spliced byte for byte, pinned to that target, until either side closes.
//!
//! Every other request has its `Upgrade` header stripped as hop-by-hop (see `headers.rs`); only
//! here is it deliberately passed on.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::body::{InFlight, ProxyBody, ReqBody, UpstreamBody};
use crate::errors::Generated;
use crate::headers;
use crate::server::ConnCtx;
use crate::target_group::{now_ms, TargetGroup};

/// Whether a request asks for a WebSocket upgrade (HTTP/1.1, `Upgrade: websocket` and
/// `Connection: upgrade`).
pub(crate) fn is_upgrade(parts: &Parts) -> bool {
    if parts.version != Version::HTTP_11 {
        return false;
    }
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        });
    upgrade
        && parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Forward an upgrade request and, on 101, splice the two connections in a background task
/// that keeps the target's in-flight count and the client connection busy while it runs.
pub(crate) async fn forward_upgrade(
    group: &TargetGroup,
    mut parts: Parts,
    ctx: &ConnCtx,
) -> Response<ProxyBody> {
    let Some(client_side) = parts.extensions.remove::<OnUpgrade>() else {
        return Generated::BadRequest.response();
    };
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("websocket"));
    headers::prepare_request(&mut parts.uri, &mut parts.headers, &ctx.fwd);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts.headers.insert(header::UPGRADE, upgrade);

    let Some(backend) = group.pick(None) else {
        return Generated::NoTargets.response();
    };
    let in_flight = InFlight::start(&backend);
    backend.requests_total.fetch_add(1, Ordering::Relaxed);
    let target_error = || {
        backend.errors_total.fetch_add(1, Ordering::Relaxed);
    };
    let idle = ctx.config.idle_timeout;
    let mut sender = match connect(backend.addr, ctx.config.connect_timeout).await {
        Ok(s) => s,
        Err(kind) => {
            tracing::debug!(target = %backend.addr, "upgrade: connect failed");
            backend.eject();
            target_error();
            return kind.response();
        }
    };
    let req = Request::from_parts(parts, ReqBody::empty());
    let mut resp = match tokio::time::timeout(idle, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(target = %backend.addr, error = %e, "upgrade request failed");
            target_error();
            return Generated::BadGateway.response();
        }
        Err(_) => {
            target_error();
            return Generated::GatewayTimeout.response();
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The target declined the upgrade: an ordinary response.
        let (mut rparts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut rparts.headers);
        let body = UpstreamBody::new(body, in_flight, sender, idle);
        return Response::from_parts(rparts, ProxyBody::Upstream(body));
    }
    let target_side = hyper::upgrade::on(&mut resp);
    let busy = ctx.state.begin();
    ctx.state.upgrading();
    let addr = backend.addr;
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let _busy = busy;
        let (client, target) = match tokio::join!(client_side, target_side) {
            (Ok(c), Ok(t)) => (c, t),
            (c, t) => {
                tracing::debug!(target = %addr, client_ok = c.is_ok(), target_ok = t.is_ok(), "upgrade did not complete");
                return;
            }
        };
        let last = Arc::new(AtomicU64::new(now_ms()));
        let mut client = Active::new(TokioIo::new(client), &last);
        let mut target = Active::new(TokioIo::new(target), &last);
        tokio::select! {
            res = tokio::io::copy_bidirectional(&mut client, &mut target) => match res {
                Ok((up, down)) => {
                    tracing::debug!(target = %addr, up, down, "upgraded connection closed")
                }
                Err(e) => tracing::debug!(target = %addr, error = %e, "upgraded connection failed"),
            },
            () = idle_watch(&last, idle) => {
                tracing::debug!(target = %addr, "upgraded connection idle too long; closing");
            }
        }
    });
    // The 101 goes to the client with the target's handshake headers (Sec-WebSocket-Accept,
    // the chosen subprotocol), including `Connection`/`Upgrade`.
    let mut out = Response::new(ProxyBody::Full(None));
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = std::mem::take(resp.headers_mut());
    out
}

/// Resolves once nothing moved in either direction for `idle` (ALB applies its idle timeout
/// to WebSocket connections too).
async fn idle_watch(last: &AtomicU64, idle: Duration) {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        let quiet = now_ms().saturating_sub(last.load(Ordering::Relaxed));
        if quiet >= idle_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(idle_ms - quiet)).await;
    }
}

/// One side of a tunnel, recording when it last read anything.
struct Active<T> {
    inner: T,
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn new(inner: T, last: &Arc<AtomicU64>) -> Self {
        Active {
            inner,
            last: Arc::clone(last),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if res.is_ready() {
            this.last.store(now_ms(), Ordering::Relaxed);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A fresh HTTP/1.1 connection whose connection task supports upgrades.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<SendRequest<ReqBody>, Generated> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err(Generated::BadGateway),
        Err(_) => return Err(Generated::GatewayTimeout),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Generated::BadGateway)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(target = %addr, error = %e, "upgrade target connection ended with an error");
        }
    });
    Ok(sender)
}
