//! What goes to the client: response heads and trailers (HPACK-encoded), DATA within the
//! client's windows (a body that has no window is parked until the client gives some, by
//! WINDOW_UPDATE or SETTINGS), and the ends of streams — completed, or reset with their
//! exchanges dropped.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{Conn, ConnError, Event, Parked, Stream, Task, RECENT_RESETS};
use crate::body::{BoxError, ProxyBody};
use crate::http1::{Deadline, RawFields};
use crate::http2::frame::{self, Head, Reason};
use crate::http2::hpack;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// or trailers, encoded into the connection's reused block buffer.
    pub(super) fn write_headers(
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
    pub(super) fn respond_now(&mut self, id: u32, status: http::StatusCode, request_ended: bool) {
        self.write_headers(id, Some(status.as_u16()), None, None, true);
        if !request_ended {
            self.send_rst(id, Reason::NoError);
        }
    }

    pub(super) fn on_event(&mut self, ev: Event) {
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
    pub(super) fn on_frame_of(
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

    /// A WINDOW_UPDATE: more room to send on the connection or one stream.
    pub(super) fn on_window_update(&mut self, h: &Head, payload: &[u8]) -> Result<(), ConnError> {
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

    /// Send as much of `data` as the windows allow; park the rest with the body.
    pub(super) fn send_data(&mut self, id: u32, body: ProxyBody, mut data: Bytes) {
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
            let since = Instant::now();
            s.parked = Some(Parked {
                body,
                data: rest,
                since,
            });
            self.arm_stall(since + self.ctx.config.idle_timeout);
        }
    }

    /// Have the stall timer fire at `by` unless it fires earlier already (for a stream that
    /// parked before).
    fn arm_stall(&mut self, by: Instant) {
        if self.stall_armed {
            return;
        }
        self.stall_armed = true;
        match self.stall.as_mut() {
            Some(t) => t.set(by),
            None => self.stall = Some(Deadline::new(by)),
        }
    }

    /// Reset the streams whose answers waited for window for the idle timeout (the client
    /// reads nothing of them, or gives no window: a zero-window client would otherwise hold
    /// their target connections for ever), and re-arm for the next one to run out.
    pub(super) fn expire_stalled(&mut self) {
        let now = Instant::now();
        let idle = self.ctx.config.idle_timeout;
        let mut next: Option<Instant> = None;
        let mut stalled = Vec::new();
        for (&id, s) in &self.streams {
            let Some(p) = &s.parked else { continue };
            let by = p.since + idle;
            if by <= now {
                stalled.push(id);
            } else {
                next = Some(next.map_or(by, |n| n.min(by)));
            }
        }
        for id in stalled {
            tracing::debug!(client = %self.ctx.peer, stream = id, "no window for the answer within the idle timeout");
            self.reset(id, Reason::Cancel);
        }
        self.stall_armed = false;
        if let Some(by) = next {
            self.arm_stall(by);
        }
    }

    /// Ask the body for its next frame.
    pub(super) fn poll_next(&mut self, id: u32, body: ProxyBody) {
        self.tasks.push(Task::next_frame(id, body));
    }

    pub(super) fn unpark(&mut self, id: u32) {
        let parked = self.streams.get_mut(&id).and_then(|s| s.parked.take());
        if let Some(Parked { body, data, .. }) = parked {
            self.send_data(id, body, data);
        }
    }

    pub(super) fn unpark_all(&mut self) {
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
    pub(super) fn sent(&mut self, id: u32) {
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

    pub(super) fn remove_if_done(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(Stream::done) {
            if let Some(s) = self.streams.remove(&id) {
                self.conn_uncredited += s.held;
            }
        }
    }

    /// Reset a stream: its exchange, if any, is dropped. A reset for the client's fault
    /// spends from its budget.
    pub(super) fn reset(&mut self, id: u32, reason: Reason) {
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
    pub(super) fn send_rst(&mut self, id: u32, reason: Reason) {
        frame::rst_stream(&mut self.out, id, reason);
        self.recent_resets[self.recent_next % RECENT_RESETS] = id;
        self.recent_next = self.recent_next.wrapping_add(1);
    }

    pub(super) fn was_reset(&self, id: u32) -> bool {
        id != 0 && self.recent_resets.contains(&id)
    }

    /// Drop the exchange (or body) that stream `id`'s task is running, if any. Only streams
    /// that go before their answer is complete have one; there are at most
    /// [`super::MAX_CONCURRENT_STREAMS`] tasks to look through.
    pub(super) fn cancel(&mut self, id: u32) {
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
