//! One HTTP/1 client connection, served in its own task from start to end: read a request
//! head, route it, exchange it with a target over a pooled connection, relay the response,
//! repeat. Nothing else is spawned and no channel is crossed, so a keep-alive request costs the
//! four system calls it must (read from the client, write to the target, read its answer,
//! write to the client) and a little parsing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::buf::{InBuf, OutBuf, INITIAL};
use super::cursor::Cursor;
use super::deadline::Deadline;
use super::head::{self, Request, RequestHead, Version};
use super::response::{self, ClientSide, Parsed, MAX_RESPONSE_HEAD};
use super::rewrite;
use super::upstream::{self, ConnectError, UpConn, MAX_STALE};
use crate::access_log::Entry;
use crate::body::{InFlight, ProxyBody, ReqBody};
use crate::errors::{self, Generated};
use crate::h2_upstream::{self, ProtocolVersion};
use crate::request::RequestView;
use crate::router::Decision;
use crate::server::ConnCtx;
use crate::smuggling::{self, BodyKind, BAD_REQUEST, REQUEST_TIMEOUT};
use crate::splice::splice;
use crate::target_group::{Backend, TargetGroup};

/// Body bytes copied next to a head so that both go out in one write.
const COALESCE: usize = 64 * 1024;

/// How the connection ended.
pub(crate) enum Ended<S> {
    /// Closed.
    Done,
    /// The client sent the HTTP/2 preface: serve it as HTTP/2, starting with `read`.
    Http2 { io: S, read: Vec<u8> },
}

/// Whether the client connection carries another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    No,
}

/// What a failed attempt on one target amounted to (before any response byte reached the
/// client, so something else can still be answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// Connecting failed (refused, unreachable): nothing was sent.
    ConnectFailed,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The connection was closed or reset before any response arrived.
    Closed,
    /// No response headers within the idle timeout.
    NoHeaders,
    /// The target answered something that is not a valid HTTP/1 response.
    Invalid,
}

impl FailKind {
    fn generated(self) -> Generated {
        match self {
            FailKind::ConnectFailed | FailKind::Closed | FailKind::Invalid => Generated::BadGateway,
            FailKind::ConnectTimeout | FailKind::NoHeaders => Generated::GatewayTimeout,
        }
    }
}

/// A failed attempt, and whether the request can still be sent to another target.
#[derive(Debug, Clone, Copy)]
struct Failure {
    kind: FailKind,
    resend: bool,
}

/// Why a request body could not be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// The client went away or stalled mid-body.
    ClientGone,
    ClientTimeout,
    /// Invalid chunked framing.
    BadFraming,
    /// More than `max_request_body`.
    TooLarge,
    /// The target connection broke while the body was being sent.
    Target,
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
    head: RequestHead,
    timer: Deadline,
    /// Lines of a partial head already looked at.
    scanned: usize,
}

enum HeadRead {
    Head(usize),
    Closed,
    Refuse(&'static [u8]),
    Http2,
}

/// Serve HTTP/1 on `io` until the client or the listener ends it. With `sniff_h2`, a client
/// opening with the HTTP/2 preface is handed back for HTTP/2.
pub(crate) async fn serve<S>(io: S, ctx: Arc<ConnCtx>, sniff_h2: bool) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let drain = Arc::clone(&ctx.drain);
    let stopped = drain.stopped();
    tokio::pin!(stopped);
    let idle = ctx.config.idle_timeout;
    let mut c = Client {
        io,
        ctx,
        inbuf: InBuf::new(),
        out: OutBuf::new(),
        up_out: OutBuf::new(),
        head: RequestHead::default(),
        timer: Deadline::new(Instant::now() + idle),
        scanned: 0,
    };
    let mut sniff = sniff_h2;
    loop {
        let len = match c.read_head(stopped.as_mut(), sniff).await {
            HeadRead::Head(len) => len,
            HeadRead::Closed => break,
            HeadRead::Refuse(answer) => {
                c.refuse(answer).await;
                return Ended::Done;
            }
            HeadRead::Http2 => {
                let read = c.inbuf.filled().to_vec();
                return Ended::Http2 { io: c.io, read };
            }
        };
        sniff = false;
        if c.serve_request(len).await == Keep::No {
            break;
        }
    }
    c.close().await;
    Ended::Done
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Wait for a complete request head at the front of `inbuf`: the idle timeout runs until
    /// its first byte, the header read timeout from then on; shutdown ends an idle wait.
    async fn read_head(
        &mut self,
        mut stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        mut sniff: bool,
    ) -> HeadRead {
        let limits = self.ctx.limits;
        let max = limits.max_header_bytes;
        let mut started = false;
        self.scanned = 0;
        loop {
            if !self.inbuf.is_empty() {
                let buf = self.inbuf.filled();
                if sniff {
                    let n = buf.len().min(crate::h2::PREFACE.len());
                    if buf[..n] == crate::h2::PREFACE[..n] {
                        if n == crate::h2::PREFACE.len() {
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
                    self.timer.set(Instant::now() + limits.header_read_timeout);
                }
            }
            let read = tokio::select! {
                biased;
                r = self.inbuf.read_from(&mut self.io, max + INITIAL) => r,
                () = self.timer.expired() => {
                    if started {
                        tracing::debug!(client = %self.ctx.peer, "request head not received in time; answering 408");
                        return HeadRead::Refuse(REQUEST_TIMEOUT);
                    }
                    return HeadRead::Closed;
                }
                () = stopped.as_mut(), if self.inbuf.is_empty() => return HeadRead::Closed,
            };
            match read {
                Ok(0) | Err(_) => return HeadRead::Closed,
                Ok(_) => {}
            }
        }
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
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let mut discarded = 0usize;
        while discarded < 256 * 1024 {
            self.inbuf.consume(self.inbuf.len());
            match tokio::time::timeout_at(deadline, self.inbuf.read_from(&mut self.io, INITIAL))
                .await
            {
                Ok(Ok(n)) if n > 0 => discarded += n,
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

    /// Serve the request whose head is the first `len` bytes of `inbuf`.
    async fn serve_request(&mut self, len: usize) -> Keep {
        let ctx = Arc::clone(&self.ctx);
        let bytes = &self.inbuf.filled()[..len];
        if let Err(answer) = head::parse(bytes, &mut self.head) {
            self.inbuf.consume(len);
            self.refuse(answer).await;
            return Keep::No;
        }
        let req = Request {
            head: &self.head,
            bytes,
        };
        let log = ctx.stats.access_log().map(|_| LogStart {
            time: SystemTime::now(),
            arrived: std::time::Instant::now(),
            method: Method::from_bytes(req.method().as_bytes()).unwrap_or(Method::GET),
            path: self.head.target.str(bytes).to_string(),
            received: match self.head.body {
                BodyKind::Length(n) => Some(n),
                BodyKind::None => Some(0),
                BodyKind::Chunked => None,
            },
        });
        let mut ex = Exchange {
            body: self.head.body,
            is_head: self.head.is_head,
            http10: self.head.version == Version::Http10,
            close: self.head.close,
            expect_continue: self.head.expect_continue,
            idempotent: is_idempotent(req.method()),
            cursor: Cursor::request(self.head.body),
            complete: false,
            payload: 0,
        };
        let over_limit = match (self.head.body, ctx.limits.max_request_body) {
            (BodyKind::Length(n), Some(max)) => n > max,
            _ => false,
        };
        let decision = if over_limit {
            Err(payload_too_large())
        } else {
            let router = ctx.router.load();
            match router.route_view(&req, ctx.peer.ip()) {
                Decision::Forward(group) => Ok(Arc::clone(group)),
                other => Err(other.respond()),
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
                let upgrade = self.head.upgrade;
                let sticky = if upgrade {
                    None
                } else {
                    group.sticky_pick(&req)
                };
                rewrite::request_head(&mut self.up_out, &self.head, bytes, &ctx.fwd, upgrade);
                self.inbuf.consume(len);
                if upgrade {
                    Box::pin(self.upgrade(&group, &mut ex)).await
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
        served.keep
    }

    /// Forward to an HTTP/1 target group: pick a target (the sticky one, if any), try it, and
    /// retry once on another when the request can be sent again.
    async fn forward(
        &mut self,
        group: &TargetGroup,
        sticky: Option<Arc<Backend>>,
        ex: &mut Exchange,
    ) -> Served {
        // Body bytes that arrived with the head go out with it.
        if let Err(e) = self.inline_body(ex) {
            return Box::pin(self.body_failed(e, ex)).await;
        }
        let first = match sticky {
            Some(b) => Some(b),
            None => group.pick_or_wait().await,
        };
        let Some(mut backend) = first else {
            tracing::debug!(group = group.name(), "no routable target");
            return self
                .respond(Generated::NoTargets.response(), ex, true)
                .await;
        };
        let mut retried = false;
        loop {
            let failure = match self.attempt(group, &backend, ex).await {
                Ok(served) => return served,
                Err(f) => f,
            };
            let retryable = matches!(failure.kind, FailKind::ConnectFailed | FailKind::Closed);
            if retryable && failure.resend && !retried {
                if let Some(next) = group.pick(Some(&backend)) {
                    tracing::debug!(group = group.name(), failed = %backend.addr, retry = %next.addr, kind = ?failure.kind, "retrying on another target");
                    backend = next;
                    retried = true;
                    continue;
                }
            }
            tracing::info!(group = group.name(), target = %backend.addr, kind = ?failure.kind, "request failed on target");
            return self
                .respond(failure.kind.generated().response(), ex, true)
                .await;
        }
    }

    /// Move the body bytes already read (up to the end of the body) behind the head in
    /// `up_out`, checking chunked framing and the size limit before anything is sent.
    fn inline_body(&mut self, ex: &mut Exchange) -> Result<(), BodyError> {
        let limit = self.ctx.limits.max_request_body;
        let avail = self.inbuf.filled();
        let take = avail.len().min(COALESCE);
        let payload = &mut ex.payload;
        let used = ex
            .cursor
            .advance(&avail[..take], &mut |a, b| *payload += (b - a) as u64)
            .map_err(|_| BodyError::BadFraming)?;
        if limit.is_some_and(|max| ex.payload > max) && ex.body == BodyKind::Chunked {
            return Err(BodyError::TooLarge);
        }
        self.up_out.extend_from_slice(&avail[..used]);
        self.inbuf.consume(used);
        ex.complete = ex.cursor.is_done();
        Ok(())
    }

    /// One try on one target. Pooled connections the target closed while idle are skipped
    /// (the request is sent again on a fresh connection when it can be) without counting as
    /// the retry. `Err` only when nothing was answered to the client yet.
    async fn attempt(
        &mut self,
        group: &TargetGroup,
        backend: &Arc<Backend>,
        ex: &mut Exchange,
    ) -> Result<Served, Failure> {
        let ctx = Arc::clone(&self.ctx);
        let idle = ctx.config.idle_timeout;
        let in_flight = InFlight::start(backend);
        backend.requests_total.fetch_add(1, Ordering::Relaxed);
        let fail = |kind: FailKind, resend: bool| {
            backend.errors_total.fetch_add(1, Ordering::Relaxed);
            Failure { kind, resend }
        };
        let replayable = ex.idempotent && ex.complete;
        let mut stale = 0;
        loop {
            let connect_timeout = ctx.config.connect_timeout;
            let (mut up, reused, sent_at) =
                match upstream::checkout(backend, idle, connect_timeout, stale).await {
                    Ok(got) => got,
                    Err(e) => {
                        let kind = match e {
                            ConnectError::Timeout => FailKind::ConnectTimeout,
                            ConnectError::Io(_) => FailKind::ConnectFailed,
                        };
                        return Err(fail(kind, true));
                    }
                };
            self.timer.set(Instant::from_std(sent_at) + idle);
            if let Err(e) = up.stream.write_all(&self.up_out).await {
                // Nothing was taken from the client beyond `up_out`: it can be sent again.
                tracing::debug!(target = %backend.addr, error = %e, reused, "send failed");
                if reused {
                    stale += 1;
                    continue;
                }
                return Err(fail(FailKind::Closed, true));
            }
            let cookie = group.sticky_cookie(backend);
            let side = ClientSide {
                is_head: ex.is_head,
                http10: ex.http10,
                close: ex.close || ctx.drain.is_stopping(),
                cookie: cookie.as_ref().map(HeaderValue::as_bytes),
            };
            let exchanged = if ex.cursor.is_done() {
                self.download(&mut up, &side, backend, sent_at).await
            } else {
                // Rare and large: kept off the connection's own state.
                Box::pin(self.duplex(&mut up, &side, backend, sent_at, ex)).await
            };
            let (parsed, headers_at, relayed) = match exchanged {
                Exchanged::Answered {
                    parsed,
                    headers_at,
                    relayed,
                } => (parsed, headers_at, relayed),
                Exchanged::NoAnswer(FailKind::Closed)
                    if reused && replayable && stale < MAX_STALE =>
                {
                    tracing::debug!(target = %backend.addr, "pooled connection was closed; sending again");
                    stale += 1;
                    continue;
                }
                Exchanged::NoAnswer(kind) => {
                    tracing::debug!(target = %backend.addr, ?kind, reused, "no response");
                    return Err(fail(kind, replayable));
                }
                Exchanged::BodyFailed(BodyError::Target) => {
                    return Err(fail(FailKind::Closed, false));
                }
                Exchanged::BodyFailed(e) => return Ok(Box::pin(self.body_failed(e, ex)).await),
            };
            drop(in_flight);
            let body_done = ex.cursor.is_done();
            let keep = match relayed {
                Ok(()) if body_done && !parsed.close_client => Keep::Yes,
                Ok(()) => Keep::No,
                Err(Relay::Target) => {
                    backend.errors_total.fetch_add(1, Ordering::Relaxed);
                    Keep::No
                }
                Err(Relay::Client) => Keep::No,
            };
            if relayed.is_ok() && parsed.reusable && body_done && up.buf.is_empty() {
                // Parked as of now, not as of the head: the body may have taken long, and the
                // pool keeps its entries in the order they were parked.
                backend.pool.h1.put(up, idle, std::time::Instant::now());
            }
            return Ok(Served {
                status: parsed.status,
                generated: false,
                keep,
                target: Some(TargetTiming {
                    addr: backend.addr,
                    status: parsed.status,
                    sent_at,
                    headers_at,
                }),
                sent_bytes: match parsed.body {
                    response::RespBody::Length(n) => Some(n),
                    response::RespBody::None => Some(0),
                    _ => None,
                },
            });
        }
    }

    /// The request was sent whole: read the target's answer and relay it.
    async fn download(
        &mut self,
        up: &mut UpConn,
        side: &ClientSide<'_>,
        backend: &Backend,
        sent_at: std::time::Instant,
    ) -> Exchanged {
        let idle = self.ctx.config.idle_timeout;
        let parsed = match read_response_head(
            &mut up.stream,
            &mut up.buf,
            &mut self.timer,
            side,
            &mut self.out,
        )
        .await
        {
            Ok(p) => p,
            Err(kind) => return Exchanged::NoAnswer(kind),
        };
        let headers_at = answered(backend, &parsed, sent_at);
        let mut relay = Relayer {
            out: &mut self.out,
            timer: &mut self.timer,
            idle,
        };
        let relayed = relay
            .response(&mut up.stream, &mut up.buf, &mut self.io, &parsed)
            .await;
        Exchanged::Answered {
            parsed,
            headers_at,
            relayed,
        }
    }

    /// The request body is still coming: send it while reading and relaying the answer, both
    /// at once (a target may answer early, or stream its answer while it reads, like an echo).
    async fn duplex(
        &mut self,
        up: &mut UpConn,
        side: &ClientSide<'_>,
        backend: &Backend,
        sent_at: std::time::Instant,
        ex: &mut Exchange,
    ) -> Exchanged {
        let idle = self.ctx.config.idle_timeout;
        let limit = self.ctx.limits.max_request_body;
        if ex.expect_continue && !ex.http10 {
            // The client waits for this before sending its body.
            let sent = self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
            if sent.is_err() || self.io.flush().await.is_err() {
                return Exchanged::BodyFailed(BodyError::ClientGone);
            }
        }
        let answering = std::sync::atomic::AtomicBool::new(false);
        let (mut client_rd, mut client_wr) = tokio::io::split(&mut self.io);
        let (mut up_rd, mut up_wr) = up.stream.split();
        let upload = upload(
            &mut client_rd,
            &mut self.inbuf,
            &mut up_wr,
            &mut ex.cursor,
            &mut ex.payload,
            if ex.body == BodyKind::Chunked {
                limit
            } else {
                None
            },
        );
        let out = &mut self.out;
        let timer = &mut self.timer;
        let up_buf = &mut up.buf;
        let download = async {
            let parsed = read_response_head(&mut up_rd, up_buf, timer, side, out).await?;
            answering.store(true, Ordering::Relaxed);
            let headers_at = answered(backend, &parsed, sent_at);
            let mut relay = Relayer { out, timer, idle };
            let relayed = relay
                .response(&mut up_rd, up_buf, &mut client_wr, &parsed)
                .await;
            Ok::<_, FailKind>((parsed, headers_at, relayed))
        };
        tokio::pin!(upload, download);
        let mut uploaded = false;
        loop {
            tokio::select! {
                r = &mut upload, if !uploaded => match r {
                    Ok(()) => uploaded = true,
                    // Once the answer is on its way, the client gets the rest of it or a
                    // closed connection; before, the answer is about the failed body.
                    Err(e) if !answering.load(Ordering::Relaxed) => return Exchanged::BodyFailed(e),
                    Err(_) => uploaded = true,
                },
                d = &mut download => return match d {
                    Ok((parsed, headers_at, relayed)) => Exchanged::Answered { parsed, headers_at, relayed },
                    Err(kind) => Exchanged::NoAnswer(kind),
                },
            }
        }
    }

    /// Answer for a request body that could not be relayed; the connection closes (where the
    /// next request would start is unknown).
    async fn body_failed(&mut self, e: BodyError, ex: &mut Exchange) -> Served {
        ex.close = true;
        let resp = match e {
            BodyError::TooLarge => payload_too_large(),
            BodyError::BadFraming => {
                self.refuse(BAD_REQUEST).await;
                return Served {
                    status: 400,
                    generated: true,
                    keep: Keep::No,
                    target: None,
                    sent_bytes: None,
                };
            }
            BodyError::ClientTimeout => Generated::RequestTimeout.response(),
            BodyError::ClientGone | BodyError::Target => Generated::BadRequest.response(),
        };
        self.respond(resp, ex, true).await
    }

    /// Write and clear `out`.
    async fn flush_out(&mut self) -> Result<(), Relay> {
        write_out(&mut self.io, &mut self.out).await
    }

    /// Answer with a response the load balancer produced (errors, redirects, fixed responses,
    /// and answers from HTTP/2 targets). A request body that was not read closes the
    /// connection afterwards, unless all of it is already buffered and can be skipped.
    async fn respond(
        &mut self,
        resp: Response<ProxyBody>,
        ex: &mut Exchange,
        generated: bool,
    ) -> Served {
        if !ex.cursor.is_done() {
            let avail = self.inbuf.filled();
            match ex.cursor.advance(avail, &mut |_, _| {}) {
                Ok(used) if ex.cursor.is_done() => self.inbuf.consume(used),
                _ => ex.close = true,
            }
        }
        let close = ex.close || self.ctx.drain.is_stopping() || resp_closes(&resp);
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let length = body.size_hint().exact();
        self.out.clear();
        self.out.extend_from_slice(b"HTTP/1.1 ");
        response::push_status(&mut self.out, status);
        self.out.push(b' ');
        self.out
            .extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
        self.out.extend_from_slice(b"\r\n");
        response::push_fields(
            &mut self.out,
            &parts.headers,
            &[
                header::CONNECTION,
                header::TRANSFER_ENCODING,
                header::CONTENT_LENGTH,
            ],
        );
        let no_body = ex.is_head || status == 204 || status == 304 || status < 200;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| response::parse_length(v.as_bytes()));
        let chunked = length.or(declared).is_none() && !no_body;
        let close = close || (chunked && ex.http10);
        match length.or(declared) {
            Some(n) if !(status == 204 || status == 304 || status < 200) => {
                self.out.extend_from_slice(b"Content-Length: ");
                self.out.extend_from_slice(n.to_string().as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
            _ if chunked && !ex.http10 => {
                self.out
                    .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            _ => {}
        }
        if !parts.headers.contains_key(header::DATE) {
            self.out.extend_from_slice(b"Date: ");
            self.out
                .extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if close {
            self.out.extend_from_slice(b"Connection: close\r\n");
        } else if ex.http10 {
            self.out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        let mut keep = if close { Keep::No } else { Keep::Yes };
        let written = if no_body {
            self.flush_out().await
        } else {
            self.send_body_of(body, chunked && !ex.http10).await
        };
        if written.is_err() {
            keep = Keep::No;
        }
        let _ = self.io.flush().await;
        if keep == Keep::No && (ex.close || !ex.cursor.is_done()) {
            self.linger().await;
        }
        Served {
            status,
            generated,
            keep,
            target: None,
            sent_bytes: length,
        }
    }

    /// Stream a response body after the head in `out`, chunk-encoding it when asked (trailers
    /// go into the last chunk's trailer section).
    async fn send_body_of(&mut self, mut body: ProxyBody, chunked: bool) -> Result<(), Relay> {
        loop {
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = frame.map_err(|_| Relay::Target)?;
            match frame.into_data() {
                Ok(data) => {
                    if data.is_empty() {
                        continue;
                    }
                    if chunked {
                        response::push_chunk(&mut self.out, &data);
                    } else {
                        self.out.extend_from_slice(&data);
                    }
                    self.flush_out().await?;
                }
                Err(frame) => {
                    if let (Ok(trailers), true) = (frame.into_trailers(), chunked) {
                        response::push_last_chunk(&mut self.out, Some(&trailers));
                        return self.flush_out().await;
                    }
                }
            }
        }
        if chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        self.flush_out().await
    }

    /// Forward to a target group that speaks HTTP/2 (or gRPC) to its targets: the request is
    /// rebuilt as `http` types, its body read whole first (these groups serve HTTP/2 clients;
    /// an HTTP/1.1 client is the exception, and its body is bounded by the body limit or
    /// 16 MiB).
    async fn bridge(
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
    async fn upgrade(&mut self, group: &TargetGroup, ex: &mut Exchange) -> Served {
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
        self.timer.set(Instant::now() + ctx.config.idle_timeout);
        let sent_at = std::time::Instant::now();
        let side = ClientSide {
            is_head: false,
            http10: false,
            close: ex.close,
            cookie: None,
        };
        let sent = up.stream.write_all(&self.up_out).await;
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
            let mut relay = Relayer {
                out: &mut self.out,
                timer: &mut self.timer,
                idle: ctx.config.idle_timeout,
            };
            let relayed = relay
                .response(&mut up.stream, &mut up.buf, &mut self.io, &parsed)
                .await;
            let keep = if relayed.is_ok() && !parsed.close_client {
                Keep::Yes
            } else {
                Keep::No
            };
            return Served {
                status: parsed.status,
                generated: false,
                keep,
                target: timing,
                sent_bytes: None,
            };
        }
        // The 101 with the target's handshake headers, then whatever either side already sent.
        up.buf.consume(parsed.len);
        self.out.extend_from_slice(up.buf.filled());
        up.buf.consume(up.buf.len());
        let early = self.inbuf.filled().to_vec();
        self.inbuf.consume(early.len());
        if self.flush_out().await.is_ok() && up.stream.write_all(&early).await.is_ok() {
            let _ = self.io.flush().await;
            let end = splice(
                &mut self.io,
                &mut up.stream,
                ctx.config.idle_timeout,
                None,
                || false,
            )
            .await;
            tracing::debug!(target = %backend.addr, ?end, "upgraded connection ended");
        }
        drop(in_flight);
        Served {
            status: 101,
            generated: false,
            keep: Keep::No,
            target: timing,
            sent_bytes: None,
        }
    }
}

/// How an attempt's exchange with the target went.
enum Exchanged {
    /// The target answered; `relayed` says whether the answer reached the client whole.
    Answered {
        parsed: Parsed,
        headers_at: std::time::Instant,
        relayed: Result<(), Relay>,
    },
    /// No (valid) answer came: nothing was sent to the client yet.
    NoAnswer(FailKind),
    /// The request body could not be relayed before any answer.
    BodyFailed(BodyError),
}

/// Note a target's answer in its counters; the time its headers came.
fn answered(backend: &Backend, parsed: &Parsed, sent_at: std::time::Instant) -> std::time::Instant {
    let headers_at = std::time::Instant::now();
    backend.connected();
    let status = StatusCode::from_u16(parsed.status).unwrap_or(StatusCode::BAD_GATEWAY);
    backend.metrics.response(status, headers_at - sent_at);
    headers_at
}

/// Read a target's response head (skipping interim 1xx answers) and write the client's
/// version of it into `out`.
async fn read_response_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut InBuf,
    timer: &mut Deadline,
    side: &ClientSide<'_>,
    out: &mut Vec<u8>,
) -> Result<Parsed, FailKind> {
    let mut got_any = !buf.is_empty();
    loop {
        if !buf.is_empty() {
            match response::parse(buf.filled(), side, out) {
                Ok(Some(p)) if (100..200).contains(&p.status) && p.status != 101 => {
                    buf.consume(p.len);
                    continue;
                }
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(_) => return Err(FailKind::Invalid),
            }
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(FailKind::Invalid);
            }
        }
        let read = tokio::select! {
            biased;
            r = buf.read_from(rd, MAX_RESPONSE_HEAD + INITIAL) => r,
            () = timer.expired() => return Err(FailKind::NoHeaders),
        };
        match read {
            Ok(n) if n > 0 => got_any = true,
            _ if got_any => return Err(FailKind::Invalid),
            _ => return Err(FailKind::Closed),
        }
    }
}

/// Relay the rest of a request body from the client to the target, checking chunked framing
/// and (for chunked bodies, whose size is not declared) the size limit on the way.
async fn upload<R, W>(
    rd: &mut R,
    inbuf: &mut InBuf,
    wr: &mut W,
    cursor: &mut Cursor,
    payload: &mut u64,
    limit: Option<u64>,
) -> Result<(), BodyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while !cursor.is_done() {
        if inbuf.is_empty() {
            match inbuf.read_from(rd, INITIAL).await {
                Ok(n) if n > 0 => {}
                _ => return Err(BodyError::ClientGone),
            }
        }
        let avail = inbuf.filled();
        let used = cursor
            .advance(avail, &mut |a, b| *payload += (b - a) as u64)
            .map_err(|_| BodyError::BadFraming)?;
        if limit.is_some_and(|max| *payload > max) {
            return Err(BodyError::TooLarge);
        }
        wr.write_all(&avail[..used])
            .await
            .map_err(|_| BodyError::Target)?;
        inbuf.consume(used);
    }
    Ok(())
}

/// Relays a response body to the client as it is framed, coalescing the head and the first
/// body bytes into one write.
struct Relayer<'a> {
    /// The client's response head, to go out with the first body bytes.
    out: &'a mut Vec<u8>,
    timer: &'a mut Deadline,
    idle: std::time::Duration,
}

impl Relayer<'_> {
    /// Send the head in `out` and relay the body (chunked bodies to HTTP/1.0 clients without
    /// their framing).
    async fn response<R, W>(
        &mut self,
        rd: &mut R,
        buf: &mut InBuf,
        wr: &mut W,
        p: &Parsed,
    ) -> Result<(), Relay>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        buf.consume(p.len);
        let mut cursor = Cursor::response(p.body);
        loop {
            if !buf.is_empty() && !cursor.is_done() {
                let avail = buf.filled();
                let used = if p.dechunk {
                    let out = &mut *self.out;
                    cursor.advance(avail, &mut |a, b| out.extend_from_slice(&avail[a..b]))
                } else {
                    cursor.advance(avail, &mut |_, _| {})
                }
                .map_err(|_| Relay::Target)?;
                if !p.dechunk {
                    if self.out.len() + used <= COALESCE {
                        self.out.extend_from_slice(&avail[..used]);
                    } else {
                        self.flush(wr).await?;
                        wr.write_all(&avail[..used])
                            .await
                            .map_err(|_| Relay::Client)?;
                    }
                }
                buf.consume(used);
            }
            self.flush(wr).await?;
            if cursor.is_done() {
                return wr.flush().await.map_err(|_| Relay::Client);
            }
            let read = tokio::select! {
                biased;
                r = buf.read_from(rd, INITIAL) => r,
                () = self.timer.expired() => return Err(Relay::Target),
            };
            match read {
                Ok(n) if n > 0 => self.timer.set(Instant::now() + self.idle),
                _ if matches!(cursor, Cursor::UntilClose) => cursor = Cursor::Done,
                _ => return Err(Relay::Target),
            }
        }
    }

    async fn flush<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> Result<(), Relay> {
        write_out(wr, self.out).await
    }
}

/// Write and clear `out`.
async fn write_out<W: AsyncWrite + Unpin>(wr: &mut W, out: &mut Vec<u8>) -> Result<(), Relay> {
    if out.is_empty() {
        return Ok(());
    }
    let res = wr.write_all(out).await;
    out.clear();
    res.map_err(|_| Relay::Client)
}

/// A response failed to reach the client whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// Writing to the client failed.
    Client,
    /// The target's body broke off, was malformed, or stalled past the idle timeout.
    Target,
}

/// Methods that RFC 9110 defines as idempotent: safe to send twice.
fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// Whether a generated response asks for the connection to close.
fn resp_closes(resp: &Response<ProxyBody>) -> bool {
    resp.headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
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

/// The request as `http` types, for the paths that need them (HTTP/2 targets).
fn to_parts(req: &Request<'_>) -> http::request::Parts {
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
