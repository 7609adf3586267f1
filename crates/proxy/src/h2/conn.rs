//! One HTTP/2 client connection (RFC 9113), served by one task: frames are read and written
//! by the connection itself, and each stream's exchange with its target is a future the
//! connection polls among the others (no task per stream, no channel per frame). A stream's
//! request becomes `http` types for the forwarding path; its response's HEADERS and first DATA
//! go out in one write.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::frame::{self, flag, kind, setting, Head, Reason, HEADER_LEN};
use super::hpack;
use super::recv::{self, Credits, Sender};
use crate::body::{BoxError, ProxyBody, ReqBody};
use crate::h1::{Deadline, InBuf, OutBuf};
use crate::server::{handle, ConnCtx};

/// Streams a client may have open at once (RFC 9113 recommends at least 100).
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Window we give each stream and the connection for request bodies: large enough that an
/// upload rarely waits for a WINDOW_UPDATE, small enough to bound what one connection buffers.
const RECV_WINDOW: u32 = 1 << 20;

/// Credit consumed window back once this much (or the stream's end) is reached.
const CREDIT_BATCH: u32 = RECV_WINDOW / 4;

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

type Task = Pin<Box<dyn Future<Output = Event> + Send>>;

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

/// The connection's state.
struct Conn<S> {
    io: S,
    ctx: Arc<ConnCtx>,
    inbuf: InBuf,
    out: OutBuf,
    /// Scratch space for header blocks.
    block: Vec<u8>,
    decoder: hpack::Decoder,
    encoder: hpack::Encoder,
    streams: HashMap<u32, Stream>,
    tasks: FuturesUnordered<Task>,
    credits: Arc<Mutex<Credits>>,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// A header block being assembled from HEADERS and CONTINUATION frames: stream, whether
    /// HEADERS carried END_STREAM.
    continuing: Option<(u32, bool)>,
    /// The peer's settings.
    peer_initial_window: i64,
    peer_max_frame: usize,
    /// Connection-level windows.
    send_window: i64,
    recv_window: i64,
    conn_uncredited: u32,
    /// GOAWAY sent: no new streams; close when the last one is done.
    going_away: bool,
    timer: Deadline,
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
    let mut c = Conn {
        io,
        ctx,
        inbuf,
        out: OutBuf::new(),
        block: Vec::new(),
        decoder: hpack::Decoder::new(4096),
        encoder: hpack::Encoder::new(),
        streams: HashMap::new(),
        tasks: FuturesUnordered::new(),
        credits: Arc::new(Mutex::new(Credits::default())),
        last_stream: 0,
        continuing: None,
        peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
        peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
        send_window: i64::from(frame::DEFAULT_WINDOW),
        recv_window: i64::from(RECV_WINDOW),
        conn_uncredited: 0,
        going_away: false,
        timer: Deadline::new(Instant::now() + idle),
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
    let _ = c.flush().await;
    let _ = c.io.shutdown().await;
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
            if !self.out.is_empty() && self.flush().await.is_err() {
                return Ok(());
            }
            if self.going_away && self.streams.is_empty() && self.tasks.is_empty() {
                return Ok(());
            }
            if self.streams.is_empty() && self.tasks.is_empty() {
                self.timer
                    .set(Instant::now() + self.ctx.config.idle_timeout);
            }
            let idle = self.streams.is_empty() && self.tasks.is_empty();
            tokio::select! {
                biased;
                Some(ev) = self.tasks.next(), if !self.tasks.is_empty() => {
                    self.on_event(ev);
                    // Gather whatever else is ready before writing.
                    while let Some(Some(ev)) = futures_util::FutureExt::now_or_never(self.tasks.next()) {
                        self.on_event(ev);
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
                () = self.timer.expired(), if idle => {
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

    async fn flush(&mut self) -> std::io::Result<()> {
        let res = self.io.write_all(&self.out).await;
        self.out.clear();
        res?;
        self.io.flush().await
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
            let payload = Bytes::copy_from_slice(&buf[HEADER_LEN..HEADER_LEN + h.len]);
            self.inbuf.consume(HEADER_LEN + h.len);
            self.on_frame(&h, payload)?;
        }
    }

    fn on_frame(&mut self, h: &Head, payload: Bytes) -> Result<(), ConnError> {
        if let Some((id, _)) = self.continuing {
            if h.kind != kind::CONTINUATION || h.stream != id {
                return Err(ConnError(Reason::ProtocolError));
            }
        }
        match h.kind {
            kind::DATA => self.on_data(h, payload),
            kind::HEADERS => self.on_headers(h, &payload),
            kind::CONTINUATION => {
                let Some((id, end_stream)) = self.continuing else {
                    return Err(ConnError(Reason::ProtocolError));
                };
                self.block.extend_from_slice(&payload);
                if self.block.len() > 4 * self.ctx.limits.max_header_bytes {
                    return Err(ConnError(Reason::CompressionError));
                }
                if h.has(flag::END_HEADERS) {
                    self.continuing = None;
                    self.header_block(id, end_stream)?;
                }
                Ok(())
            }
            kind::PRIORITY => {
                if h.stream == 0 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if payload.len() != 5 {
                    self.reset(h.stream, Reason::FrameSizeError);
                }
                Ok(())
            }
            kind::RST_STREAM => {
                if h.stream == 0 || payload.len() != 4 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if h.stream > self.last_stream {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if let Some(s) = self.streams.remove(&h.stream) {
                    if let Some(r) = s.recv {
                        r.reset();
                    }
                    self.conn_uncredited += s.held;
                }
                Ok(())
            }
            kind::SETTINGS => self.on_settings(h, &payload),
            kind::PUSH_PROMISE => Err(ConnError(Reason::ProtocolError)),
            kind::PING => {
                if h.stream != 0 || payload.len() != 8 {
                    return Err(ConnError(Reason::ProtocolError));
                }
                if !h.has(flag::ACK) {
                    frame::ping_ack(&mut self.out, &payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                self.going_away = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(h, &payload),
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
                    let delta = i64::from(value) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(value);
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
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
        let Some(s) = self.streams.get_mut(&h.stream) else {
            // A closed stream's late update is harmless; an idle stream's is an error.
            return if h.stream > self.last_stream {
                Err(ConnError(Reason::ProtocolError))
            } else {
                Ok(())
            };
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
        let len = h.len as i64;
        self.recv_window -= len;
        if self.recv_window < 0 {
            return Err(ConnError(Reason::FlowControlError));
        }
        // The whole frame counts against the windows; credit the connection's share now if
        // the stream cannot take it.
        let range = frame::unpad(h, &payload).map_err(ConnError)?;
        let Some(s) = self.streams.get_mut(&h.stream) else {
            self.conn_uncredited += h.len as u32;
            if h.stream > self.last_stream {
                return Err(ConnError(Reason::ProtocolError));
            }
            self.reset_closed(h.stream);
            return Ok(());
        };
        let Some(sender) = s.recv.clone() else {
            self.conn_uncredited += h.len as u32;
            self.reset(h.stream, Reason::StreamClosed);
            return Ok(());
        };
        s.recv_window -= len;
        if s.recv_window < 0 {
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
            // More than declared: to an HTTP/1 target this would be a second request.
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
        if h.has(flag::PRIORITY) {
            if range.len() < 5 {
                return Err(ConnError(Reason::ProtocolError));
            }
            range.start += 5;
        }
        self.block.clear();
        self.block.extend_from_slice(&payload[range]);
        let end_stream = h.has(flag::END_STREAM);
        if !h.has(flag::END_HEADERS) {
            self.continuing = Some((h.stream, end_stream));
            return Ok(());
        }
        self.header_block(h.stream, end_stream)
    }

    /// A complete header block: a new request, or the trailers of an open one.
    fn header_block(&mut self, id: u32, end_stream: bool) -> Result<(), ConnError> {
        let block = std::mem::take(&mut self.block);
        let res = self.header_block_inner(id, end_stream, &block);
        self.block = block;
        res
    }

    fn header_block_inner(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
    ) -> Result<(), ConnError> {
        let limit = self.ctx.limits.max_header_bytes;
        if self.streams.contains_key(&id) {
            // Trailers: only while the request body is open, and they end it.
            let mut trailers = HeaderMap::new();
            let mut bad = false;
            let decoded = self
                .decoder
                .decode(block, &mut |name: &[u8], value: &[u8]| {
                    match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                        (Ok(n), Ok(v)) if !name.starts_with(b":") => {
                            trailers.append(n, v);
                        }
                        _ => bad = true,
                    }
                    Ok::<(), ()>(())
                });
            if decoded.is_err() {
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
            if bad || !end_stream || !length_ok {
                sender.reset();
                self.reset(id, Reason::ProtocolError);
                return Ok(());
            }
            sender.end(Some(trailers));
            self.remove_if_done(id);
            return Ok(());
        }
        if id % 2 == 0 || id <= self.last_stream {
            // Decode anyway: the decoder's table must stay in step with the client's.
            let _ = self
                .decoder
                .decode(block, &mut |_: &[u8], _: &[u8]| Ok::<(), ()>(()));
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
        let parts = match req.finish() {
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
        let declared = parts.1;
        let (parts, length) = (parts.0, declared);
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
        self.tasks.push(Box::pin(async move {
            let resp = handle(Request::from_parts(parts, body), &ctx).await;
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

    /// Answer a stream at once with an empty response (its request could not be forwarded).
    fn respond_now(&mut self, id: u32, status: http::StatusCode, request_ended: bool) {
        let mut block = std::mem::take(&mut self.block);
        block.clear();
        self.encoder.begin(&mut block);
        self.encoder.status(status.as_u16(), &mut block);
        frame::headers(&mut self.out, id, &block, true, self.peer_max_frame);
        self.block = block;
        if !request_ended {
            frame::rst_stream(&mut self.out, id, Reason::NoError);
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Response {
                id,
                parts,
                body,
                first,
            } => {
                if !self.streams.contains_key(&id) {
                    return; // reset meanwhile
                }
                let end = first.is_none() && body.is_end_stream();
                let mut block = std::mem::take(&mut self.block);
                block.clear();
                self.encoder.begin(&mut block);
                self.encoder.status(parts.status.as_u16(), &mut block);
                encode_fields(&mut self.encoder, &parts.headers, &mut block);
                frame::headers(&mut self.out, id, &block, end, self.peer_max_frame);
                self.block = block;
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
                    let mut block = std::mem::take(&mut self.block);
                    block.clear();
                    self.encoder.begin(&mut block);
                    encode_fields(&mut self.encoder, &trailers, &mut block);
                    frame::headers(&mut self.out, id, &block, true, self.peer_max_frame);
                    self.block = block;
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
    fn poll_next(&mut self, id: u32, mut body: ProxyBody) {
        self.tasks.push(Box::pin(async move {
            let frame = body.frame().await;
            Event::Frame { id, body, frame }
        }));
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
        if let Some(r) = s.recv.take() {
            // The answer is complete while the client still sends: ask it to stop (RFC 9113
            // §8.1); what it sent stays valid.
            r.reset();
            frame::rst_stream(&mut self.out, id, Reason::NoError);
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

    /// Reset an open stream.
    fn reset(&mut self, id: u32, reason: Reason) {
        frame::rst_stream(&mut self.out, id, reason);
        if let Some(s) = self.streams.remove(&id) {
            if let Some(r) = s.recv {
                r.reset();
            }
            self.conn_uncredited += s.held;
        }
    }

    /// DATA on a stream already closed here: it is reset (once is enough; repeats are harmless).
    fn reset_closed(&mut self, id: u32) {
        frame::rst_stream(&mut self.out, id, Reason::StreamClosed);
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
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
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

/// Why a request head was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    /// Malformed (RFC 9113 §8.1.1): the stream is reset.
    Malformed,
    /// Over the header size limit: answered 431.
    TooLarge,
}

/// Collects a request's fields as they are decoded.
struct RequestBuilder {
    method: Option<Method>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    /// `cookie` fields, joined into one (RFC 9113 §8.2.3) for HTTP/1 targets.
    cookie: Vec<u8>,
    length: Option<u64>,
    size: usize,
    limit: usize,
    invalid: Option<Invalid>,
    regular_seen: bool,
}

impl RequestBuilder {
    fn new(limit: usize) -> RequestBuilder {
        RequestBuilder {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            headers: HeaderMap::new(),
            cookie: Vec::new(),
            length: None,
            size: 0,
            limit,
            invalid: None,
            regular_seen: false,
        }
    }

    fn bad(&mut self, why: Invalid) -> Result<(), ()> {
        if self.invalid != Some(Invalid::TooLarge) {
            self.invalid = Some(why);
        }
        Ok(())
    }

    /// One decoded field. Always `Ok`: decoding must go on to keep the table in step.
    fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), ()> {
        self.size += name.len() + value.len() + 32;
        if self.size > self.limit {
            return self.bad(Invalid::TooLarge);
        }
        if self.invalid.is_some() {
            return Ok(());
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular_seen {
                return self.bad(Invalid::Malformed);
            }
            let slot = match pseudo {
                b"method" => {
                    if self.method.is_some() {
                        return self.bad(Invalid::Malformed);
                    }
                    match Method::from_bytes(value) {
                        Ok(m) => self.method = Some(m),
                        Err(_) => return self.bad(Invalid::Malformed),
                    }
                    return Ok(());
                }
                b"scheme" => &mut self.scheme,
                b"authority" => &mut self.authority,
                b"path" => &mut self.path,
                _ => return self.bad(Invalid::Malformed),
            };
            if slot.is_some() {
                return self.bad(Invalid::Malformed);
            }
            *slot = Some(Bytes::copy_from_slice(value));
            return Ok(());
        }
        self.regular_seen = true;
        if name.iter().any(u8::is_ascii_uppercase)
            || matches!(
                name,
                b"connection"
                    | b"keep-alive"
                    | b"proxy-connection"
                    | b"transfer-encoding"
                    | b"upgrade"
            )
            || (name == b"te" && value != b"trailers")
        {
            return self.bad(Invalid::Malformed);
        }
        if name == b"cookie" {
            if !self.cookie.is_empty() {
                self.cookie.extend_from_slice(b"; ");
            }
            self.cookie.extend_from_slice(value);
            return Ok(());
        }
        if name == b"content-length" {
            match crate::h1::parse_length(value) {
                Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                _ => return self.bad(Invalid::Malformed),
            }
        }
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
                Ok(())
            }
            _ => self.bad(Invalid::Malformed),
        }
    }

    fn finish(mut self) -> Result<(http::request::Parts, Option<u64>), Invalid> {
        if let Some(why) = self.invalid {
            return Err(why);
        }
        let (Some(method), Some(scheme), Some(path)) = (self.method, self.scheme, self.path) else {
            return Err(Invalid::Malformed);
        };
        if method == Method::CONNECT || path.is_empty() {
            return Err(Invalid::Malformed);
        }
        let uri = match &self.authority {
            Some(a) => {
                let mut s = Vec::with_capacity(scheme.len() + 3 + a.len() + path.len());
                s.extend_from_slice(&scheme);
                s.extend_from_slice(b"://");
                s.extend_from_slice(a);
                s.extend_from_slice(&path);
                Uri::from_maybe_shared(Bytes::from(s))
            }
            None => Uri::from_maybe_shared(path),
        }
        .map_err(|_| Invalid::Malformed)?;
        if !self.cookie.is_empty() {
            let v = HeaderValue::from_bytes(&self.cookie).map_err(|_| Invalid::Malformed)?;
            self.headers.insert(header::COOKIE, v);
        }
        let mut parts = Request::new(()).into_parts().0;
        parts.method = method;
        parts.uri = uri;
        parts.version = Version::HTTP_2;
        parts.headers = self.headers;
        Ok((parts, self.length))
    }
}
