//! Keep-alive connections to one backend.
//!
//! A deliberately small pool instead of hyper-util's client: the forwarding path needs to know
//! whether a connection was reused or fresh, and to keep ownership of a request until a
//! connection is ready, to decide what may be retried.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ReqBody;

/// Most idle connections kept per backend; beyond this the oldest is closed.
const MAX_IDLE: usize = 512;

/// How long a taken connection may take to become ready (its previous exchange is still
/// being wound down by its connection task) before another one is used instead.
const READY_WAIT: Duration = Duration::from_millis(100);

struct Idle {
    conn: SendRequest<ReqBody>,
    since: Instant,
}

/// Idle keep-alive connections of one backend, reused last-in first-out (the most recently
/// used connection is the least likely to have been closed by the target).
///
/// The mutex guards two `VecDeque` operations and is never held across an await.
#[derive(Default)]
pub(crate) struct Pool {
    /// Plain HTTP/1.1 connections used by the HTTP/1 engine.
    pub(crate) h1: crate::h1::Pool,
    idle: Mutex<VecDeque<Idle>>,
    /// The one multiplexed HTTP/2 connection used for target groups that speak HTTP/2 or gRPC.
    pub(crate) h2: Mutex<Option<hyper::client::conn::http2::SendRequest<ReqBody>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.lock().len())
            .finish()
    }
}

/// Why a new connection to a target could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("HTTP handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // The deque is consistent even if a holder panicked.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is still open and ready, if any. Connections
    /// found closed, idle longer than `max_idle`, or not becoming ready are discarded.
    pub(crate) async fn take(&self, max_idle: Duration) -> Option<SendRequest<ReqBody>> {
        loop {
            let Idle { mut conn, since } = self.lock().pop_back()?;
            if conn.is_closed() || since.elapsed() >= max_idle {
                continue;
            }
            if conn.is_ready() {
                return Some(conn);
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, conn.ready()).await {
                return Some(conn);
            }
        }
    }

    /// Return a connection after its response was fully read.
    pub(crate) fn put(&self, conn: SendRequest<ReqBody>, max_idle: Duration) {
        if conn.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        // The oldest entries sit at the front: close those that outlived the idle timeout.
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) >= max_idle || i.conn.is_closed())
        {
            idle.pop_front();
        }
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
    }

    /// Number of idle connections (tests and diagnostics).
    #[allow(dead_code)]
    pub(crate) fn idle_len(&self) -> usize {
        self.lock().len()
    }
}

/// Open a new HTTP/1.1 connection to `addr` (TCP_NODELAY) and spawn its connection task.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<SendRequest<ReqBody>, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target = %addr, error = %e, "target connection ended with an error");
        }
    });
    Ok(sender)
}
