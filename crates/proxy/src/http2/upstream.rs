//! Forwarding to targets over HTTP/2 (h2c with prior knowledge), for target groups whose
//! `protocol_version` is `http2` or `grpc`.
//!
//! gRPC needs HTTP/2 end to end: its status travels in response trailers, and requests carry
//! `te: trailers`. Each backend keeps one multiplexed connection (in its pool) that every
//! request shares; a closed one is replaced on the next request. Bodies and trailers stream
//! through in both directions, frame by frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, Uri, Version};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::{ProxyBody, ReqBody, UpstreamBody};
use crate::errors::Generated;
use crate::headers::{self, Forwarded};
use crate::lb::forwarding::{Failure, Forwarding};
use crate::lb::target_group::{Backend, TargetGroup};
use crate::ListenerConfig;

/// The HTTP version a target group speaks to its targets (AWS target group `ProtocolVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolVersion {
    /// HTTP/1.1 to the targets whatever the client spoke (AWS default).
    #[default]
    Http1,
    /// HTTP/2 to the targets.
    Http2,
    /// gRPC: HTTP/2 to the targets, trailers passed through.
    Grpc,
}

/// Forward one request over the shared HTTP/2 connection of a target chosen by the
/// forwarding path (sticky, held, retried on another target when its connection cannot be
/// made).
pub(crate) async fn forward(
    group: &TargetGroup,
    mut parts: Parts,
    body: ReqBody,
    fwd: &Forwarded<'_>,
    cfg: &ListenerConfig,
) -> Response<ProxyBody> {
    let sticky = Forwarding::sticky(group, &parts);
    // `te: trailers` is the one TE value HTTP/2 allows, and gRPC servers require it.
    let trailers = parts
        .headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    headers::prepare_request(&mut parts.uri, &mut parts.headers, fwd);
    if trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let Some(mut path) = Forwarding::request(group, sticky).await else {
        return Generated::NoTargets.response();
    };
    let (mut sender, in_flight) = loop {
        let in_flight = path.begin();
        match sender(path.target(), path.connect_timeout(), cfg).await {
            Ok(s) => break (s, in_flight),
            // Nothing was sent: another target may take it.
            Err(f) if path.retry(f, true) => {}
            Err(f) => return path.give_up(f).response(),
        }
    };
    let backend = path.target();
    // HTTP/2 carries the authority as a pseudo-header: give the target an absolute URI.
    let authority = parts
        .headers
        .remove(header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_string))
        .unwrap_or_else(|| backend.addr.to_string());
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match Uri::try_from(format!("http://{authority}{target}")) {
        Ok(u) => u,
        Err(_) => return Generated::BadRequest.response(),
    };
    parts.version = Version::HTTP_2;
    let req = Request::from_parts(parts, body);
    let sent_at = std::time::Instant::now();
    let resp = match tokio::time::timeout(cfg.idle_timeout, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(target = %backend.addr, error = %e, "HTTP/2 request failed");
            if e.is_user() || e.is_body_write_aborted() {
                return Generated::BadRequest.response();
            }
            // The request went out (some of it): no retry.
            return path.failed(Failure::Closed).response();
        }
        Err(_) => return path.failed(Failure::NoHeaders).response(),
    };
    path.answered(resp.status().as_u16(), sent_at);
    let (mut rparts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut rparts.headers);
    path.stick(&mut rparts.headers);
    let body = UpstreamBody::new(body, in_flight, cfg.idle_timeout);
    Response::from_parts(rparts, ProxyBody::Upstream(body))
}

/// The backend's shared HTTP/2 connection, opened when missing or closed.
async fn sender(
    backend: &Arc<Backend>,
    connect_timeout: Duration,
    cfg: &ListenerConfig,
) -> Result<SendRequest<ReqBody>, Failure> {
    {
        let slot = backend.pool.h2.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
    }
    let fresh = connect(backend.addr, connect_timeout, cfg.idle_timeout).await?;
    let mut slot = backend.pool.h2.lock().unwrap_or_else(|e| e.into_inner());
    *slot = Some(fresh.clone());
    Ok(fresh)
}

/// A new h2c connection. While streams are open on it, it is pinged every idle timeout and
/// closed if a ping goes unanswered for as long: a target that stops answering altogether
/// does not keep the one connection every request of the backend shares.
async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    idle: Duration,
) -> Result<SendRequest<ReqBody>, Failure> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err(Failure::ConnectFailed),
        Err(_) => return Err(Failure::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(idle)
        .keep_alive_timeout(idle)
        .handshake(TokioIo::new(stream))
        .await
        // Not speaking HTTP/2: as good as refused (nothing of a request was sent).
        .map_err(|_| Failure::ConnectFailed)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target = %addr, error = %e, "HTTP/2 target connection ended with an error");
        }
    });
    Ok(sender)
}
