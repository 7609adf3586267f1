//! Keep-alive HTTP/1.1 connections to one target, owned by the client connection that uses
//! them for the length of one exchange and parked in the target's pool in between.
//!
//! There is no connection task and no channel: the client connection's own task writes the
//! request and reads the response on the socket directly, which is what makes an exchange cost
//! four system calls and no wake-up of another task.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::buf::InBuf;
use super::Deadline;

/// Most idle connections kept per target; beyond this the oldest is closed.
const MAX_IDLE: usize = 512;

/// Pooled connections a request may find closed by the target before it insists on a fresh
/// one (keeps the loop bounded whatever the pool holds).
pub(crate) const MAX_STALE: usize = 3;

/// A connection to `backend` for one attempt: a pooled one unless `stale` pooled ones were
/// already found closed, else a new one (the caller reports a failed connect to its
/// [`crate::lb::forwarding::Forwarding`], which ejects the backend). Also whether
/// it was pooled, and the one clock reading the attempt uses (pool, timer, response time).
pub(crate) async fn checkout(
    backend: &crate::lb::target_group::Backend,
    idle: Duration,
    connect_timeout: Duration,
    stale: usize,
) -> Result<(UpConn, bool, Instant), ConnectError> {
    let now = Instant::now();
    if stale < MAX_STALE {
        if let Some(c) = backend.pool.h1.take(idle, now) {
            return Ok((c, true, now));
        }
    }
    match UpConn::connect(backend.addr, connect_timeout).await {
        Ok(c) => Ok((c, false, Instant::now())),
        Err(e) => {
            tracing::debug!(target = %backend.addr, error = %e, "connect failed");
            Err(e)
        }
    }
}

/// One connection to a target, with its read buffer.
#[derive(Debug)]
pub(crate) struct UpConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: InBuf,
    /// The response-head timer of HTTP/2 clients' exchanges ([`super::client::read_head`]),
    /// made on first use and kept with the connection: each request then only moves its
    /// deadline instead of registering and removing a timer. (The HTTP/1 engine times its
    /// exchanges with the client connection's own [`Deadline`].)
    pub(crate) timer: Option<Deadline>,
}

/// Why a new connection to a target could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
}

impl UpConn {
    /// Open a new connection (`TCP_NODELAY`: every write is a complete message).
    pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(UpConn {
            stream,
            buf: InBuf::new(),
            timer: None,
        })
    }

    /// Write `bytes` to the target. A target that takes none of them until `by` (the deadline
    /// of the exchange's answer) fails the write; the wait is timed by the connection's own
    /// timer, made at its first wait, so a write that does not block costs no timer.
    pub(crate) async fn send(
        &mut self,
        mut bytes: &[u8],
        by: tokio::time::Instant,
    ) -> io::Result<()> {
        let mut armed = false;
        while !bytes.is_empty() {
            let n = std::future::poll_fn(|cx| {
                let Poll::Ready(res) = Pin::new(&mut self.stream).poll_write(cx, bytes) else {
                    if !std::mem::replace(&mut armed, true) {
                        match self.timer.as_mut() {
                            Some(t) => t.set(by),
                            None => self.timer = Some(Deadline::new(by)),
                        }
                    }
                    let expired = self.timer.as_mut().map(|t| t.poll_expired(cx));
                    if expired.is_some_and(|e| e.is_ready()) {
                        return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                    }
                    return Poll::Pending;
                };
                Poll::Ready(res)
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Whether an idle connection is still usable: the target has neither closed it nor sent
    /// anything unasked. Costs a system call only when the reactor saw the socket become
    /// readable (which, for an idle connection, means bad news).
    fn still_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

struct Idle {
    conn: UpConn,
    since: Instant,
}

/// The idle keep-alive connections of one target, reused last-in first-out (the most recently
/// used is the least likely to have been closed by the target). The mutex guards a push or a
/// pop and is never held across an await.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.lock().len())
            .finish()
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list is consistent even if a holder panicked.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently parked connection that is still open and idle for less than
    /// `max_idle` at `now`; others met on the way are closed.
    pub(crate) fn take(&self, max_idle: Duration, now: Instant) -> Option<UpConn> {
        loop {
            let Idle { mut conn, since } = self.lock().pop()?;
            if now.saturating_duration_since(since) < max_idle && conn.still_open() {
                return Some(conn);
            }
        }
    }

    /// Park a connection whose last response was read completely (at about `now`).
    pub(crate) fn put(&self, mut conn: UpConn, max_idle: Duration, now: Instant) {
        // Parked, it reads nothing: its buffer (empty, or it would not be reusable) goes back.
        conn.buf.release();
        let mut idle = self.lock();
        // The oldest sit at the front: drop those that outlived the idle timeout.
        let expired = idle
            .iter()
            .take_while(|i| now.saturating_duration_since(i.since) >= max_idle)
            .count();
        idle.drain(..expired);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle { conn, since: now });
    }

    /// Idle connections parked now (tests and diagnostics).
    pub(crate) fn idle_len(&self) -> usize {
        self.lock().len()
    }
}
