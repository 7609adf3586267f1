//! What the client sends: frames read and checked one by one (RFC 9113 §4–6), header blocks
//! decoded into requests (each becomes a stream and its exchange) or trailers, DATA into the
//! streams' request bodies within their windows.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{Block, Conn, ConnError, Event, Stream, Task};
use super::{MAX_CONCURRENT_STREAMS, MAX_CONTINUATIONS, RECV_WINDOW};
use crate::body::ReqBody;
use crate::http2::exchange::handle;
use crate::http2::frame::{self, flag, kind, setting, Head, Reason, HEADER_LEN};
use crate::http2::hpack;
use crate::http2::recv;
use crate::http2::request::{Invalid, RequestBuilder, TrailerBuilder};
use tracing::Instrument;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn read_frames(&mut self) -> Result<(), ConnError> {
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
    pub(super) fn is_idle(&self, id: u32) -> bool {
        id % 2 == 0 || id > self.last_stream
    }

    /// A frame other than DATA.
    pub(super) fn on_frame(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
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

    pub(super) fn on_settings(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
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

    pub(super) fn on_data(&mut self, h: &Head, payload: Bytes) -> Result<(), ConnError> {
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

    pub(super) fn on_headers(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
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
    pub(super) fn header_block(&mut self, b: Block) -> Result<(), ConnError> {
        let block = std::mem::take(&mut self.block);
        let res = self.header_block_inner(b, &block);
        self.block = block;
        res
    }

    /// Decode a block nobody will use: the decoder's table must stay in step with the client's.
    pub(super) fn discard_block(&mut self, block: &[u8]) -> Result<(), ConnError> {
        self.decoder
            .decode(block, &mut |_: &[u8], _: &[u8]| Ok::<(), ()>(()))
            .map_err(|_| ConnError(Reason::CompressionError))
    }

    /// A header block on an open stream: its request's trailers, allowed only while the
    /// request body is open, and they end it.
    fn trailers(&mut self, b: Block, block: &[u8]) -> Result<(), ConnError> {
        let (id, end_stream) = (b.stream, b.end_stream);
        let limit = self.ctx.limits.max_header_bytes;
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
        Ok(())
    }

    pub(super) fn header_block_inner(&mut self, b: Block, block: &[u8]) -> Result<(), ConnError> {
        let (id, end_stream) = (b.stream, b.end_stream);
        let limit = self.ctx.limits.max_header_bytes;
        if self.streams.contains_key(&id) {
            return self.trailers(b, block);
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
        self.open(id, parts, length, end_stream);
        Ok(())
    }

    /// A valid request on the new stream `id`: the stream, and its exchange as a task.
    fn open(
        &mut self,
        id: u32,
        parts: http::request::Parts,
        length: Option<u64>,
        end_stream: bool,
    ) {
        let (sender, body) = if end_stream {
            if length.is_some_and(|d| d != 0) {
                self.reset(id, Reason::ProtocolError);
                return;
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
        let span = crate::trace::stream(id, parts.method.as_str(), parts.uri.path());
        let exchange = async move {
            let (resp, first) = handle(parts, body, &ctx).await;
            let (parts, body) = resp.into_parts();
            Event::Response {
                id,
                parts,
                body,
                first,
            }
        };
        self.tasks.push(Task::new(id, exchange.instrument(span)));
    }
}

/// The stream a PRIORITY field (at the start of `b`, at least four bytes) depends on.
fn dependency(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & frame::MAX_WINDOW
}
