//! Network load balancer listeners (ELB `type = "network"`, `protocol = "tcp"`): accept a TCP
//! connection, choose a target by flow hash, connect, optionally send a PROXY protocol v2
//! header, then copy bytes both ways until either side closes.
//!
//! As in AWS, the flow hash covers the client's address and port, the listener's port and a
//! per-connection nonce (AWS uses the TCP sequence number), so each new connection may land on
//! another target while one connection stays on its target for life.

use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::InFlight;
use crate::proxy_protocol;
use crate::target_group::{Backend, TargetGroup};
use crate::{ListenerStats, ProxyError};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often an open flow checks that its target is still registered (a flow to a target whose
/// deregistration delay ended is closed).
const MEMBERSHIP_CHECK: Duration = Duration::from_secs(1);

/// Settings of one TCP listener, mirroring the NLB and target group attributes.
#[derive(Debug, Clone, Copy)]
pub struct TcpListenerConfig {
    /// The load balancer's `idle_timeout` (AWS NLB: 350 s): a flow with no byte in either
    /// direction for this long is closed.
    pub idle_timeout: Duration,
    /// How long connecting to a target may take before another target is tried (AWS: 10 s).
    pub connect_timeout: Duration,
    /// Target group attribute `proxy_protocol_v2`: send a PROXY protocol v2 header carrying the
    /// client's address before the client's bytes.
    pub proxy_protocol_v2: bool,
}

impl Default for TcpListenerConfig {
    /// The AWS defaults: 350 s idle timeout, 10 s connect timeout, no PROXY protocol.
    fn default() -> Self {
        TcpListenerConfig {
            idle_timeout: Duration::from_secs(350),
            connect_timeout: Duration::from_secs(10),
            proxy_protocol_v2: false,
        }
    }
}

/// Serves a network load balancer listener: every accepted connection is spliced to one target
/// of `target_group`. Returns after `shutdown` turns true (or its sender is dropped) and every
/// open flow has ended; dropping the returned future closes the flows still open.
pub async fn serve_tcp(
    listener: TcpListener,
    target_group: Arc<TargetGroup>,
    config: TcpListenerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ProxyError> {
    let stats = Arc::new(ListenerStats::default());
    serve_tcp_with_stats(listener, target_group, config, stats, shutdown).await
}

/// [`serve_tcp`], counting connections, bytes and resets into `stats`, which the runtime keeps
/// to publish load-balancer-scope metrics.
pub async fn serve_tcp_with_stats(
    listener: TcpListener,
    target_group: Arc<TargetGroup>,
    config: TcpListenerConfig,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProxyError> {
    let local = listener.local_addr().map_err(ProxyError::Listener)?;
    // Random keys per listener: flow hashes cannot be predicted by clients.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut nonce: u64 = 0;
    let mut flows = JoinSet::new();
    tracing::info!(addr = %local, group = target_group.name(), "tcp listener started");
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            Some(_) = flows.join_next() => continue,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(addr = %local, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        nonce = nonce.wrapping_add(1);
        let hash = hasher.hash_one((peer.ip(), peer.port(), local.port(), nonce));
        stats.connection_opened();
        let flow = Flow {
            peer,
            local,
            hash,
            group: Arc::clone(&target_group),
            config,
            stats: Arc::clone(&stats),
        };
        flows.spawn(flow.run(stream));
    }
    drop(listener);
    tracing::info!(addr = %local, open = flows.len(), "tcp listener stopping; waiting for open flows");
    while flows.join_next().await.is_some() {}
    Ok(())
}

/// One client connection and what it needs.
struct Flow {
    peer: SocketAddr,
    local: SocketAddr,
    hash: u64,
    group: Arc<TargetGroup>,
    config: TcpListenerConfig,
    stats: Arc<ListenerStats>,
}

/// Why a spliced flow ended.
#[derive(Debug)]
enum End {
    /// Both sides closed (or one failed): the normal end.
    Closed(io::Result<(u64, u64)>),
    /// No byte either way for the idle timeout.
    Idle,
    /// The target was deregistered and its delay is over.
    Deregistered,
}

impl Flow {
    async fn run(self, client: TcpStream) {
        let _open = OpenConnection(Arc::clone(&self.stats));
        let Some((backend, upstream)) = self.connect().await else {
            // No target could take the flow: closing the client connection is all there is.
            self.stats.tcp_reset();
            return;
        };
        let _in_flight = InFlight::start(&backend);
        backend.metrics.flows.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let mut upstream = upstream;
        if self.config.proxy_protocol_v2 {
            let header = proxy_protocol::header_v2(self.peer, self.local);
            if let Err(e) = upstream.write_all(&header).await {
                tracing::debug!(target = %backend.addr, error = %e, "writing the PROXY header failed");
                return;
            }
        }
        let moved = AtomicU64::new(0);
        let mut a = Tracked::new(client, &moved, &self.stats);
        let mut b = Tracked::new(upstream, &moved, &self.stats);
        let end = {
            let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
            let watch = self.watchdog(&backend, &moved);
            tokio::select! {
                res = copy => End::Closed(res),
                end = watch => end,
            }
        };
        match end {
            End::Closed(Ok(_)) => {}
            End::Closed(Err(e)) => {
                tracing::debug!(client = %self.peer, target = %backend.addr, error = %e, "flow ended with an error");
            }
            reason => {
                tracing::debug!(client = %self.peer, target = %backend.addr, ?reason, "flow closed by the load balancer");
            }
        }
    }

    /// Choose a target by flow hash and connect; a target that refuses or times out is ejected
    /// and one other target is tried.
    async fn connect(&self) -> Option<(Arc<Backend>, TcpStream)> {
        let mut failed: Option<Arc<Backend>> = None;
        for _ in 0..2 {
            let Some(backend) = self.group.pick_flow(self.hash, failed.as_ref()) else {
                tracing::debug!(group = self.group.name(), client = %self.peer, "no routable target for the flow");
                return None;
            };
            let res = tokio::time::timeout(
                self.config.connect_timeout,
                TcpStream::connect(backend.addr),
            )
            .await;
            match res {
                Ok(Ok(stream)) => {
                    backend.connected();
                    return Some((backend, stream));
                }
                Ok(Err(e)) => {
                    tracing::debug!(target = %backend.addr, error = %e, "target refused the flow");
                }
                Err(_) => {
                    tracing::debug!(target = %backend.addr, "connecting to the target timed out");
                }
            }
            backend.eject();
            backend.errors_total.fetch_add(1, Ordering::Relaxed);
            failed = Some(backend);
        }
        tracing::info!(group = self.group.name(), client = %self.peer, "flow failed on two targets");
        None
    }

    /// Ends when the flow has been idle for the idle timeout or its target is no longer
    /// registered; pending otherwise. Idleness is seen by sampling the flow's byte count a few
    /// times per timeout, so the copy loop reads no clock.
    async fn watchdog(&self, backend: &Arc<Backend>, moved: &AtomicU64) -> End {
        let idle = self.config.idle_timeout;
        let step = MEMBERSHIP_CHECK.min(idle / 4).max(Duration::from_millis(1));
        let mut seen = moved.load(Ordering::Relaxed);
        let mut quiet = Duration::ZERO;
        loop {
            tokio::time::sleep(step).await;
            if !self.group.is_registered(backend) {
                return End::Deregistered;
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
    }
}

/// Counts a client connection as open for as long as its task lives.
struct OpenConnection(Arc<ListenerStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// A stream that counts the bytes it delivers: into the flow's count (for the idle timeout)
/// and the listener's (so per-second byte metrics of long flows stay current).
struct Tracked<'a> {
    inner: TcpStream,
    moved: &'a AtomicU64,
    stats: &'a ListenerStats,
}

impl<'a> Tracked<'a> {
    fn new(inner: TcpStream, moved: &'a AtomicU64, stats: &'a ListenerStats) -> Self {
        Tracked {
            inner,
            moved,
            stats,
        }
    }
}

impl AsyncRead for Tracked<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.stats.bytes(n as u64);
            this.moved.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }
}

impl AsyncWrite for Tracked<'_> {
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
