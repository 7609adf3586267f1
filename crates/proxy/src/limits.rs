//! Client-side limits enforced below hyper, on the raw byte stream of a client connection:
//! the idle timeout between requests, the request-header read timeout (slowloris → 408), the
//! header size limit (→ 431), and the request-smuggling checks of [`crate::smuggling`] (→ 400,
//! or 501 for an unknown `Transfer-Encoding`).
//!
//! Why below hyper: hyper's own header timeout also counts the idle time between keep-alive
//! requests and closes without an answer, and hyper silently resolves some ambiguous framings
//! (it drops `Content-Length` when `Transfer-Encoding` is present) before the service could
//! notice them. Here every request head is seen exactly as the client sent it, and an answer is
//! written straight to the socket before it is closed, so hyper never parses a refused head.
//!
//! The wrapper only knows whether a request is being served through [`ConnState`]: the service
//! takes an [`ActiveGuard`] when hyper hands it a request and the guard is dropped with the
//! response body (or when an upgraded tunnel closes). While nothing is active the bytes read are
//! the next request head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::smuggling::{self, Fed, Framing};

/// The HTTP/2 connection preface; a client sending it speaks h2c with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Per-listener limits on what clients may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole request head (request line and headers) must arrive within this time once its
    /// first byte did; otherwise the client gets 408 and the connection is closed (slowloris).
    pub header_read_timeout: Duration,
    /// Largest request head in bytes; a larger one is answered 431 (AWS: 64 KiB total).
    pub max_header_bytes: usize,
    /// Largest request body in bytes, `None` for no limit (as ALB); a larger one is answered
    /// 413.
    pub max_request_body: Option<u64>,
}

impl Default for Limits {
    /// 10 s header read timeout, 64 KiB of headers, unlimited bodies.
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_request_body: None,
        }
    }
}

/// What the request path tells the byte-level wrapper about one client connection.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// Requests (or upgraded tunnels) being served; 0 = the next bytes are a request head.
    active: AtomicUsize,
    /// The connection speaks HTTP/2 (ALPN or preface): no HTTP/1 head checks apply.
    h2: AtomicBool,
    /// The connection was upgraded (WebSocket): the bytes are no longer HTTP messages.
    upgraded: AtomicBool,
    /// The reader that found the connection busy and waits; woken when it becomes idle so
    /// that the idle timer starts.
    reader: Mutex<Option<Waker>>,
}

impl ConnState {
    pub(crate) fn new(h2: bool) -> Arc<ConnState> {
        Arc::new(ConnState {
            active: AtomicUsize::new(0),
            h2: AtomicBool::new(h2),
            upgraded: AtomicBool::new(false),
            reader: Mutex::new(None),
        })
    }

    /// Mark one request as being served until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveGuard(Arc::clone(self))
    }
}

/// Keeps a client connection "busy" (no idle or header timeout) while it lives.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<ConnState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The lock is never held across anything but a swap.
            let waiting = self.0.reader.lock().map(|mut w| w.take());
            if let Ok(Some(w)) = waiting {
                w.wake();
            }
        }
    }
}

/// Which timer is armed while no request is being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    None,
    /// No byte of a new request yet: the idle timeout runs.
    Idle,
    /// A head has begun: the header read timeout runs.
    Head,
}

/// A client connection's byte stream with the limits of this module applied.
pub(crate) struct ClientIo<T> {
    inner: T,
    state: Arc<ConnState>,
    idle_timeout: Duration,
    limits: Limits,
    timer: Pin<Box<Sleep>>,
    armed: Armed,
    /// HTTP/1 message boundaries, so every head is checked (`Off` for HTTP/2 and tunnels).
    framing: Framing,
    /// Whether the first bytes were looked at for the HTTP/2 preface.
    sniffed: bool,
    /// A refused head, answered once no request is being served (so the answer cannot land
    /// in the middle of another response).
    pending: Option<&'static [u8]>,
    /// A refusal being written: the bytes and how many are written; then the read fails.
    refusal: Option<(&'static [u8], usize)>,
}

impl<T> ClientIo<T> {
    pub(crate) fn new(
        inner: T,
        state: Arc<ConnState>,
        idle_timeout: Duration,
        limits: Limits,
    ) -> Self {
        let mut framing = Framing::new(limits.max_header_bytes);
        if state.h2.load(Ordering::Relaxed) {
            framing.stop();
        }
        ClientIo {
            inner,
            state,
            idle_timeout,
            limits,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            armed: Armed::None,
            framing,
            sniffed: false,
            pending: None,
            refusal: None,
        }
    }

    fn arm(&mut self, which: Armed, after: Duration) {
        self.armed = which;
        self.timer.as_mut().reset(Instant::now() + after);
    }

    /// Arm the timer that fits where the stream is, keeping a running header timer.
    fn arm_for_stage(&mut self) {
        if self.framing.in_head() {
            if self.armed != Armed::Head {
                self.arm(Armed::Head, self.limits.header_read_timeout);
            }
        } else {
            self.arm(Armed::Idle, self.idle_timeout);
        }
    }

    /// Be woken when the request being served ends.
    fn wait_until_idle(&self, cx: &mut Context<'_>) {
        if let Ok(mut w) = self.state.reader.lock() {
            *w = Some(cx.waker().clone());
        }
        if self.state.active.load(Ordering::Acquire) == 0 {
            // Became idle meanwhile.
            cx.waker().wake_by_ref();
        }
    }

    fn busy(&self) -> bool {
        self.state.active.load(Ordering::Acquire) > 0
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> ClientIo<T> {
    /// Write the refusal (best effort: the client may be gone), then fail the read so that
    /// hyper drops the connection without parsing anything more.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = self.refusal {
            if done >= bytes.len() {
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[done..]) {
                Poll::Ready(Ok(n)) if n > 0 => self.refusal = Some((bytes, done + n)),
                Poll::Ready(_) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        if Pin::new(&mut self.inner).poll_flush(cx).is_pending() {
            return Poll::Pending;
        }
        // Shut down our side so the client reads EOF right after the answer.
        let _ = Pin::new(&mut self.inner).poll_shutdown(cx);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request refused before parsing",
        )))
    }

    fn refuse(&mut self, cx: &mut Context<'_>, answer: &'static [u8]) -> Poll<io::Result<()>> {
        self.refusal = Some((answer, 0));
        self.poll_refuse(cx)
    }

    /// Sniff the HTTP/2 preface and follow the HTTP/1 framing of newly read bytes.
    fn look_at(&mut self, new: &[u8]) -> Fed {
        if !self.sniffed {
            self.sniffed = true;
            if new.starts_with(&H2_PREFACE[..new.len().min(H2_PREFACE.len())]) {
                // A preface split over reads is unusual; its prefix is enough to stop checking.
                self.state.h2.store(true, Ordering::Relaxed);
                self.framing.stop();
            }
        }
        if self.state.upgraded.load(Ordering::Acquire) {
            self.framing.stop();
        }
        self.framing.feed(new)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return this.poll_refuse(cx);
        }
        if let Some(answer) = this.pending {
            if this.busy() {
                this.wait_until_idle(cx);
                return Poll::Pending;
            }
            return this.refuse(cx, answer);
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        match res {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let fed = this.look_at(&buf.filled()[before..]);
                if let Fed::Refuse { answer, at } = fed {
                    // Hand hyper the bytes of earlier messages only; the refused head never
                    // reaches it whole.
                    buf.set_filled(before + at);
                    this.pending = Some(answer);
                    if at == 0 {
                        if this.busy() {
                            this.wait_until_idle(cx);
                            return Poll::Pending;
                        }
                        return this.refuse(cx, answer);
                    }
                    return Poll::Ready(Ok(()));
                }
                if this.busy() {
                    this.armed = Armed::None;
                } else {
                    this.arm_for_stage();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.busy() {
                    // A request is being served: the forwarding path has its own timeouts.
                    this.armed = Armed::None;
                    this.wait_until_idle(cx);
                    return Poll::Pending;
                }
                if this.armed == Armed::None
                    || (this.armed == Armed::Idle && this.framing.in_head())
                {
                    this.arm_for_stage();
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                match this.armed {
                    Armed::Head if this.framing.in_head() => {
                        tracing::debug!("request head not received in time; answering 408");
                        this.refuse(cx, smuggling::REQUEST_TIMEOUT)
                    }
                    // Idle too long between requests: close as if the client had (EOF).
                    _ => Poll::Ready(Ok(())),
                }
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClientIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
