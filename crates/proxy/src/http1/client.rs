//! HTTP/1 exchanges for requests that arrive as `http` types — those of HTTP/2 clients — over
//! the same pooled target connections the engine uses. The head is encoded from `Parts`; a
//! body is sent with its length or chunked while the answer is read; the answer is handed to
//! hyper as `http` types with a body that yields the payload without its framing and parks
//! the connection when it ends.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::buf::INITIAL;
use super::cursor::Cursor;
use super::response::{self, RawFields, RespBody, Typed, MAX_RESPONSE_HEAD};
use super::salvage::{salvage, Left};
use super::upstream::UpConn;
use super::Deadline;
use crate::body::{BoxError, InFlight, ReqBody, TargetBodyError};
use crate::headers::{self, Forwarded};

/// Fields the head's framing replaces: the body's own length decides them.
const FRAMING: [http::header::HeaderName; 2] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
];

/// The head for the target, with the framing the body will be sent in.
pub(crate) fn encode_head(parts: &Parts, body: &ReqBody) -> (Vec<u8>, Option<bool>) {
    let mut out = request_line(parts);
    response::push_fields(&mut out, &parts.headers, &FRAMING);
    let framing = push_framing(&mut out, parts, body);
    (out, framing)
}

/// [`encode_head`] of the request as [`headers::prepare_request`] would leave it, written
/// without editing its header map; `None` when only editing the map can tell (a `Connection`
/// field that names other fields).
pub(crate) fn encode_forwarded_head(
    parts: &Parts,
    body: &ReqBody,
    fwd: &Forwarded<'_>,
) -> Option<(Vec<u8>, Option<bool>)> {
    let mut out = request_line(parts);
    if !headers::push_forwarded_fields(&mut out, &parts.uri, &parts.headers, fwd, &FRAMING) {
        return None;
    }
    let framing = push_framing(&mut out, parts, body);
    Some((out, framing))
}

/// `METHOD origin-form HTTP/1.1\r\n`, in a buffer sized for a whole head.
fn request_line(parts: &Parts) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out
}

/// The framing fields and the blank line that ends the head: `Some(chunked)` when a body
/// follows.
fn push_framing(out: &mut Vec<u8>, parts: &Parts, body: &ReqBody) -> Option<bool> {
    let framing = if body.is_empty() {
        if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            out.extend_from_slice(b"Content-Length: 0\r\n");
        }
        None
    } else if let Some(n) = body.size_hint().exact() {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        Some(false)
    } else {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        Some(true)
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// Why an exchange produced no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoAnswer {
    /// The connection closed or reset before any response byte.
    Closed,
    /// No response headers within the idle timeout (counted from the last upload progress).
    NoHeaders,
    /// No response headers by the per-try deadline the caller gave.
    TryTimeout,
    /// The target answered something that is not HTTP/1.
    Invalid,
    /// The client's body broke off (or grew past its limit) while it was being sent.
    ClientBody,
}

/// A request body on its way to the target, sent as the target's answer is read.
#[derive(Debug)]
pub(crate) struct Upload {
    body: ReqBody,
    chunked: bool,
    /// Encoded bytes not yet written, from `at`.
    out: Vec<u8>,
    at: usize,
    /// The body has ended (its last bytes may still be in `out`).
    ended: bool,
    /// When anything of the body last moved.
    pub(crate) progress: Instant,
}

impl Upload {
    /// `sent`: when the request's head went out (the upload's progress counts from there).
    pub(crate) fn new(body: ReqBody, chunked: bool, sent: Instant) -> Upload {
        Upload {
            body,
            chunked,
            out: Vec::new(),
            at: 0,
            ended: false,
            progress: sent,
        }
    }

    /// Move the body on as far as it goes without waiting. `Ready(Ok)` once all of it was
    /// written.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut tokio::net::TcpStream,
    ) -> Poll<Result<(), NoAnswer>> {
        loop {
            if self.at < self.out.len() {
                match Pin::new(&mut *stream).poll_write(cx, &self.out[self.at..]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.at += n;
                        self.progress = Instant::now();
                        continue;
                    }
                    Poll::Ready(_) => return Poll::Ready(Err(NoAnswer::Closed)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            self.out.clear();
            self.at = 0;
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.ended = true;
                    if self.chunked {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(NoAnswer::ClientBody)),
                Poll::Ready(Some(Ok(frame))) => {
                    self.progress = Instant::now();
                    match frame.into_data() {
                        Ok(data) if data.is_empty() => {}
                        Ok(data) if self.chunked => response::push_chunk(&mut self.out, &data),
                        Ok(data) => self.out.extend_from_slice(&data),
                        Err(frame) => {
                            // Trailers end a chunked body (HTTP/1 has nowhere else for them).
                            self.ended = true;
                            if self.chunked {
                                let trailers = frame.into_trailers().ok();
                                response::push_last_chunk(&mut self.out, trailers.as_ref());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Read the target's response head while sending the rest of the body (`upload`, which is
/// `None` once sent). Interim 1xx answers are skipped. `sent`: when the head went out (the
/// caller's clock reading, so the exchange reads the clock once). `try_by`: a per-try
/// deadline for a request sent whole, which ends the wait early with `TryTimeout`.
pub(crate) async fn read_head(
    up: &mut UpConn,
    upload: &mut Option<Upload>,
    is_head: bool,
    idle: Duration,
    sent: Instant,
    try_by: Option<Instant>,
) -> Result<Typed, NoAnswer> {
    let armed = try_by.filter(|_| upload.is_none());
    // Milliseconds after `sent` of the upload's last progress (read by the timeout below).
    let progress = std::sync::atomic::AtomicU64::new(0);
    let mut got_any = false;
    let read = std::future::poll_fn(|cx| loop {
        if let Some(u) = upload.as_mut() {
            let res = u.poll_send(cx, &mut up.stream);
            let ms = u.progress.saturating_duration_since(sent).as_millis();
            progress.store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
            match res {
                Poll::Ready(Ok(())) => *upload = None,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if !up.buf.is_empty() {
            match response::parse_typed(up.buf.filled(), is_head) {
                Ok(Some(t)) if t.parts.status.is_informational() => {
                    up.buf.consume(t.len);
                    continue;
                }
                Ok(Some(t)) => return Poll::Ready(Ok(t)),
                Ok(None) if up.buf.len() < MAX_RESPONSE_HEAD => {}
                _ => return Poll::Ready(Err(NoAnswer::Invalid)),
            }
        }
        match up
            .buf
            .poll_read_from(cx, &mut up.stream, MAX_RESPONSE_HEAD + INITIAL)
        {
            Poll::Ready(Ok(n)) if n > 0 => got_any = true,
            Poll::Ready(_) if got_any => return Poll::Ready(Err(NoAnswer::Invalid)),
            Poll::Ready(_) => return Poll::Ready(Err(NoAnswer::Closed)),
            Poll::Pending => return Poll::Pending,
        }
    });
    let sent_at = tokio::time::Instant::from_std(sent);
    let deadline = armed.map_or(sent_at + idle, tokio::time::Instant::from_std);
    let timer = up.timer.get_or_insert_with(|| Deadline::new(deadline));
    timer.set(deadline);
    let expired = async {
        loop {
            timer.expired().await;
            if armed.is_some() {
                return;
            }
            // The clock runs from the last progress of the upload.
            let last = Duration::from_millis(progress.load(Ordering::Relaxed));
            let from_last = sent_at + last + idle;
            if from_last <= tokio::time::Instant::now() {
                return;
            }
            timer.set(from_last);
        }
    };
    tokio::select! {
        biased;
        r = read => r,
        () = expired => Err(if armed.is_some() {
            NoAnswer::TryTimeout
        } else {
            NoAnswer::NoHeaders
        }),
    }
}

/// A target's HTTP/1 response body for an HTTP/2 client: the payload frame by frame; the
/// connection is parked when the body ends (if the upload, too, is complete).
#[derive(Debug)]
pub(crate) struct ResponseBody {
    conn: Option<UpConn>,
    cursor: Cursor,
    upload: Option<Upload>,
    in_flight: InFlight,
    idle: Duration,
    reusable: bool,
    length: Option<u64>,
    /// The target's fields, until the client's writer takes them for the head.
    fields: Option<RawFields>,
    /// The last read found nothing: the target owes the body's next bytes within the idle
    /// timeout of the connection's timer, set when the wait began.
    waiting: bool,
}

impl ResponseBody {
    pub(crate) fn new(
        mut conn: UpConn,
        head: &Typed,
        upload: Option<Upload>,
        in_flight: InFlight,
        idle: Duration,
    ) -> ResponseBody {
        conn.buf.consume(head.len);
        let length = match head.body {
            RespBody::Length(n) => Some(n),
            RespBody::None => Some(0),
            _ => None,
        };
        ResponseBody {
            conn: Some(conn),
            cursor: Cursor::response(head.body),
            upload,
            in_flight,
            idle,
            reusable: head.reusable,
            length,
            fields: None,
            waiting: false,
        }
    }

    /// The target's response fields, once: the head's writer encodes them.
    pub(crate) fn take_fields(&mut self) -> Option<RawFields> {
        self.fields.take()
    }

    /// The body ended: the connection goes back to the pool if it can carry another request.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable && self.upload.is_none() && conn.buf.is_empty() {
                let backend = self.in_flight.backend();
                backend.pool.h1.put(conn, self.idle, Instant::now());
            }
        }
    }

    fn failed(&mut self, why: TargetBodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let backend = self.in_flight.backend();
        tracing::debug!(target = %backend.addr, %why, "target response body failed");
        backend.count_error();
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(why))))
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped before its end (the client reset the stream, or went away): the connection
        // is kept if the rest of the answer is cheap to read.
        if let Some(conn) = self.conn.take() {
            if self.upload.is_none() && self.reusable {
                let backend = self.in_flight.backend();
                salvage(conn, Left::Body(self.cursor), backend, self.idle);
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(u) = this.upload.as_mut() {
                let before = u.progress;
                let sent = u.poll_send(cx, &mut conn.stream);
                // The target taking the request body counts as activity, as its answer does.
                this.waiting &= u.progress == before;
                match sent {
                    Poll::Ready(Ok(())) => this.upload = None,
                    // The answer is complete as far as the target is concerned; it simply
                    // will not get another request on this connection.
                    Poll::Ready(Err(_)) => {
                        this.upload = None;
                        this.reusable = false;
                    }
                    Poll::Pending => {}
                }
            }
            if !conn.buf.is_empty() && !this.cursor.is_done() {
                let avail = conn.buf.filled();
                let mut data = BytesMut::with_capacity(avail.len());
                let used = this
                    .cursor
                    .advance(avail, &mut |a, b| data.extend_from_slice(&avail[a..b]));
                let Ok(used) = used else {
                    return this.failed(TargetBodyError::Framing);
                };
                conn.buf.consume(used);
                if !data.is_empty() {
                    if this.cursor.is_done() && this.upload.is_none() {
                        // The last of it: end now, so the client learns it with this frame.
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data.freeze()))));
                }
            }
            if this.cursor.is_done() {
                if this.upload.take().is_some() {
                    // Answered before the request body ended: the target will not read the
                    // rest, and the connection cannot carry another request.
                    this.reusable = false;
                }
                this.finish();
                return Poll::Ready(None);
            }
            match conn.buf.poll_read_from(cx, &mut conn.stream, INITIAL) {
                Poll::Ready(Ok(n)) if n > 0 => this.waiting = false,
                Poll::Ready(_) if matches!(this.cursor, Cursor::UntilClose) => {
                    this.cursor = Cursor::Done;
                    this.reusable = false;
                }
                Poll::Ready(_) => return this.failed(TargetBodyError::Closed),
                Poll::Pending => {
                    // The wait is timed from its start (not from the last bytes, which may
                    // have waited for the client's window), with the connection's own timer.
                    if !std::mem::replace(&mut this.waiting, true) {
                        let by = tokio::time::Instant::now() + this.idle;
                        match conn.timer.as_mut() {
                            Some(timer) => timer.set(by),
                            None => conn.timer = Some(Deadline::new(by)),
                        }
                    }
                    let expired = conn.timer.as_mut().map(|t| t.poll_expired(cx));
                    if expired.is_some_and(|e| e.is_ready()) {
                        return this.failed(TargetBodyError::Timeout);
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The answer for hyper.
pub(crate) fn into_response(head: Typed, mut body: ResponseBody) -> Response<ResponseBody> {
    body.fields = Some(head.fields);
    Response::from_parts(head.parts, body)
}
