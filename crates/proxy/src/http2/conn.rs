//! One HTTP/2 client connection (RFC 9113), served by one task: frames are read and written
//! by the connection itself, and each stream's exchange with its target is a future the
//! connection polls among the others (no task per stream, no channel per frame). A stream's
//! request becomes `http` types for the forwarding path; its response's HEADERS and first DATA
//! go out in one write.
//!
//! What a hostile client can make one connection hold or do is bounded (RFC 9113 §10.5):
//! - Output: what was written is flushed before more input is read, so a client that does not
//!   read — or floods PING or SETTINGS, whose acknowledgements it must take — stops being read
//!   instead of filling a queue; a write that makes no progress for the idle timeout closes the
//!   connection, and gathering answers stops at [`OUT_HIGH`] bytes to write them. An answer
//!   parked for want of window for the idle timeout has its stream reset (CANCEL), so a client
//!   that gives no window cannot hold target connections.
//! - Targets: an exchange waits for its target within the idle timeout of each wait (the
//!   answer's head, each part of its body), so no stream is open for ever.
//! - Request bodies: the receive windows (see [`super::recv`]).
//! - Header blocks: `4 × max_header_bytes`, [`MAX_CONTINUATIONS`] frames, and the listener's
//!   header read timeout from the first frame of the block (slowloris).
//! - Streams: [`MAX_CONCURRENT_STREAMS`] at once. A stream reset by the client has its exchange
//!   dropped at once (its target connection is kept only if the rest of the answer is cheap to
//!   read, see [`crate::http1::salvage`]), and resets and stream errors beyond
//!   what completed responses and time earn close the connection with ENHANCE_YOUR_CALM
//!   ("rapid reset", CVE-2023-44487).
//! - The idle timeout counts from the last frame other than PING (as ALB: PING does not keep a
//!   connection open) while no stream is open.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::frame::{self, setting, Reason};
use super::hpack;
use super::recv::{Credits, Sender};
use crate::body::ProxyBody;
use crate::ctx::ConnCtx;
use crate::http1::{Deadline, InBuf, OutBuf};

/// Streams a client may have open at once (RFC 9113 recommends at least 100; ALB allows 128).
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Window we give each stream and the connection for request bodies: large enough that an
/// upload rarely waits for a WINDOW_UPDATE, small enough to bound what one connection buffers.
const RECV_WINDOW: u32 = 1 << 20;

/// Credit consumed window back once this much (or the stream's end) is reached.
const CREDIT_BATCH: u32 = RECV_WINDOW / 4;

/// CONTINUATION frames one header block may take: a block at its size limit fits in far
/// fewer; more is a flood of (possibly empty) frames that would otherwise cost nothing to send.
const MAX_CONTINUATIONS: u32 = 64;

/// Stream resets and stream errors a client may cause before completed responses or time earn
/// them back: a browser leaving a page or a gRPC client cancelling its calls stays far below;
/// opening and resetting streams in a loop, which makes targets work for nothing, does not.
const RESET_BUDGET: u32 = 2 * MAX_CONCURRENT_STREAMS;

/// Resets earned back per second (on top of one per completed response).
const RESET_REFILL_PER_SEC: u32 = MAX_CONCURRENT_STREAMS;

/// Streams we reset recently, whose frames still in flight from the client are ignored rather
/// than taken for protocol errors (RFC 9113 §5.1, "closed").
const RECENT_RESETS: usize = 32;

/// Output waiting to be written after which no more answers are gathered before writing.
const OUT_HIGH: usize = 256 * 1024;

/// How long closing waits for the client to take the last frames (GOAWAY, TLS close_notify).
const CLOSE_STALL: Duration = Duration::from_secs(2);

/// A connection-level error: GOAWAY with this reason, then close.
#[derive(Debug, Clone, Copy)]
struct ConnError(Reason);

#[cfg(test)]
mod idle_tests;
mod input;
mod output;
mod task;

use task::{Budget, Event, StreamIdHasher, Task};

/// One open stream.
struct Stream {
    /// The request body's queue while the client may still send DATA.
    recv: Option<Sender>,
    /// The declared `content-length` of the request, and DATA received so far.
    declared: Option<u64>,
    received: u64,
    /// Window the client may still use on this stream.
    recv_window: i64,
    /// Consumed by the body but not yet credited back to the stream's window.
    uncredited: u32,
    /// Received DATA the connection's window still holds for this stream (released as the
    /// body takes it, or when the stream goes).
    held: u32,
    /// Window we may still use to send on this stream.
    send_window: i64,
    /// A response body waiting for window (not being polled), with data not yet sent.
    parked: Option<Parked>,
    /// END_STREAM sent: the response is complete.
    sent_end: bool,
}

impl Stream {
    fn done(&self) -> bool {
        self.sent_end && self.recv.is_none()
    }
}

/// A response body that waits for the client to give window, with the data it could not send.
struct Parked {
    body: ProxyBody,
    data: Bytes,
    /// When it began to wait: after the idle timeout without window the stream is reset.
    since: Instant,
}

/// A header block being assembled from HEADERS and CONTINUATION frames.
#[derive(Debug, Clone, Copy)]
struct Block {
    stream: u32,
    /// HEADERS carried END_STREAM.
    end_stream: bool,
    /// HEADERS made the stream depend on itself: a stream error once the block is decoded.
    self_dependent: bool,
    /// CONTINUATION frames so far.
    continuations: u32,
}

/// The connection's state.
struct Conn<S> {
    io: S,
    ctx: Arc<ConnCtx>,
    inbuf: InBuf,
    out: OutBuf,
    /// Scratch space for header blocks.
    block: OutBuf,
    /// The payload of the frame being handled (other than DATA, which the body keeps).
    payload: OutBuf,
    decoder: hpack::Decoder,
    encoder: hpack::Encoder,
    streams: HashMap<u32, Stream, BuildHasherDefault<StreamIdHasher>>,
    tasks: FuturesUnordered<Task>,
    credits: Arc<Mutex<Credits>>,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// The header block being assembled, if any.
    continuing: Option<Block>,
    /// The client's first frame, its SETTINGS, was seen (RFC 9113 §3.4).
    settings_seen: bool,
    /// The peer's settings.
    peer_initial_window: i64,
    peer_max_frame: usize,
    /// Connection-level windows.
    send_window: i64,
    recv_window: i64,
    conn_uncredited: u32,
    /// GOAWAY sent or received: no new streams; close when the last one is done.
    going_away: bool,
    /// Something other than PING happened since the idle deadline was last moved.
    active: bool,
    /// The idle timeout while no stream is open; the header read timeout while a header block
    /// is incomplete.
    timer: Deadline,
    /// The earliest time a parked stream's wait for window runs out (made when a stream first
    /// parks), and whether it is armed (some stream is parked).
    stall: Option<Deadline>,
    stall_armed: bool,
    resets: Budget,
    /// Ring of the streams we reset last (0: none).
    recent_resets: [u32; RECENT_RESETS],
    recent_next: usize,
}

/// Serve HTTP/2 on `io`, whose first bytes `read` were already taken from it (the preface, or
/// part of it, when sniffed; empty after ALPN).
pub(crate) async fn serve<S>(io: S, read: Vec<u8>, ctx: Arc<ConnCtx>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let idle = ctx.config.idle_timeout;
    let max_header_list = u32::try_from(ctx.limits.max_header_bytes).unwrap_or(u32::MAX);
    let mut inbuf = InBuf::new();
    inbuf.push(&read);
    let now = Instant::now();
    let mut c = Conn {
        io,
        ctx,
        inbuf,
        out: OutBuf::new(),
        block: OutBuf::new(),
        payload: OutBuf::new(),
        decoder: hpack::Decoder::new(4096),
        encoder: hpack::Encoder::new(),
        streams: HashMap::default(),
        tasks: FuturesUnordered::new(),
        credits: Arc::new(Mutex::new(Credits::default())),
        last_stream: 0,
        continuing: None,
        settings_seen: false,
        peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
        peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
        send_window: i64::from(frame::DEFAULT_WINDOW),
        recv_window: i64::from(RECV_WINDOW),
        conn_uncredited: 0,
        going_away: false,
        active: false,
        timer: Deadline::new(now + idle),
        stall: None,
        stall_armed: false,
        resets: Budget {
            tokens: RESET_BUDGET,
            refilled: now,
        },
        recent_resets: [0; RECENT_RESETS],
        recent_next: 0,
    };
    frame::settings(
        &mut c.out,
        &[
            (setting::MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
            (setting::INITIAL_WINDOW_SIZE, RECV_WINDOW),
            (setting::MAX_HEADER_LIST_SIZE, max_header_list),
        ],
    );
    frame::window_update(&mut c.out, 0, RECV_WINDOW - frame::DEFAULT_WINDOW);
    if let Err(ConnError(reason)) = c.run().await {
        tracing::debug!(client = %c.ctx.peer, ?reason, "HTTP/2 connection error");
        frame::goaway(&mut c.out, c.last_stream, reason);
    }
    // Dropping the exchanges still running gives their target connections up.
    c.tasks.clear();
    let linger = c.ctx.config.idle_timeout.min(CLOSE_STALL);
    let _ = c.flush(linger).await;
    let _ = bounded(c.io.shutdown(), linger).await;
}

/// Resolves when the stall deadline (if any) passes.
async fn stall_expired(stall: &mut Option<Deadline>) {
    match stall {
        Some(t) => t.expired().await,
        None => std::future::pending().await,
    }
}

/// `fut`, given up after `limit` if it does not finish at once (no timer for one that does).
async fn bounded<F: Future>(fut: F, limit: Duration) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(v) => Some(v),
        Poll::Pending => tokio::time::timeout(limit, fut).await.ok(),
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self) -> Result<(), ConnError> {
        let drain = Arc::clone(&self.ctx.drain);
        let stopped = drain.stopped();
        tokio::pin!(stopped);
        let mut stop_seen = false;
        // Bytes handed over with the connection may hold the preface and the first frames.
        let mut preface = !self.inbuf.is_empty() && self.preface()?;
        if preface {
            self.read_frames()?;
        }
        loop {
            self.take_credits();
            if !self.out.is_empty() {
                crate::net::pass::end_of_pass().await;
            }
            if !self.out.is_empty() && self.flush(self.ctx.config.idle_timeout).await.is_err() {
                return Ok(());
            }
            let idle = self.streams.is_empty() && self.tasks.is_empty();
            if self.going_away && idle {
                return Ok(());
            }
            let header_wait = self.continuing.is_some();
            if idle && !header_wait {
                // Nothing open and everything written: hold no buffer while waiting (the read
                // takes one when bytes arrive).
                self.release();
            }
            if idle && self.active && !header_wait {
                self.timer
                    .set(Instant::now() + self.ctx.config.idle_timeout);
                self.active = false;
            }
            // Not biased: a target streaming fast must not keep the client's frames (its
            // resets, window updates and new requests) from being read.
            tokio::select! {
                Some(ev) = self.tasks.next(), if !self.tasks.is_empty() => {
                    self.active = true;
                    if let Some(ev) = ev {
                        self.on_event(ev);
                    }
                    // Gather whatever else is ready before writing.
                    while self.out.len() < OUT_HIGH {
                        match self.tasks.next().now_or_never() {
                            Some(Some(Some(ev))) => self.on_event(ev),
                            Some(Some(None)) => {}
                            _ => break,
                        }
                    }
                }
                () = credited(&self.credits) => {}
                read = self.inbuf.read_from(&mut self.io, 2 * frame::DEFAULT_MAX_FRAME_SIZE as usize) => {
                    match read {
                        Ok(n) if n > 0 => {}
                        _ => return Ok(()),
                    }
                    if !preface && !self.preface()? {
                        continue;
                    }
                    preface = true;
                    self.read_frames()?;
                }
                () = stall_expired(&mut self.stall), if self.stall_armed => self.expire_stalled(),
                () = self.timer.expired(), if idle || header_wait => {
                    if header_wait {
                        tracing::debug!(client = %self.ctx.peer, "HTTP/2 header block not completed in time");
                    }
                    frame::goaway(&mut self.out, self.last_stream, Reason::NoError);
                    return Ok(());
                }
                () = stopped.as_mut(), if !stop_seen => {
                    stop_seen = true;
                    self.going_away = true;
                    frame::goaway(&mut self.out, self.last_stream, Reason::NoError);
                }
            }
        }
    }

    /// Give back the buffers: no stream is open and the output is written.
    fn release(&mut self) {
        self.out.release();
        self.block.release();
        self.payload.release();
        self.inbuf.release();
    }

    /// Check and take the client's connection preface; `false` while it is incomplete.
    fn preface(&mut self) -> Result<bool, ConnError> {
        let buf = self.inbuf.filled();
        let n = buf.len().min(frame::PREFACE.len());
        if buf[..n] != frame::PREFACE[..n] {
            return Err(ConnError(Reason::ProtocolError));
        }
        if n < frame::PREFACE.len() {
            return Ok(false);
        }
        self.inbuf.consume(frame::PREFACE.len());
        Ok(true)
    }

    /// Write `out`. The timer that fails a write the client takes nothing of for `stall` (it
    /// does not read) is only set once the write would block.
    async fn flush(&mut self, stall: Duration) -> io::Result<()> {
        let mut at = 0;
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let (stream, out) = (&mut self.io, &self.out[..]);
        let res = std::future::poll_fn(|cx| loop {
            let step = if at < out.len() {
                Pin::new(&mut *stream)
                    .poll_write(cx, &out[at..])
                    .map_ok(Some)
            } else {
                Pin::new(&mut *stream).poll_flush(cx).map_ok(|()| None)
            };
            match step {
                Poll::Ready(Ok(Some(0))) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)))
                }
                Poll::Ready(Ok(Some(n))) => {
                    at += n;
                    if let Some(t) = timer.as_mut() {
                        t.as_mut().reset(Instant::now() + stall);
                    }
                }
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::TimedOut)));
                    }
                    return Poll::Pending;
                }
            }
        })
        .await;
        self.out.clear();
        res
    }

    /// Credit back window the bodies consumed.
    fn take_credits(&mut self) {
        let taken = {
            let mut c = self.credits.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut c.taken)
        };
        for (id, n) in taken {
            let Some(s) = self.streams.get_mut(&id) else {
                // Released when the stream went.
                continue;
            };
            let n = n.min(s.held);
            s.held -= n;
            self.conn_uncredited += n;
            s.uncredited += n;
            if s.recv.is_some() && s.uncredited >= CREDIT_BATCH {
                frame::window_update(&mut self.out, id, s.uncredited);
                s.recv_window += i64::from(s.uncredited);
                s.uncredited = 0;
            }
        }
        if self.conn_uncredited >= CREDIT_BATCH {
            frame::window_update(&mut self.out, 0, self.conn_uncredited);
            self.recv_window += i64::from(self.conn_uncredited);
            self.conn_uncredited = 0;
        }
    }
}

/// Resolves when a body took data since the connection last credited (the connection's waker
/// is stored for the bodies to wake).
async fn credited(credits: &Mutex<Credits>) {
    std::future::poll_fn(|cx| {
        let mut c = credits.lock().unwrap_or_else(|e| e.into_inner());
        if c.taken.is_empty() {
            c.waker = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}
