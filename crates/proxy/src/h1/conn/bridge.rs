//! The two ways an HTTP/1 request leaves the engine's plain exchange: to a target group that
//! speaks HTTP/2 (the request rebuilt as `http` types), and a WebSocket upgrade (spliced).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::exchange::read_response_head;
use super::{BodyError, Client, Exchange, FailKind, Keep, Relay, Relayer, Served, TargetTiming};
use crate::body::{InFlight, ProxyBody, ReqBody};
use crate::errors::Generated;
use crate::h1::buf::INITIAL;
use crate::h1::head::Request;
use crate::h1::response::{ClientSide, Parsed};
use crate::h1::upstream::{ConnectError, UpConn};
use crate::h2_upstream;
use crate::request::RequestView;
use crate::splice::splice;
use crate::target_group::{Backend, TargetGroup};

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Forward to a target group that speaks HTTP/2 (or gRPC) to its targets: the request is
    /// rebuilt as `http` types, its body read whole first (these groups serve HTTP/2 clients;
    /// an HTTP/1.1 client is the exception, and its body is bounded by the body limit or
    /// 16 MiB).
    pub(super) async fn bridge(
        &mut self,
        group: &TargetGroup,
        mut parts: http::request::Parts,
        ex: &mut Exchange,
    ) -> Served {
        const MAX_BRIDGED_BODY: u64 = 16 * 1024 * 1024;
        let max = self
            .ctx
            .limits
            .max_request_body
            .unwrap_or(MAX_BRIDGED_BODY)
            .min(MAX_BRIDGED_BODY);
        let mut body = Vec::new();
        if ex.expect_continue && !ex.cursor.is_done() {
            let _ = self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        }
        while !ex.cursor.is_done() {
            if self.inbuf.is_empty() {
                let read = tokio::select! {
                    biased;
                    r = self.inbuf.read_from(&mut self.io, INITIAL) => r,
                    () = self.timer.expired() => return self.body_failed(BodyError::ClientTimeout, ex).await,
                };
                if !matches!(read, Ok(n) if n > 0) {
                    return self.body_failed(BodyError::ClientGone, ex).await;
                }
            }
            let avail = self.inbuf.filled();
            let used = match ex
                .cursor
                .advance(avail, &mut |a, b| body.extend_from_slice(&avail[a..b]))
            {
                Ok(used) => used,
                Err(_) => return self.body_failed(BodyError::BadFraming, ex).await,
            };
            self.inbuf.consume(used);
            if body.len() as u64 > max {
                return self.body_failed(BodyError::TooLarge, ex).await;
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::TRANSFER_ENCODING);
        let body = ReqBody::full(Bytes::from(body));
        let resp = h2_upstream::forward(group, parts, body, &self.ctx.fwd, &self.ctx.config).await;
        let generated = matches!(resp.body(), ProxyBody::Full(_));
        self.respond(resp, ex, generated).await
    }

    /// A WebSocket upgrade: forwarded to one target on a fresh connection; on 101 the two
    /// connections are spliced until either side closes or both are idle for the idle timeout.
    pub(super) async fn upgrade(&mut self, group: &TargetGroup, ex: &mut Exchange) -> Served {
        let ctx = Arc::clone(&self.ctx);
        if !ex.cursor.is_done() {
            // A WebSocket handshake has no body.
            return self.body_failed(BodyError::BadFraming, ex).await;
        }
        let Some(backend) = group.pick(None) else {
            return self
                .respond(Generated::NoTargets.response(), ex, true)
                .await;
        };
        let in_flight = InFlight::start(&backend);
        backend.requests_total.fetch_add(1, Ordering::Relaxed);
        let mut up = match UpConn::connect(backend.addr, ctx.config.connect_timeout).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target = %backend.addr, error = %e, "upgrade: connect failed");
                backend.eject();
                backend.errors_total.fetch_add(1, Ordering::Relaxed);
                let kind = match e {
                    ConnectError::Timeout => Generated::GatewayTimeout,
                    ConnectError::Io(_) => Generated::BadGateway,
                };
                return self.respond(kind.response(), ex, true).await;
            }
        };
        let by = Instant::now() + ctx.config.idle_timeout;
        self.timer.set(by);
        let sent_at = std::time::Instant::now();
        let side = ClientSide {
            is_head: false,
            http10: false,
            close: ex.close,
            upgrade: true,
            cookie: None,
        };
        let sent = up.send(&self.up_out, by).await;
        let parsed = match sent {
            Ok(()) => {
                read_response_head(
                    &mut up.stream,
                    &mut up.buf,
                    &mut self.timer,
                    &side,
                    &mut self.out,
                )
                .await
            }
            Err(_) => Err(FailKind::Closed),
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(kind) => {
                backend.errors_total.fetch_add(1, Ordering::Relaxed);
                return self.respond(kind.generated().response(), ex, true).await;
            }
        };
        let headers_at = std::time::Instant::now();
        backend.connected();
        let status = StatusCode::from_u16(parsed.status).unwrap_or(StatusCode::BAD_GATEWAY);
        backend.metrics.response(status, headers_at - sent_at);
        let timing = Some(TargetTiming {
            addr: backend.addr,
            status: parsed.status,
            sent_at,
            headers_at,
        });
        if parsed.status != 101 {
            // The target declined: an ordinary response.
            return self.declined(&backend, &mut up, &parsed, timing, ex).await;
        }
        self.switched(&backend, &mut up, &parsed).await;
        drop(in_flight);
        Served {
            status: 101,
            generated: false,
            keep: Keep::No,
            target: timing,
            sent_bytes: None,
        }
    }

    /// The target answered an upgrade with something else than 101: relay it as any answer.
    async fn declined(
        &mut self,
        backend: &Backend,
        up: &mut UpConn,
        parsed: &Parsed,
        timing: Option<TargetTiming>,
        ex: &mut Exchange,
    ) -> Served {
        let mut relay = Relayer {
            out: &mut self.out,
            timer: &mut self.timer,
            idle: self.ctx.config.idle_timeout,
        };
        let relayed = relay
            .response(&mut up.stream, &mut up.buf, &mut self.io, parsed)
            .await;
        if relayed == Err(Relay::Unsent) {
            backend.errors_total.fetch_add(1, Ordering::Relaxed);
            return self
                .respond(Generated::BadGateway.response(), ex, true)
                .await;
        }
        let keep = if relayed.is_ok() && !parsed.close_client {
            Keep::Yes
        } else {
            Keep::No
        };
        Served {
            status: parsed.status,
            generated: false,
            keep,
            target: timing,
            sent_bytes: None,
        }
    }

    /// The target switched protocols: its 101 with its handshake headers, then whatever either
    /// side already sent, then both connections spliced until they end or idle out.
    async fn switched(&mut self, backend: &Backend, up: &mut UpConn, parsed: &Parsed) {
        let idle = self.ctx.config.idle_timeout;
        up.buf.consume(parsed.len);
        self.out.extend_from_slice(up.buf.filled());
        up.buf.consume(up.buf.len());
        let early = self.inbuf.filled().to_vec();
        self.inbuf.consume(early.len());
        let by = Instant::now() + idle;
        if self.flush_out().await.is_ok() && up.send(&early, by).await.is_ok() {
            let _ = self.io.flush().await;
            let end = splice(&mut self.io, &mut up.stream, idle, None, || false).await;
            tracing::debug!(target = %backend.addr, ?end, "upgraded connection ended");
        }
    }
}

/// The request as `http` types, for the paths that need them (HTTP/2 targets).
pub(super) fn to_parts(req: &Request<'_>) -> http::request::Parts {
    let mut builder = http::Request::builder()
        .method(Method::from_bytes(req.method().as_bytes()).unwrap_or(Method::GET))
        .uri(
            Uri::try_from(req.head.target.of(req.bytes)).unwrap_or_else(|_| Uri::from_static("/")),
        );
    for f in &req.head.fields {
        builder = builder.header(f.name.of(req.bytes), f.value.of(req.bytes));
    }
    match builder.body(()) {
        Ok(r) => r.into_parts().0,
        // A header the http crate refuses (it checked less strictly than the parser): send
        // what it accepts.
        Err(_) => {
            let mut parts = http::Request::new(()).into_parts().0;
            for f in &req.head.fields {
                if let (Ok(n), Ok(v)) = (
                    header::HeaderName::from_bytes(f.name.of(req.bytes)),
                    HeaderValue::from_bytes(f.value.of(req.bytes)),
                ) {
                    parts.headers.append(n, v);
                }
            }
            parts
        }
    }
}
