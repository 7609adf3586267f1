//! Per-listener limits on what clients may send (enforced by the HTTP/1 engine, [`crate::h1`],
//! and for HTTP/2 by hyper's header-list limit), and the idle timeout of HTTP/2 client
//! connections: hyper has none that ends a connection after `idle_timeout` without a stream,
//! so [`ClientIo`] watches the byte stream below it and ends the connection (as a clean end
//! of stream) once no stream was open and nothing came for that long.
//!
//! The wrapper only knows whether a stream is being served through [`ConnState`]: the service
//! takes an [`ActiveGuard`] when hyper hands it a request, and the guard is dropped with the
//! response body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

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
    /// Streams being served; 0 = the connection is idle.
    active: AtomicUsize,
    /// The reader that found the connection busy and waits; woken when it becomes idle so
    /// that the idle timer starts.
    reader: Mutex<Option<Waker>>,
}

impl ConnState {
    pub(crate) fn new() -> Arc<ConnState> {
        Arc::new(ConnState::default())
    }

    /// Mark one stream as being served until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveGuard(Arc::clone(self))
    }
}

/// Keeps a client connection "busy" (no idle timeout) while it lives.
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

/// A client connection's byte stream with the idle timeout applied.
pub(crate) struct ClientIo<T> {
    inner: T,
    state: Arc<ConnState>,
    idle_timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// The idle timer runs (nothing is being served).
    armed: bool,
}

impl<T> ClientIo<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>, idle_timeout: Duration) -> Self {
        ClientIo {
            inner,
            state,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            armed: false,
        }
    }

    fn arm(&mut self) {
        self.armed = true;
        self.timer
            .as_mut()
            .reset(Instant::now() + self.idle_timeout);
    }

    /// Be woken when the stream being served ends.
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

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if this.busy() {
                    this.armed = false;
                } else {
                    this.arm();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.busy() {
                    this.armed = false;
                    this.wait_until_idle(cx);
                    return Poll::Pending;
                }
                if !this.armed {
                    this.arm();
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Idle too long: end the stream as if the client had closed it.
                Poll::Ready(Ok(()))
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
