//! Writing answers to the client: a target's response relayed as it is framed, or one the load
//! balancer produced (errors, redirects, fixed responses, answers of HTTP/2 targets).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header;
use http::Response;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::{payload_too_large, BodyError, Client, Exchange, Keep, Served, COALESCE};
use crate::body::ProxyBody;
use crate::errors::Generated;
use crate::http1::buf::{InBuf, INITIAL};
use crate::http1::cursor::Cursor;
use crate::http1::deadline::Deadline;
use crate::http1::response::{self, Parsed};
use crate::http1::smuggling::BAD_REQUEST;

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Answer for a request body that could not be relayed; the connection closes (where the
    /// next request would start is unknown).
    pub(super) async fn body_failed(&mut self, e: BodyError, ex: &mut Exchange) -> Served {
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
    pub(super) async fn flush_out(&mut self) -> Result<(), Relay> {
        let idle = self.ctx.config.idle_timeout;
        write_out(&mut self.io, &mut self.out, &mut self.timer, idle).await
    }

    /// Answer with a response the load balancer produced (errors, redirects, fixed responses,
    /// and answers from HTTP/2 targets). A request body that was not read closes the
    /// connection afterwards, unless all of it is already buffered and can be skipped.
    pub(super) async fn respond(
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
    pub(super) async fn send_body_of(
        &mut self,
        mut body: ProxyBody,
        chunked: bool,
    ) -> Result<(), Relay> {
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
}

/// Relays a response body to the client as it is framed, coalescing the head and the first
/// body bytes into one write.
pub(super) struct Relayer<'a> {
    /// The client's response head, to go out with the first body bytes.
    pub(super) out: &'a mut Vec<u8>,
    pub(super) timer: &'a mut Deadline,
    pub(super) idle: Duration,
}

impl Relayer<'_> {
    /// Send the head in `out` and relay the body (chunked bodies to HTTP/1.0 clients without
    /// their framing).
    pub(super) async fn response<R, W>(
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
        // Nothing reached the client yet (the head waits in `out` for the first body bytes).
        let mut unsent = true;
        loop {
            if !buf.is_empty() && !cursor.is_done() {
                let avail = buf.filled();
                let used = if p.dechunk {
                    let out = &mut *self.out;
                    cursor.advance(avail, &mut |a, b| out.extend_from_slice(&avail[a..b]))
                } else {
                    cursor.advance(avail, &mut |_, _| {})
                };
                let Ok(used) = used else {
                    self.out.clear();
                    return Err(if unsent { Relay::Unsent } else { Relay::Target });
                };
                if !p.dechunk {
                    if self.out.len() + used <= COALESCE {
                        self.out.extend_from_slice(&avail[..used]);
                    } else {
                        self.flush(wr).await?;
                        write_all(wr, &avail[..used], self.timer, self.idle).await?;
                    }
                }
                buf.consume(used);
            }
            self.flush(wr).await?;
            unsent = false;
            if cursor.is_done() {
                let flush = |cx: &mut Context<'_>| Pin::new(&mut *wr).poll_flush(cx);
                return timed(self.timer, self.idle, flush).await;
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
        write_out(wr, self.out, self.timer, self.idle).await
    }
}

/// Write and clear `out` (see [`write_all`]).
pub(super) async fn write_out<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut Vec<u8>,
    timer: &mut Deadline,
    idle: Duration,
) -> Result<(), Relay> {
    if out.is_empty() {
        return Ok(());
    }
    let res = write_all(wr, out, timer, idle).await;
    out.clear();
    res
}

/// Write all of `bytes` to the client, which must take some of them within the idle timeout
/// of each wait: a client that stops reading does not hold the target connection (or the
/// task) for ever.
async fn write_all<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut bytes: &[u8],
    timer: &mut Deadline,
    idle: Duration,
) -> Result<(), Relay> {
    while !bytes.is_empty() {
        let n = timed(&mut *timer, idle, |cx| {
            Pin::new(&mut *wr).poll_write(cx, bytes)
        })
        .await?;
        if n == 0 {
            return Err(Relay::Client);
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Run a write (or flush) to the client. The timer is only set once it would block (the clock
/// is not read for one that does not), to the idle timeout from then; after such a wait the
/// next wait, for the target or the client, is timed afresh.
async fn timed<T>(
    timer: &mut Deadline,
    idle: Duration,
    mut op: impl FnMut(&mut Context<'_>) -> Poll<std::io::Result<T>>,
) -> Result<T, Relay> {
    let mut blocked = false;
    let res = std::future::poll_fn(|cx| match op(cx) {
        Poll::Ready(r) => Poll::Ready(r.map_err(|_| Relay::Client)),
        Poll::Pending => {
            if !blocked {
                blocked = true;
                timer.set(Instant::now() + idle);
            }
            timer.poll_expired(cx).map(|()| Err(Relay::Client))
        }
    })
    .await;
    if blocked {
        timer.set(Instant::now() + idle);
    }
    res
}

/// A response failed to reach the client whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relay {
    /// Writing to the client failed.
    Client,
    /// The target's body was malformed before anything of the answer reached the client:
    /// something else can still be answered.
    Unsent,
    /// The target's body broke off, was malformed, or stalled past the idle timeout.
    Target,
}

/// Whether a generated response asks for the connection to close.
pub(super) fn resp_closes(resp: &Response<ProxyBody>) -> bool {
    resp.headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}
