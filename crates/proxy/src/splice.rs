//! Splicing two byte streams until either side closes, nothing moves for the idle timeout, or
//! the caller says stop: network load balancer flows and WebSocket tunnels (ALB applies its idle
//! timeout to WebSocket connections too).
//!
//! Idleness is seen by sampling the bytes moved a few times per timeout, so the copy loop reads
//! no clock.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ListenerStats;

/// How often at most the watchdog looks, whatever the idle timeout (the stop condition is
/// checked as often).
const STEP: Duration = Duration::from_secs(1);

/// Why a splice ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Both sides closed (or one failed): the normal end; bytes moved each way.
    Closed(io::Result<(u64, u64)>),
    /// No byte either way for the idle timeout.
    Idle,
    /// The caller's stop condition held.
    Stopped,
}

/// Copy between `a` and `b` both ways until one of the ends of [`End`]; bytes read are counted
/// into `stats` when given (long flows keep per-second byte metrics current). `stop` is checked
/// about once a second.
pub(crate) async fn splice<A, B>(
    a: A,
    b: B,
    idle: Duration,
    stats: Option<&ListenerStats>,
    mut stop: impl FnMut() -> bool,
) -> End
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let moved = AtomicU64::new(0);
    let mut a = Metered {
        inner: a,
        moved: &moved,
        stats,
    };
    let mut b = Metered {
        inner: b,
        moved: &moved,
        stats,
    };
    let watchdog = async {
        let step = STEP.min(idle / 4).max(Duration::from_millis(1));
        let mut seen = moved.load(Ordering::Relaxed);
        let mut quiet = Duration::ZERO;
        loop {
            tokio::time::sleep(step).await;
            if stop() {
                return End::Stopped;
            }
            let now = moved.load(Ordering::Relaxed);
            if now == seen {
                quiet += step;
                if quiet >= idle {
                    return End::Idle;
                }
            } else {
                (seen, quiet) = (now, Duration::ZERO);
            }
        }
    };
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut a, &mut b) => End::Closed(res),
        end = watchdog => end,
    }
}

/// A stream that counts the bytes it delivers.
struct Metered<'a, T> {
    inner: T,
    moved: &'a AtomicU64,
    stats: Option<&'a ListenerStats>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            this.moved.fetch_add(n, Ordering::Relaxed);
            if let Some(stats) = this.stats {
                stats.bytes(n);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<'_, T> {
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
