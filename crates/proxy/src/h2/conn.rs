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
//!   connection, and gathering answers stops at [`OUT_HIGH`] bytes to write them.
//! - Request bodies: the receive windows (see [`super::recv`]).
//! - Header blocks: `4 × max_header_bytes`, [`MAX_CONTINUATIONS`] frames, and the listener's
//!   header read timeout from the first frame of the block (slowloris).
//! - Streams: [`MAX_CONCURRENT_STREAMS`] at once. A stream reset by the client has its exchange
//!   dropped at once (the target connection is given up), and resets and stream errors beyond
//!   what completed responses and time earn close the connection with ENHANCE_YOUR_CALM
//!   ("rapid reset", CVE-2023-44487).
//! - The idle timeout counts from the last frame other than PING (as ALB: PING does not keep a
//!   connection open) while no stream is open.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use http::header::{self, HeaderMap};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::frame::{self, flag, kind, setting, Head, Reason, HEADER_LEN};
use super::hpack;
use super::recv::{self, Credits, Sender};
use super::request::{Invalid, RequestBuilder, TrailerBuilder};
use crate::body::{BoxError, ProxyBody, ReqBody};
use crate::h1::{Deadline, InBuf, OutBuf, RawFields};
use crate::server::{handle, ConnCtx};

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

/// What a stream's future produced.
enum Event {
    /// The response head, with the body and its first frame (so that both go out together).
    Response {
        id: u32,
        parts: http::response::Parts,
        body: ProxyBody,
        first: Option<Result<Frame<Bytes>, BoxError>>,
    },
    /// The body's next frame.
    Frame {
        id: u32,
        body: ProxyBody,
        frame: Option<Result<Frame<Bytes>, BoxError>>,
    },
}

/// A stream's exchange, or its response body's next frame, as the connection polls it (one at
/// a time per stream). Cancelling drops the future at once; the empty task then ends (`None`)
/// at its next poll.
struct Task {
    id: u32,
    fut: Option<Work>,
    /// This task's waker in `tasks` (taken at its first poll), to have it polled once more
    /// and removed when it is cancelled.
    waker: Option<Waker>,
}

/// What a task waits for: a stream's exchange (boxed once per stream), or the next frame of
/// its response body, polled in place (no allocation per DATA frame).
enum Work {
    Exchange(Pin<Box<dyn Future<Output = Event> + Send>>),
    Body(Option<ProxyBody>),
}

/// Hashes stream ids for the stream map with one multiplication instead of SipHash: the map
/// is looked up several times per request, and holds at most `MAX_CONCURRENT_STREAMS` ids,
/// which the client must open in increasing order, so collisions it could aim for stay few.
#[derive(Default)]
struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used by `u32` keys; this keeps the hasher total anyway.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        // Fibonacci hashing spreads increasing ids over the high bits hashbrown groups by.
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Task {
    fn new(id: u32, fut: impl Future<Output = Event> + Send + 'static) -> Task {
        Task {
            id,
            fut: Some(Work::Exchange(Box::pin(fut))),
            waker: None,
        }
    }

    fn next_frame(id: u32, body: ProxyBody) -> Task {
        Task {
            id,
            fut: Some(Work::Body(Some(body))),
            waker: None,
        }
    }
}

impl Future for Task {
    type Output = Option<Event>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        let Some(fut) = this.fut.as_mut() else {
            return Poll::Ready(None);
        };
        if this.waker.is_none() {
            // FuturesUnordered gives each task one waker for its life.
            this.waker = Some(cx.waker().clone());
        }
        match fut {
            Work::Exchange(f) => f.as_mut().poll(cx).map(Some),
            Work::Body(slot) => {
                let Some(body) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                let id = this.id;
                Poll::Ready(slot.take().map(|body| Event::Frame { id, body, frame }))
            }
        }
    }
}

/// A token bucket of the resets and stream errors a client may still cause (see
/// [`RESET_BUDGET`]); the clock is only read when one is spent.
struct Budget {
    tokens: u32,
    refilled: Instant,
}

impl Budget {
    fn spend(&mut self) {
        let now = Instant::now();
        let per_token = Duration::from_secs(1) / RESET_REFILL_PER_SEC;
        let earned = now.saturating_duration_since(self.refilled).as_nanos() / per_token.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(RESET_BUDGET);
            self.refilled = now;
        }
        self.tokens = self.tokens.saturating_sub(1);
    }

    fn earn(&mut self) {
        self.tokens = (self.tokens + 1).min(RESET_BUDGET);
    }

    fn spent(&self) -> bool {
        self.tokens == 0
    }
}

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
    parked: Option<(ProxyBody, Bytes)>,
    /// END_STREAM sent: the response is complete.
    sent_end: bool,
}

impl Stream {
    fn done(&self) -> bool {
        self.sent_end && self.recv.is_none()
    }
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
    block: Vec<u8>,
    /// The payload of the frame being handled (other than DATA, which the body keeps).
    payload: Vec<u8>,
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
        block: Vec::new(),
        payload: Vec::new(),
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
                crate::pass::end_of_pass().await;
            }
            if !self.out.is_empty() && self.flush(self.ctx.config.idle_timeout).await.is_err() {
                return Ok(());
            }
            let idle = self.streams.is_empty() && self.tasks.is_empty();
            if self.going_away && idle {
                return Ok(());
            }
            let header_wait = self.continuing.is_some();
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

    /// Parse and handle every complete frame in `inbuf`.
    fn read_frames(&mut self) -> Result<(), ConnError> {
        loop {
            let buf = self.inbuf.filled();
            if buf.len() < HEADER_LEN {
                return Ok(());
            }
            let h = Head::parse(buf);
            if h.len > frame::DEFAULT_MAX_FRAME_SIZE as usize {
                return Err(ConnError(Reason::FrameSizeError));
            }
            if buf.len() < HEADER_LEN + h.len {
                return Ok(());
            }
            // The client's first frame is its SETTINGS (§3.4).
            if !self.settings_seen {
                if h.kind != kind::SETTINGS || h.has(flag::ACK) {
                    return Err(ConnError(Reason::ProtocolError));
                }
                self.settings_seen = true;
            }
            // Nothing comes between the frames of a header block (§6.10).
            if let Some(b) = self.continuing {
                if h.kind != kind::CONTINUATION || h.stream != b.stream {
                    return Err(ConnError(Reason::ProtocolError));
                }
            }
            if h.kind != kind::PING {
                self.active = true;
            }
            let payload = &buf[HEADER_LEN..HEADER_LEN + h.len];
            if h.kind == kind::DATA {
                let data = Bytes::copy_from_slice(payload);
                self.inbuf.consume(HEADER_LEN + h.len);
                self.on_data(&h, data)?;
            } else {
                // Copied into a buffer the connection keeps: no allocation per frame.
                let mut scratch = std::mem::take(&mut self.payload);
                scratch.clear();
                scratch.extend_from_slice(payload);
                self.inbuf.consume(HEADER_LEN + h.len);
                let res = self.on_frame(&h, &scratch);
                self.payload = scratch;
                res?;
            }
            if self.resets.spent() {
                return Err(ConnError(Reason::EnhanceYourCalm));
            }
        }
    }

    /// A stream the client has not opened: even ids are ours (we open none), odd ones above
    /// the last it opened are still to come (RFC 9113 §5.1.1).
    fn is_idle(&self, id: u32) -> bool {
        id % 2 == 0 || id > self.last_stream
    }

    /// A frame other than DATA.
    fn on_frame(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
        match h.kind {
            kind::HEADERS => self.on_headers(h, payload),
            kind::CONTINUATION => {
                let Some(mut b) = self.continuing else {
                    return Err(ConnError(Reason::ProtocolError));
                };
                b.continuations += 1;
                self.block.extend_from_slice(payload);
                let max_block = self.ctx.limits.max_header_bytes.saturating_mul(4);
                if b.continuations > MAX_CONTINUATIONS || self.block.len() > max_block {
                    return Err(ConnError(Reason::EnhanceYourCalm));
                }
                if h.has(flag::END_HEADERS) {
                    self.continuing = None;
                    self.header_block(b)
                } else {
                    self.continuing = Some(b);
                    Ok(())
                }
            }
            kind::PRIORITY => {
                if h.stream == 0 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if payload.len() != 5 {
                    self.reset(h.stream, Reason::FrameSizeError);
                } else if dependency(payload) == h.stream {
                    // A stream cannot depend on itself (§5.3.1).
                    self.reset(h.stream, Reason::ProtocolError);
                }
                Ok(())
            }
            kind::RST_STREAM => {
                if h.stream == 0 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if payload.len() != 4 {
                    return Err(ConnError(Reason::FrameSizeError));
                }
                if self.is_idle(h.stream) {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if let Some(s) = self.streams.remove(&h.stream) {
                    // The exchange is dropped: the client no longer wants the answer.
                    if let Some(r) = s.recv {
                        r.reset();
                    }
                    self.conn_uncredited += s.held;
                    self.cancel(h.stream);
                    self.resets.spend();
                }
                Ok(())
            }
            kind::SETTINGS => self.on_settings(h, payload),
            kind::PUSH_PROMISE => Err(ConnError(Reason::ProtocolError)),
            kind::PING => {
                if h.stream != 0 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if payload.len() != 8 {
                    return Err(ConnError(Reason::FrameSizeError));
                }
                if !h.has(flag::ACK) {
                    frame::ping_ack(&mut self.out, payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if h.stream != 0 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if payload.len() < 8 {
                    return Err(ConnError(Reason::FrameSizeError));
                }
                self.going_away = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(h, payload),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return Err(ConnError(Reason::ProtocolError));
        }
        if h.has(flag::ACK) {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(ConnError(Reason::FrameSizeError))
            };
        }
        if payload.len() % 6 != 0 {
            return Err(ConnError(Reason::FrameSizeError));
        }
        for pair in payload.chunks(6) {
            let id = u16::from_be_bytes([pair[0], pair[1]]);
            let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
            match id {
                setting::HEADER_TABLE_SIZE => {
                    self.encoder.set_max_table_size(value as usize);
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(ConnError(Reason::ProtocolError));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if value > frame::MAX_WINDOW {
                        return Err(ConnError(Reason::FlowControlError));
                    }
                    // Applies to every open stream (§6.9.2); none may go above the maximum.
                    let delta = i64::from(value) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(value);
                    let mut overflow = false;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        overflow |= s.send_window > i64::from(frame::MAX_WINDOW);
                    }
                    if overflow {
                        return Err(ConnError(Reason::FlowControlError));
                    }
                    self.unpark_all();
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=(1 << 24) - 1).contains(&value) {
                        return Err(ConnError(Reason::ProtocolError));
                    }
                    self.peer_max_frame = value as usize;
                }
                _ => {}
            }
        }
        frame::settings_ack(&mut self.out);
        Ok(())
    }

    fn on_window_update(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(ConnError(Reason::FrameSizeError));
        }
        let inc = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                & frame::MAX_WINDOW,
        );
        if h.stream == 0 {
            if inc == 0 {
                return Err(ConnError(Reason::ProtocolError));
            }
            self.send_window += inc;
            if self.send_window > i64::from(frame::MAX_WINDOW) {
                return Err(ConnError(Reason::FlowControlError));
            }
            self.unpark_all();
            return Ok(());
        }
        if self.is_idle(h.stream) {
            return Err(ConnError(Reason::ProtocolError));
        }
        let Some(s) = self.streams.get_mut(&h.stream) else {
            // A closed stream's late update is harmless.
            return Ok(());
        };
        if inc == 0 {
            self.reset(h.stream, Reason::ProtocolError);
            return Ok(());
        }
        s.send_window += inc;
        if s.send_window > i64::from(frame::MAX_WINDOW) {
            self.reset(h.stream, Reason::FlowControlError);
            return Ok(());
        }
        self.unpark(h.stream);
        Ok(())
    }

    fn on_data(&mut self, h: &Head, payload: Bytes) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(ConnError(Reason::ProtocolError));
        }
        // At most the frame size limit.
        let len = h.len as u32;
        self.recv_window -= i64::from(len);
        if self.recv_window < 0 {
            return Err(ConnError(Reason::FlowControlError));
        }
        // The whole frame counts against the windows; credit the connection's share now if
        // the stream cannot take it.
        let range = frame::unpad(h, &payload).map_err(ConnError)?;
        let Some(s) = self.streams.get_mut(&h.stream) else {
            self.conn_uncredited += len;
            if self.is_idle(h.stream) {
                return Err(ConnError(Reason::ProtocolError));
            }
            // Closed. Sent before the client saw our reset: ignored; else reset once.
            if !self.was_reset(h.stream) {
                self.send_rst(h.stream, Reason::StreamClosed);
            }
            return Ok(());
        };
        let Some(sender) = s.recv.clone() else {
            // Half-closed: END_STREAM came already.
            self.conn_uncredited += len;
            self.reset(h.stream, Reason::StreamClosed);
            return Ok(());
        };
        s.recv_window -= i64::from(len);
        if s.recv_window < 0 {
            self.conn_uncredited += len;
            self.reset(h.stream, Reason::FlowControlError);
            return Ok(());
        }
        let data = payload.slice(range);
        // Padding is credited at once; the payload when the body takes it.
        let padding = (h.len - data.len()) as u32;
        s.uncredited += padding;
        self.conn_uncredited += padding;
        s.held += data.len() as u32;
        s.received += data.len() as u64;
        if s.declared.is_some_and(|d| s.received > d) {
            // More than declared: to an HTTP/1 target this would be a second request. Nothing
            // of this frame reaches the body.
            self.reset(h.stream, Reason::ProtocolError);
            return Ok(());
        }
        if !data.is_empty() {
            sender.data(data);
        }
        if h.has(flag::END_STREAM) {
            if s.declared.is_some_and(|d| s.received != d) {
                self.reset(h.stream, Reason::ProtocolError);
                return Ok(());
            }
            sender.end(None);
            s.recv = None;
            self.remove_if_done(h.stream);
        }
        Ok(())
    }

    fn on_headers(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(ConnError(Reason::ProtocolError));
        }
        let mut range = frame::unpad(h, payload).map_err(ConnError)?;
        let mut self_dependent = false;
        if h.has(flag::PRIORITY) {
            if range.len() < 5 {
                return Err(ConnError(Reason::FrameSizeError));
            }
            self_dependent = dependency(&payload[range.start..]) == h.stream;
            range.start += 5;
        }
        self.block.clear();
        self.block.extend_from_slice(&payload[range]);
        let b = Block {
            stream: h.stream,
            end_stream: h.has(flag::END_STREAM),
            self_dependent,
            continuations: 0,
        };
        if !h.has(flag::END_HEADERS) {
            self.continuing = Some(b);
            // The rest of the block must come within the header read timeout (slowloris).
            self.timer
                .set(Instant::now() + self.ctx.limits.header_read_timeout);
            return Ok(());
        }
        self.header_block(b)
    }

    /// A complete header block: a new request, or the trailers of an open one.
    fn header_block(&mut self, b: Block) -> Result<(), ConnError> {
        let block = std::mem::take(&mut self.block);
        let res = self.header_block_inner(b, &block);
        self.block = block;
        res
    }

    /// Decode a block nobody will use: the decoder's table must stay in step with the client's.
    fn discard_block(&mut self, block: &[u8]) -> Result<(), ConnError> {
        self.decoder
            .decode(block, &mut |_: &[u8], _: &[u8]| Ok::<(), ()>(()))
            .map_err(|_| ConnError(Reason::CompressionError))
    }

    fn header_block_inner(&mut self, b: Block, block: &[u8]) -> Result<(), ConnError> {
        let (id, end_stream) = (b.stream, b.end_stream);
        let limit = self.ctx.limits.max_header_bytes;
        if self.streams.contains_key(&id) {
            // Trailers: only while the request body is open, and they end it.
            let mut trailers = TrailerBuilder::new(limit);
            if let Err(hpack::DecodeOutcome::Compression(_)) = self
                .decoder
                .decode(block, &mut |name: &[u8], value: &[u8]| {
                    trailers.field(name, value)
                })
            {
                return Err(ConnError(Reason::CompressionError));
            }
            let Some(s) = self.streams.get_mut(&id) else {
                return Ok(());
            };
            let length_ok = s.declared.is_none_or(|d| s.received == d);
            let Some(sender) = s.recv.take() else {
                self.reset(id, Reason::StreamClosed);
                return Ok(());
            };
            match trailers.finish() {
                Ok(t) if end_stream && length_ok && !b.self_dependent => {
                    sender.end(Some(t));
                    self.remove_if_done(id);
                }
                _ => {
                    sender.reset();
                    self.reset(id, Reason::ProtocolError);
                }
            }
            return Ok(());
        }
        if id % 2 == 0 {
            self.discard_block(block)?;
            return Err(ConnError(Reason::ProtocolError));
        }
        if id <= self.last_stream {
            self.discard_block(block)?;
            // Trailers the client sent before it saw our reset of the stream are ignored;
            // anything else on a closed or skipped stream id is an error (§5.1.1).
            if end_stream && self.was_reset(id) {
                return Ok(());
            }
            return Err(ConnError(Reason::ProtocolError));
        }
        self.last_stream = id;
        let mut req = RequestBuilder::new(limit);
        let decoded = self
            .decoder
            .decode(block, &mut |name: &[u8], value: &[u8]| {
                req.field(name, value)
            });
        match decoded {
            Ok(()) => {}
            Err(hpack::DecodeOutcome::Compression(_)) => {
                return Err(ConnError(Reason::CompressionError))
            }
            Err(hpack::DecodeOutcome::Rejected(())) => {}
        }
        if self.going_away || self.streams.len() >= MAX_CONCURRENT_STREAMS as usize {
            self.reset(id, Reason::RefusedStream);
            return Ok(());
        }
        if b.self_dependent {
            self.reset(id, Reason::ProtocolError);
            return Ok(());
        }
        let (parts, length) = match req.finish() {
            Ok(p) => p,
            Err(Invalid::TooLarge) => {
                self.respond_now(
                    id,
                    http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    end_stream,
                );
                return Ok(());
            }
            Err(Invalid::Malformed) => {
                self.reset(id, Reason::ProtocolError);
                return Ok(());
            }
        };
        let (sender, body) = if end_stream {
            if length.is_some_and(|d| d != 0) {
                self.reset(id, Reason::ProtocolError);
                return Ok(());
            }
            (None, ReqBody::empty())
        } else {
            let (s, b) = recv::channel(id, &self.credits, length);
            (Some(s), ReqBody::h2(b))
        };
        self.streams.insert(
            id,
            Stream {
                recv: sender,
                declared: length,
                received: 0,
                recv_window: i64::from(RECV_WINDOW),
                uncredited: 0,
                held: 0,
                send_window: self.peer_initial_window,
                parked: None,
                sent_end: false,
            },
        );
        let ctx = Arc::clone(&self.ctx);
        self.tasks.push(Task::new(id, async move {
            let resp = handle(parts, body, &ctx).await;
            let (parts, mut body) = resp.into_parts();
            let first = if body.is_end_stream() {
                None
            } else {
                body.frame().await
            };
            Event::Response {
                id,
                parts,
                body,
                first,
            }
        }));
        Ok(())
    }

    /// One HEADERS frame (and its CONTINUATIONs) for stream `id`: a response head (`status`)
    /// or trailers, encoded into the connection's reused block buffer.
    fn write_headers(
        &mut self,
        id: u32,
        status: Option<u16>,
        fields: Option<&HeaderMap>,
        raw: Option<&RawFields>,
        end: bool,
    ) {
        let mut block = std::mem::take(&mut self.block);
        block.clear();
        self.encoder.begin(&mut block);
        if let Some(status) = status {
            self.encoder.status(status, &mut block);
        }
        if let Some(raw) = raw {
            // Hop-by-hop fields were left out when the head was parsed.
            raw.for_each(|name, value| self.encoder.field(name, value, &mut block));
        }
        if let Some(fields) = fields {
            encode_fields(&mut self.encoder, fields, &mut block);
        }
        frame::headers(&mut self.out, id, &block, end, self.peer_max_frame);
        self.block = block;
    }

    /// Answer a stream at once with an empty response (its request could not be forwarded).
    fn respond_now(&mut self, id: u32, status: http::StatusCode, request_ended: bool) {
        self.write_headers(id, Some(status.as_u16()), None, None, true);
        if !request_ended {
            self.send_rst(id, Reason::NoError);
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Response {
                id,
                parts,
                mut body,
                first,
            } => {
                if !self.streams.contains_key(&id) {
                    return; // reset meanwhile
                }
                let end = first.is_none() && body.is_end_stream();
                let raw = body.take_fields();
                let status = Some(parts.status.as_u16());
                self.write_headers(id, status, Some(&parts.headers), raw.as_ref(), end);
                if end {
                    self.sent(id);
                } else {
                    self.on_frame_of(id, body, first);
                }
            }
            Event::Frame { id, body, frame } => {
                if self.streams.contains_key(&id) {
                    self.on_frame_of(id, body, frame);
                }
            }
        }
    }

    /// A frame of stream `id`'s response body (`None`: the body ended).
    fn on_frame_of(
        &mut self,
        id: u32,
        body: ProxyBody,
        frame: Option<Result<Frame<Bytes>, BoxError>>,
    ) {
        match frame {
            None => {
                frame::data(&mut self.out, id, &[], true, self.peer_max_frame);
                self.sent(id);
            }
            Some(Err(e)) => {
                tracing::debug!(stream = id, error = %e, "response body failed");
                self.reset(id, Reason::InternalError);
            }
            Some(Ok(f)) => match f.into_data() {
                Ok(data) => self.send_data(id, body, data),
                Err(f) => {
                    let Ok(trailers) = f.into_trailers() else {
                        self.poll_next(id, body);
                        return;
                    };
                    self.write_headers(id, None, Some(&trailers), None, true);
                    self.sent(id);
                }
            },
        }
    }

    /// Send as much of `data` as the windows allow; park the rest with the body.
    fn send_data(&mut self, id: u32, body: ProxyBody, mut data: Bytes) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let room = s.send_window.min(self.send_window).max(0) as usize;
        let n = room.min(data.len());
        let rest = data.split_off(n);
        let end = rest.is_empty() && body.is_end_stream();
        if n > 0 || end {
            frame::data(&mut self.out, id, &data, end, self.peer_max_frame);
            s.send_window -= n as i64;
            self.send_window -= n as i64;
        }
        if end {
            self.sent(id);
        } else if rest.is_empty() {
            self.poll_next(id, body);
        } else {
            s.parked = Some((body, rest));
        }
    }

    /// Ask the body for its next frame.
    fn poll_next(&mut self, id: u32, body: ProxyBody) {
        self.tasks.push(Task::next_frame(id, body));
    }

    fn unpark(&mut self, id: u32) {
        let parked = self.streams.get_mut(&id).and_then(|s| s.parked.take());
        if let Some((body, data)) = parked {
            self.send_data(id, body, data);
        }
    }

    fn unpark_all(&mut self) {
        let ids: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.parked.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if self.send_window <= 0 {
                break;
            }
            self.unpark(id);
        }
    }

    /// The response of `id` is complete.
    fn sent(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.sent_end = true;
        self.resets.earn();
        if let Some(r) = s.recv.take() {
            // The answer is complete while the client still sends: ask it to stop (RFC 9113
            // §8.1); what it sent stays valid.
            r.reset();
            self.send_rst(id, Reason::NoError);
        }
        self.remove_if_done(id);
    }

    fn remove_if_done(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(Stream::done) {
            if let Some(s) = self.streams.remove(&id) {
                self.conn_uncredited += s.held;
            }
        }
    }

    /// Reset a stream: its exchange, if any, is dropped. A reset for the client's fault
    /// spends from its budget.
    fn reset(&mut self, id: u32, reason: Reason) {
        self.send_rst(id, reason);
        if !matches!(reason, Reason::NoError | Reason::InternalError) {
            self.resets.spend();
        }
        if let Some(s) = self.streams.remove(&id) {
            if let Some(r) = s.recv {
                r.reset();
            }
            self.conn_uncredited += s.held;
            self.cancel(id);
        }
    }

    /// Write a RST_STREAM and remember it (see [`RECENT_RESETS`]).
    fn send_rst(&mut self, id: u32, reason: Reason) {
        frame::rst_stream(&mut self.out, id, reason);
        self.recent_resets[self.recent_next % RECENT_RESETS] = id;
        self.recent_next = self.recent_next.wrapping_add(1);
    }

    fn was_reset(&self, id: u32) -> bool {
        id != 0 && self.recent_resets.contains(&id)
    }

    /// Drop the exchange (or body) that stream `id`'s task is running, if any. Only streams
    /// that go before their answer is complete have one; there are at most
    /// [`MAX_CONCURRENT_STREAMS`] tasks to look through.
    fn cancel(&mut self, id: u32) {
        if let Some(t) = self
            .tasks
            .iter_mut()
            .find(|t| t.id == id && t.fut.is_some())
        {
            t.fut = None;
            if let Some(w) = t.waker.take() {
                w.wake();
            }
        }
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

/// The stream a PRIORITY field (at the start of `b`, at least four bytes) depends on.
fn dependency(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & frame::MAX_WINDOW
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

/// Response or trailer fields, without those HTTP/2 forbids (RFC 9113 §8.2.2).
fn encode_fields(encoder: &mut hpack::Encoder, headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        if *name == header::CONNECTION
            || *name == header::TRANSFER_ENCODING
            || *name == header::UPGRADE
            || name.as_str() == "keep-alive"
            || name.as_str() == "proxy-connection"
        {
            continue;
        }
        encoder.field(name.as_str().as_bytes(), value.as_bytes(), out);
    }
}
