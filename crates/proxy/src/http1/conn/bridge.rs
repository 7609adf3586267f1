//! The two ways an HTTP/1 request leaves the engine's plain exchange: to a target group that
//! speaks HTTP/2 (the request rebuilt as `http` types), and a WebSocket upgrade (spliced).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Uri};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::exchange::read_response_head;
use super::{BodyError, Client, Exchange, Keep, Relay, Relayer, Served, TargetTiming};
use crate::body::{ProxyBody, ReqBody};
use crate::errors::Generated;
use crate::http1::buf::INITIAL;
use crate::http1::head::Request;
use crate::http1::response::{ClientSide, Parsed};
use crate::http1::upstream::{ConnectError, UpConn};
use crate::http2::upstream;
use crate::l4::splice::splice;
use crate::lb::forwarding::{Failure as FailKind, Forwarding};
use crate::lb::target_group::{Backend, TargetGroup};
use crate::request::RequestView;

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
        let resp =
            upstream::forward(group, parts, body, &self.ctx.forwarded(), &self.ctx.config).await;
        let generated = matches!(resp.body(), ProxyBody::Full(_));
        self.respond(resp, ex, generated).await
    }

    /// A WebSocket upgrade: forwarded to one target (the sticky one, if any; retried once on
    /// another as any request) on a fresh connection; on 101 the two connections are spliced
    /// until either side closes or both are idle for the idle timeout.
    pub(super) async fn upgrade(
        &mut self,
        group: &TargetGroup,
        sticky: Option<Arc<Backend>>,
        ex: &mut Exchange,
    ) -> Served {
        if !ex.cursor.is_done() {
            // A WebSocket handshake has no body.
            return self.body_failed(BodyError::BadFraming, ex).await;
        }
        let Some(mut fwd) = Forwarding::request(group, sticky).await else {
            return self
                .respond(Generated::NoTargets.response(), ex, true)
                .await;
        };
        loop {
            let kind = match self.try_upgrade(&fwd, ex).await {
                Ok(served) => return served,
                Err(kind) => kind,
            };
            // Bodiless: it can be sent again whole if its method allows.
            if !fwd.retry(kind, ex.idempotent) {
                let answer = fwd.give_up(kind).response();
                return self.respond(answer, ex, true).await;
            }
        }
    }

    /// One try of an upgrade on the current target. `Err` only when nothing was answered.
    async fn try_upgrade(
        &mut self,
        fwd: &Forwarding<'_>,
        ex: &mut Exchange,
    ) -> Result<Served, FailKind> {
        let idle = self.ctx.config.idle_timeout;
        let backend = fwd.target();
        let in_flight = fwd.begin();
        let mut up = match UpConn::connect(backend.addr, fwd.connect_timeout()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target = %backend.addr, error = %e, "upgrade: connect failed");
                return Err(match e {
                    ConnectError::Timeout => FailKind::ConnectTimeout,
                    ConnectError::Io(_) => FailKind::ConnectFailed,
                });
            }
        };
        let by = Instant::now() + idle;
        self.timer.set(by);
        let sent_at = std::time::Instant::now();
        let cookie = fwd.cookie();
        let side = ClientSide {
            is_head: false,
            http10: false,
            close: ex.close,
            upgrade: true,
            cookie: cookie.as_ref().map(HeaderValue::as_bytes),
        };
        up.send(&self.up_out, by)
            .await
            .map_err(|_| FailKind::Closed)?;
        let parsed = read_response_head(
            &mut up.stream,
            &mut up.buf,
            &mut self.timer,
            &side,
            &mut self.out,
        )
        .await?;
        let headers_at = fwd.answered(parsed.status, sent_at);
        let timing = Some(TargetTiming {
            addr: backend.addr,
            status: parsed.status,
            sent_at,
            headers_at,
        });
        if parsed.status != 101 {
            // The target declined: an ordinary response.
            return Ok(self.declined(fwd, &mut up, &parsed, timing, ex).await);
        }
        self.switched(backend, &mut up, &parsed).await;
        drop(in_flight);
        Ok(Served {
            status: 101,
            generated: false,
            keep: Keep::No,
            target: timing,
            sent_bytes: None,
        })
    }

    /// The target answered an upgrade with something else than 101: relay it as any answer.
    async fn declined(
        &mut self,
        fwd: &Forwarding<'_>,
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
            fwd.broke_off();
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
