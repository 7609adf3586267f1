//! One HTTP/1 client connection, served in its own task from start to end: read a request
//! head, route it, exchange it with a target over a pooled connection, relay the response,
//! repeat. Nothing else is spawned and no channel is crossed, so a keep-alive request costs the
//! four system calls it must (read from the client, write to the target, read its answer,
//! write to the client) and a little parsing.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::FusedFuture;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::buf::{InBuf, OutBuf, INITIAL};
use super::cursor::Cursor;
use super::deadline::Deadline;
use super::head::{self, Request, RequestHead, Version};
use super::rewrite;
use super::slot;
use crate::access_log::Entry;
use crate::body::ProxyBody;
use crate::ctx::ConnCtx;
use crate::errors;
use crate::http1::smuggling::{self, BodyKind, REQUEST_TIMEOUT};
use crate::http2::upstream::ProtocolVersion;
use crate::lb::forwarding::Forwarding;
use crate::lb::Routed;
use crate::net::drain::IDLE_GRACE;
use crate::request::Req;
use crate::request::RequestView;

mod answer;
mod bridge;
mod exchange;
#[cfg(test)]
mod idle_tests;
#[cfg(test)]
mod shutdown_tests;

use answer::{Relay, Relayer};
use bridge::to_parts;
use exchange::BodyError;

/// Body bytes copied next to a head so that both go out in one write.
const COALESCE: usize = 64 * 1024;

/// Whether the client connection carries another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    No,
}

/// What the request path notes of one request for its answer, the counters and the log.
struct Exchange {
    body: BodyKind,
    is_head: bool,
    http10: bool,
    close: bool,
    expect_continue: bool,
    idempotent: bool,
    /// Body bytes not yet read from the client (they follow in `inbuf` or the socket).
    cursor: Cursor,
    /// The whole request (head and body) is in `up_out`: it can be sent again.
    complete: bool,
    /// Chunk data bytes seen so far (the size limit of bodies without a declared length).
    payload: u64,
}

/// The outcome of one request, for the counters and the access log.
struct Served {
    status: u16,
    generated: bool,
    keep: Keep,
    target: Option<TargetTiming>,
    sent_bytes: Option<u64>,
}

#[derive(Clone, Copy)]
struct TargetTiming {
    addr: SocketAddr,
    status: u16,
    sent_at: std::time::Instant,
    headers_at: std::time::Instant,
}

/// What the access log needs to remember from the head (copied only when logging is on).
struct LogStart {
    time: SystemTime,
    arrived: std::time::Instant,
    method: Method,
    path: String,
    received: Option<u64>,
}

/// One client connection's state, kept across its requests.
pub(crate) struct Client<S> {
    io: S,
    ctx: Arc<ConnCtx>,
    inbuf: InBuf,
    /// What goes to the client next (a response head and the first body bytes).
    out: OutBuf,
    /// What goes to the target next (a request head and the first body bytes).
    up_out: OutBuf,
    /// The one timer of the connection: idle, header read, write and response deadlines,
    /// shutdown's grace and the linger after a refusal all move it.
    timer: Deadline,
    /// Lines of a partial head already looked at.
    scanned: usize,
}

/// What ended one wait for request bytes.
enum Woke {
    Read(std::io::Result<usize>),
    Expired,
    Stopped,
}

enum HeadRead {
    Head(usize),
    Closed,
    Refuse(&'static [u8]),
    Http2,
}

/// Serve HTTP/1 on `io` until the client or the listener ends it. With `sniff_h2`, a client
/// opening with the HTTP/2 preface is served as HTTP/2 ([`crate::http2::serve`]).
///
/// Not an `async fn`: its arguments would stay in the future beside the connection state they
/// are moved into, for the connection's whole life. The future built here holds the state
/// once.
pub(crate) fn serve<S>(
    io: S,
    ctx: Arc<ConnCtx>,
    sniff_h2: bool,
) -> impl std::future::Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let drain = Arc::clone(&ctx.drain);
    let idle = ctx.config.idle_timeout;
    let mut c = Client {
        io,
        ctx,
        inbuf: InBuf::new(),
        out: OutBuf::new(),
        up_out: OutBuf::new(),
        timer: Deadline::new(Instant::now() + idle),
        scanned: 0,
    };
    let mut sniff = sniff_h2;
    async move {
        let stopped = drain.stopped();
        tokio::pin!(stopped);
        loop {
            let len = match c.read_head(stopped.as_mut(), sniff).await {
                HeadRead::Head(len) => len,
                HeadRead::Closed => break,
                // Boxed: a rare path, whose state would otherwise take room in every idle
                // connection.
                HeadRead::Refuse(answer) => return Box::pin(c.refuse(answer)).await,
                HeadRead::Http2 => {
                    let read = c.inbuf.filled().to_vec();
                    // Everything but the stream and the context goes now (the read buffer back
                    // to its store, the timer), not when the HTTP/2 connection ends.
                    let Client {
                        io,
                        ctx,
                        inbuf,
                        out,
                        up_out,
                        timer,
                        scanned: _,
                    } = c;
                    drop((inbuf, out, up_out, timer));
                    return Box::pin(crate::http2::serve(io, read, ctx)).await;
                }
            };
            sniff = false;
            // The request's state lives in a slot while it is served, not in this future: an
            // idle connection holds only what waiting for the next request needs.
            let keep;
            (c, keep) = slot::run(c.serve_owned(len)).await;
            if keep == Keep::No {
                break;
            }
        }
        c.close().await;
    }
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Wait for a complete request head at the front of `inbuf`: the idle timeout runs until
    /// its first byte, the header read timeout from then on; shutdown cuts an idle wait to
    /// [`IDLE_GRACE`].
    async fn read_head(
        &mut self,
        mut stopped: Pin<&mut impl FusedFuture<Output = ()>>,
        mut sniff: bool,
    ) -> HeadRead {
        let max = self.ctx.limits.max_header_bytes;
        let mut started = false;
        self.scanned = 0;
        if self.inbuf.is_empty() {
            // Between requests: hold no buffer while waiting (the read takes one when bytes
            // arrive and gives it back if it would block).
            self.release();
        }
        loop {
            if !self.inbuf.is_empty() {
                let buf = self.inbuf.filled();
                if sniff {
                    let n = buf.len().min(crate::http2::PREFACE.len());
                    if buf[..n] == crate::http2::PREFACE[..n] {
                        if n == crate::http2::PREFACE.len() {
                            return HeadRead::Http2;
                        }
                    } else {
                        sniff = false;
                    }
                }
                if !sniff {
                    match smuggling::find_end(buf, self.scanned, max) {
                        Err(answer) => return HeadRead::Refuse(answer),
                        Ok(Some(len)) => return HeadRead::Head(len),
                        Ok(None) => self.scanned = smuggling::resume_point(buf),
                    }
                }
                if !started {
                    started = true;
                    self.timer
                        .set(Instant::now() + self.ctx.limits.header_read_timeout);
                }
            }
            let woke =
                std::future::poll_fn(|cx| self.poll_wait(cx, stopped.as_mut(), max + INITIAL))
                    .await;
            match woke {
                Woke::Read(Ok(0) | Err(_)) => return HeadRead::Closed,
                Woke::Read(Ok(_)) => {}
                Woke::Expired if started => {
                    tracing::debug!(client = %self.ctx.peer, "request head not received in time; answering 408");
                    return HeadRead::Refuse(REQUEST_TIMEOUT);
                }
                Woke::Expired => return HeadRead::Closed,
                // A request sent at this instant is still served (its answer closes).
                Woke::Stopped => self.timer.set_earlier(Instant::now() + IDLE_GRACE),
            }
        }
    }

    /// One wait of [`Client::read_head`], in this order: bytes from the client, the deadline,
    /// the listener's shutdown (only while nothing is buffered). Written as one poll rather
    /// than a `select!` of futures: the wait is what an idle connection holds, and this one
    /// holds no more than its borrows.
    fn poll_wait(
        &mut self,
        cx: &mut Context<'_>,
        mut stopped: Pin<&mut impl FusedFuture<Output = ()>>,
        max: usize,
    ) -> Poll<Woke> {
        if let Poll::Ready(read) = self.inbuf.poll_read_from(cx, &mut self.io, max) {
            return Poll::Ready(Woke::Read(read));
        }
        if self.timer.poll_expired(cx).is_ready() {
            return Poll::Ready(Woke::Expired);
        }
        if self.inbuf.is_empty() && !stopped.is_terminated() && stopped.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Woke::Stopped);
        }
        Poll::Pending
    }

    /// Give back every buffer of the last exchange: the connection waits for its next
    /// request and may wait long.
    fn release(&mut self) {
        self.out.release();
        self.up_out.release();
        self.inbuf.release();
    }

    /// Answer a refused head with its canned response and close (the unread rest of the
    /// stream cannot be trusted to start a request).
    async fn refuse(&mut self, answer: &'static [u8]) {
        let _ = self.io.write_all(answer).await;
        let _ = self.io.flush().await;
        self.linger().await;
    }

    /// Close after an answer while the client may still be sending: shut down our side, then
    /// read and discard briefly, so that the client's unread bytes do not make the kernel reset
    /// the connection before the client has read the answer.
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        self.timer
            .set(Instant::now() + std::time::Duration::from_secs(1));
        let mut discarded = 0usize;
        while discarded < 256 * 1024 {
            self.inbuf.consume(self.inbuf.len());
            let read = std::future::poll_fn(|cx| {
                match self.inbuf.poll_read_from(cx, &mut self.io, INITIAL) {
                    Poll::Ready(read) => Poll::Ready(read.ok()),
                    Poll::Pending => self.timer.poll_expired(cx).map(|()| None),
                }
            })
            .await;
            match read {
                Some(n) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }

    /// End the connection after its last exchange.
    async fn close(&mut self) {
        if self.ctx.tls {
            // TLS: say goodbye with close_notify.
            let _ = self.io.shutdown().await;
        }
    }

    /// [`Client::serve_request`], owning the connection (a future without borrows can run in
    /// a [`slot`]).
    async fn serve_owned(mut self, len: usize) -> (Self, Keep) {
        let keep = self.serve_request(len).await;
        (self, keep)
    }

    /// Serve the request whose head is the first `len` bytes of `inbuf`, in its span. The
    /// parsed head lives only while its request is served (in the request's slot), not in
    /// the idle connection.
    async fn serve_request(&mut self, len: usize) -> Keep {
        let mut head = RequestHead::default();
        let bytes = &self.inbuf.filled()[..len];
        if let Err(answer) = head::parse(bytes, &mut head) {
            self.inbuf.consume(len);
            self.refuse(answer).await;
            return Keep::No;
        }
        let req = Request { head: &head, bytes };
        let span = crate::trace::request(req.method(), req.path());
        self.serve_parsed(len, &head).instrument(span).await
    }

    /// Route the parsed request `head` (its bytes the first `len` of `inbuf`), forward it or
    /// answer it; count and log it.
    async fn serve_parsed(&mut self, len: usize, head: &RequestHead) -> Keep {
        let ctx = Arc::clone(&self.ctx);
        let bytes = &self.inbuf.filled()[..len];
        let req = Request { head, bytes };
        let log = ctx.stats.access_log().map(|_| LogStart {
            time: SystemTime::now(),
            arrived: std::time::Instant::now(),
            method: Method::from_bytes(req.method().as_bytes()).unwrap_or(Method::GET),
            path: head.target.str(bytes).to_string(),
            received: match head.body {
                BodyKind::Length(n) => Some(n),
                BodyKind::None => Some(0),
                BodyKind::Chunked => None,
            },
        });
        let mut ex = Exchange {
            body: head.body,
            is_head: head.is_head,
            http10: head.version == Version::Http10,
            close: head.close,
            expect_continue: head.expect_continue,
            idempotent: is_idempotent(req.method()),
            cursor: Cursor::request(head.body),
            complete: false,
            payload: 0,
        };
        let over_limit = match (head.body, ctx.limits.max_request_body) {
            (BodyKind::Length(n), Some(max)) => n > max,
            _ => false,
        };
        let decision = if over_limit {
            Err(payload_too_large())
        } else {
            match ctx.routing.route(Req::Head(&req), ctx.peer.ip()) {
                Routed::Forward(group) => Ok(group),
                Routed::Answer(resp) => Err(*resp),
            }
        };
        let served = match decision {
            Err(resp) => {
                self.inbuf.consume(len);
                Box::pin(self.respond(resp, &mut ex, true)).await
            }
            Ok(group) if group.protocol_version() != ProtocolVersion::Http1 => {
                let parts = to_parts(&req);
                self.inbuf.consume(len);
                Box::pin(self.bridge(&group, parts, &mut ex)).await
            }
            Ok(group) => {
                let upgrade = head.upgrade;
                let sticky = Forwarding::sticky(&group, &req);
                rewrite::request_head(&mut self.up_out, head, bytes, &ctx.forwarded(), upgrade);
                self.inbuf.consume(len);
                if upgrade {
                    Box::pin(self.upgrade(&group, sticky, &mut ex)).await
                } else {
                    self.forward(&group, sticky, &mut ex).await
                }
            }
        };
        ctx.stats.record(
            StatusCode::from_u16(served.status).unwrap_or(StatusCode::BAD_GATEWAY),
            served.generated,
        );
        if let (Some(log), Some(start)) = (ctx.stats.access_log(), log) {
            log.log(entry(start, &served, ctx.peer, ctx.local));
        }
        tracing::trace!(
            status = served.status,
            generated = served.generated,
            "answered"
        );
        served.keep
    }
}

/// 413; the connection closes after it (the unread body must not be taken for a request).
fn payload_too_large() -> Response<ProxyBody> {
    let mut resp = errors::text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
        Bytes::from_static(b"413 Payload Too Large: the request body exceeds the limit\n"),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The access log entry of a served request.
fn entry(start: LogStart, served: &Served, client: SocketAddr, listener: SocketAddr) -> Entry {
    let now = std::time::Instant::now();
    let (request_processing, target_processing, response_processing) = match served.target {
        Some(t) => (
            t.sent_at.saturating_duration_since(start.arrived),
            Some(t.headers_at.saturating_duration_since(t.sent_at)),
            now.saturating_duration_since(t.headers_at),
        ),
        None => (
            now.saturating_duration_since(start.arrived),
            None,
            std::time::Duration::ZERO,
        ),
    };
    Entry {
        time: start.time,
        client,
        listener,
        method: start.method,
        path: start.path,
        status: served.status,
        target: served.target.map(|t| t.addr),
        target_status: served.target.map(|t| t.status),
        request_processing,
        target_processing,
        response_processing,
        received_bytes: start.received,
        sent_bytes: served.sent_bytes,
    }
}

/// Methods that RFC 9110 defines as idempotent: safe to send twice.
fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}
