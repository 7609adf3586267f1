//! Splicing two byte streams until either side closes, nothing moves for the idle timeout, or
//! the caller says stop: network load balancer flows and WebSocket tunnels (ALB applies its idle
//! timeout to WebSocket connections too).
//!
//! Idleness is seen by sampling the bytes moved a few times per timeout, so the copy loop reads
//! no clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ListenerStats;

/// How often at most the watchdog looks, whatever the idle timeout (the stop condition is
/// checked as often).
const STEP: Duration = Duration::from_secs(1);

/// Each direction's buffer, as tokio's own copy uses.
const BUF: usize = 8 * 1024;

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
///
/// One future polls both directions and the watchdog's timer, without a `select!` or a
/// metering wrapper around each stream: on a network load balancer this loop is all the user
/// space work a request costs.
pub(crate) async fn splice<A, B>(
    mut a: A,
    mut b: B,
    idle: Duration,
    stats: Option<&ListenerStats>,
    mut stop: impl FnMut() -> bool,
) -> End
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let step = STEP.min(idle / 4).max(Duration::from_millis(1));
    let mut a_to_b = Pump::new();
    let mut b_to_a = Pump::new();
    let mut seen = 0u64;
    let mut quiet = Duration::ZERO;
    let watchdog = tokio::time::sleep(step);
    tokio::pin!(watchdog);
    std::future::poll_fn(|cx| {
        let moved_before = a_to_b.moved + b_to_a.moved;
        if let Err(e) = a_to_b.poll(cx, &mut a, &mut b) {
            return Poll::Ready(End::Closed(Err(e)));
        }
        if let Err(e) = b_to_a.poll(cx, &mut b, &mut a) {
            return Poll::Ready(End::Closed(Err(e)));
        }
        let moved = a_to_b.moved + b_to_a.moved;
        if let Some(stats) = stats {
            if moved > moved_before {
                stats.bytes(moved - moved_before);
            }
        }
        if a_to_b.done && b_to_a.done {
            return Poll::Ready(End::Closed(Ok((a_to_b.moved, b_to_a.moved))));
        }
        while watchdog.as_mut().poll(cx).is_ready() {
            if stop() {
                return Poll::Ready(End::Stopped);
            }
            if moved == seen {
                quiet += step;
                if quiet >= idle {
                    return Poll::Ready(End::Idle);
                }
            } else {
                (seen, quiet) = (moved, Duration::ZERO);
            }
            watchdog.as_mut().reset(tokio::time::Instant::now() + step);
        }
        Poll::Pending
    })
    .await
}

/// Bytes in one direction: read into the buffer, write it all out, again; at the end of the
/// source, shut the destination's write side.
struct Pump {
    buf: Box<[u8]>,
    /// `buf[at..len]` is read and not yet written.
    at: usize,
    len: usize,
    /// Written since the destination was last flushed (TLS streams buffer).
    unflushed: bool,
    eof: bool,
    done: bool,
    /// Bytes read from the source.
    moved: u64,
}

impl Pump {
    fn new() -> Pump {
        Pump {
            buf: vec![0; BUF].into_boxed_slice(),
            at: 0,
            len: 0,
            unflushed: false,
            eof: false,
            done: false,
            moved: 0,
        }
    }

    /// Move what can be moved now. `Ok` whether or not it finished (see `done`).
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, src: &mut R, dst: &mut W) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        while !self.done {
            if self.at < self.len {
                match Pin::new(&mut *dst).poll_write(cx, &self.buf[self.at..self.len])? {
                    Poll::Ready(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(n) => {
                        self.at += n;
                        self.unflushed = true;
                        continue;
                    }
                    Poll::Pending => return Ok(()),
                }
            }
            if self.eof {
                match Pin::new(&mut *dst).poll_shutdown(cx)? {
                    Poll::Ready(()) => self.done = true,
                    Poll::Pending => return Ok(()),
                }
                continue;
            }
            let mut read = ReadBuf::new(&mut self.buf);
            match Pin::new(&mut *src).poll_read(cx, &mut read)? {
                Poll::Ready(()) => {
                    let n = read.filled().len();
                    if n == 0 {
                        self.eof = true;
                    } else {
                        (self.at, self.len) = (0, n);
                        self.moved += n as u64;
                    }
                }
                Poll::Pending => {
                    if self.unflushed && Pin::new(&mut *dst).poll_flush(cx)?.is_ready() {
                        self.unflushed = false;
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
