//! One request's exchange with an HTTP/1 target group: pick a target, send the request (its
//! body while the answer comes, if need be), read and relay the answer, retry once elsewhere
//! when that is safe.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::{Client, Exchange, Keep, Relay, Relayer, Served, TargetTiming, COALESCE};
use crate::errors::Generated;
use crate::http1::buf::{InBuf, INITIAL};
use crate::http1::cursor::Cursor;
use crate::http1::deadline::Deadline;
use crate::http1::response::{self, ClientSide, Parsed, MAX_RESPONSE_HEAD};
use crate::http1::smuggling::BodyKind;
use crate::http1::upstream::{self, ConnectError, UpConn, MAX_STALE};
use crate::lb::forwarding::{Failure as FailKind, Forwarding};
use crate::lb::target_group::{Backend, TargetGroup};

/// A failed attempt, and whether the request can still be sent to another target.
#[derive(Debug, Clone, Copy)]
pub(super) struct Failed {
    kind: FailKind,
    resend: bool,
}

/// Why a request body could not be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyError {
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

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Forward to an HTTP/1 target group: pick a target (the sticky one, if any), try it, and
    /// retry once on another when the request can be sent again.
    pub(super) async fn forward(
        &mut self,
        group: &TargetGroup,
        sticky: Option<Arc<Backend>>,
        ex: &mut Exchange,
    ) -> Served {
        // Body bytes that arrived with the head go out with it.
        if let Err(e) = self.inline_body(ex) {
            return Box::pin(self.body_failed(e, ex)).await;
        }
        // Everything read is in `up_out` now: the read buffer goes back while the target
        // answers (a read of more body takes one again), so a burst of connections waiting
        // for their targets does not hold a read buffer each.
        self.inbuf.release();
        let Some(mut fwd) = Forwarding::request(group, sticky).await else {
            tracing::debug!(group = group.name(), "no routable target");
            return self
                .respond(Generated::NoTargets.response(), ex, true)
                .await;
        };
        loop {
            let failed = match self.attempt(&fwd, ex).await {
                Ok(served) => return served,
                Err(f) => f,
            };
            if !fwd.retry(failed.kind, failed.resend) {
                let answer = fwd.give_up(failed.kind).response();
                return self.respond(answer, ex, true).await;
            }
        }
    }

    /// Move the body bytes already read (up to the end of the body) behind the head in
    /// `up_out`, checking chunked framing and the size limit before anything is sent.
    pub(super) fn inline_body(&mut self, ex: &mut Exchange) -> Result<(), BodyError> {
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
    pub(super) async fn attempt(
        &mut self,
        fwd: &Forwarding<'_>,
        ex: &mut Exchange,
    ) -> Result<Served, Failed> {
        let ctx = Arc::clone(&self.ctx);
        let backend = fwd.target();
        let in_flight = fwd.begin();
        let fail = |kind: FailKind, resend: bool| Failed { kind, resend };
        let replayable = ex.idempotent && ex.complete;
        let mut stale = 0;
        loop {
            let (mut up, reused, sent_at) = match self.send(fwd, stale).await {
                Sending::Sent(up, reused, sent_at) => (up, reused, sent_at),
                Sending::Stale => {
                    stale += 1;
                    continue;
                }
                Sending::Failed(kind) => return Err(fail(kind, true)),
            };
            let armed = self.arm_try_deadline(fwd, replayable, sent_at);
            let cookie = fwd.cookie();
            let side = ClientSide {
                is_head: ex.is_head,
                http10: ex.http10,
                close: ex.close || ctx.drain.is_stopping(),
                upgrade: false,
                cookie: cookie.as_ref().map(HeaderValue::as_bytes),
            };
            let exchanged = if ex.cursor.is_done() {
                self.download(&mut up, &side, fwd, sent_at, armed).await
            } else {
                // Rare and large: kept off the connection's own state.
                Box::pin(self.duplex(&mut up, &side, fwd, sent_at, ex)).await
            };
            let answer = match exchanged {
                Exchanged::Answered(answer) => answer,
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
            return Ok(self.settle(fwd, up, answer, sent_at, ex).await);
        }
    }

    /// Sets the timer to the target group's per-try deadline when it applies (a request that
    /// can be sent again, a deadline before the idle timeout's): whether it did.
    fn arm_try_deadline(
        &mut self,
        fwd: &Forwarding<'_>,
        replayable: bool,
        sent_at: std::time::Instant,
    ) -> bool {
        let idle = self.ctx.config.idle_timeout;
        let Some(by) = fwd.try_deadline(replayable, sent_at, idle) else {
            return false;
        };
        self.timer.set(Instant::from_std(by));
        true
    }

    /// Take a connection to `backend` (a pooled one unless `stale` were found closed) and
    /// write the request in `up_out` to it; also whether it was pooled, and when it was sent.
    async fn send(&mut self, fwd: &Forwarding<'_>, stale: usize) -> Sending {
        let backend = fwd.target();
        let idle = self.ctx.config.idle_timeout;
        let connect_timeout = fwd.connect_timeout();
        let (mut up, reused, sent_at) =
            match upstream::checkout(backend, idle, connect_timeout, stale).await {
                Ok(got) => got,
                Err(ConnectError::Timeout) => return Sending::Failed(FailKind::ConnectTimeout),
                Err(ConnectError::Io(_)) => return Sending::Failed(FailKind::ConnectFailed),
            };
        let by = Instant::from_std(sent_at) + idle;
        self.timer.set(by);
        match up.send(&self.up_out, by).await {
            Ok(()) => Sending::Sent(up, reused, sent_at),
            Err(e) => {
                // Nothing was taken from the client beyond `up_out`: it can be sent again.
                tracing::debug!(target = %backend.addr, error = %e, reused, "send failed");
                if reused {
                    Sending::Stale
                } else {
                    Sending::Failed(FailKind::Closed)
                }
            }
        }
    }

    /// The target answered: whether the client connection carries on, whether the target
    /// connection goes back to the pool, and the outcome. An answer whose body broke before
    /// any byte of it reached the client becomes a 502 instead.
    async fn settle(
        &mut self,
        fwd: &Forwarding<'_>,
        up: UpConn,
        answer: Answer,
        sent_at: std::time::Instant,
        ex: &mut Exchange,
    ) -> Served {
        let Answer {
            parsed,
            headers_at,
            relayed,
        } = answer;
        let backend = fwd.target();
        let body_done = ex.cursor.is_done();
        let keep = match relayed {
            Ok(()) if body_done && !parsed.close_client => Keep::Yes,
            Ok(()) => Keep::No,
            Err(Relay::Unsent) => {
                fwd.broke_off();
                tracing::info!(target = %backend.addr, "invalid response body from target");
                return self
                    .respond(Generated::BadGateway.response(), ex, true)
                    .await;
            }
            Err(Relay::Target) => {
                fwd.broke_off();
                Keep::No
            }
            Err(Relay::Client) => Keep::No,
        };
        if relayed.is_ok() && parsed.reusable && body_done && up.buf.is_empty() {
            // Parked as of now, not as of the head: the body may have taken long, and the
            // pool keeps its entries in the order they were parked.
            let idle = self.ctx.config.idle_timeout;
            backend.pool.h1.put(up, idle, std::time::Instant::now());
        }
        Served {
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
        }
    }

    /// The request was sent whole: read the target's answer and relay it. With the per-try
    /// deadline `armed` on the timer, a head that does not come by then is a `TryTimeout`,
    /// and one that does gives the body the idle timeout from its arrival.
    pub(super) async fn download(
        &mut self,
        up: &mut UpConn,
        side: &ClientSide<'_>,
        fwd: &Forwarding<'_>,
        sent_at: std::time::Instant,
        armed: bool,
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
            Err(FailKind::NoHeaders) if armed => return Exchanged::NoAnswer(FailKind::TryTimeout),
            Err(kind) => return Exchanged::NoAnswer(kind),
        };
        if armed {
            self.timer.set(Instant::now() + idle);
        }
        let headers_at = fwd.answered(parsed.status, sent_at);
        let mut relay = Relayer {
            out: &mut self.out,
            timer: &mut self.timer,
            idle,
        };
        let relayed = relay
            .response(&mut up.stream, &mut up.buf, &mut self.io, &parsed)
            .await;
        Exchanged::Answered(Answer {
            parsed,
            headers_at,
            relayed,
        })
    }

    /// The request body is still coming: send it while reading and relaying the answer, both
    /// at once (a target may answer early, or stream its answer while it reads, like an echo).
    pub(super) async fn duplex(
        &mut self,
        up: &mut UpConn,
        side: &ClientSide<'_>,
        fwd: &Forwarding<'_>,
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
            let headers_at = fwd.answered(parsed.status, sent_at);
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
                    Ok((parsed, headers_at, relayed)) => Exchanged::Answered(Answer { parsed, headers_at, relayed }),
                    Err(kind) => Exchanged::NoAnswer(kind),
                },
            }
        }
    }
}

/// How an attempt's exchange with the target went.
pub(super) enum Exchanged {
    /// The target answered.
    Answered(Answer),
    /// No (valid) answer came: nothing was sent to the client yet.
    NoAnswer(FailKind),
    /// The request body could not be relayed before any answer.
    BodyFailed(BodyError),
}

/// A target's answer; `relayed` says whether it reached the client whole.
pub(super) struct Answer {
    parsed: Parsed,
    headers_at: std::time::Instant,
    relayed: Result<(), Relay>,
}

/// How sending a request to a target went.
enum Sending {
    Sent(UpConn, bool, std::time::Instant),
    /// A pooled connection turned out closed: try another.
    Stale,
    Failed(FailKind),
}

/// Read a target's response head (skipping interim 1xx answers) and write the client's
/// version of it into `out`.
pub(super) async fn read_response_head<R: AsyncRead + Unpin>(
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
pub(super) async fn upload<R, W>(
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
