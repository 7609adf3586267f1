//! WebSocket tunnels: once a target answered an upgrade request with 101, the client and target
//! connections are spliced byte for byte, pinned to that target, until either side closes or
//! nothing moves for the idle timeout (ALB applies its idle timeout to WebSocket connections).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::target_group::now_ms;

/// Splice `client` and `target` until one side closes or both are idle for `idle`.
pub(crate) async fn splice<C, T>(client: &mut C, target: &mut T, idle: Duration, addr: SocketAddr)
where
    C: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(now_ms()));
    let mut client = Active::new(client, &last);
    let mut target = Active::new(target, &last);
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut client, &mut target) => match res {
            Ok((up, down)) => tracing::debug!(target = %addr, up, down, "upgraded connection closed"),
            Err(e) => tracing::debug!(target = %addr, error = %e, "upgraded connection failed"),
        },
        () = idle_watch(&last, idle) => {
            tracing::debug!(target = %addr, "upgraded connection idle too long; closing");
        }
    }
}

/// Resolves once nothing moved in either direction for `idle` (ALB applies its idle timeout
/// to WebSocket connections too).
async fn idle_watch(last: &AtomicU64, idle: Duration) {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        let quiet = now_ms().saturating_sub(last.load(Ordering::Relaxed));
        if quiet >= idle_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(idle_ms - quiet)).await;
    }
}

/// One side of a tunnel, recording when it last read anything.
struct Active<T> {
    inner: T,
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn new(inner: T, last: &Arc<AtomicU64>) -> Self {
        Active {
            inner,
            last: Arc::clone(last),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if res.is_ready() {
            this.last.store(now_ms(), Ordering::Relaxed);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
