//! Network load balancer listeners (ELB `type = "network"`, `protocol = "tcp"`): accept a TCP
//! connection, choose a target by flow hash, connect, optionally send a PROXY protocol v2
//! header, then copy bytes both ways until either side closes.
//!
//! As in AWS, the flow hash covers the client's address and port, the listener's port and a
//! per-connection nonce (AWS uses the TCP sequence number), so each new connection may land on
//! another target while one connection stays on its target for life.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::body::InFlight;
use crate::l4::proxy_protocol;
use crate::l4::splice::{splice, End};
use crate::lb::forwarding::{Failure, Forwarding};
use crate::lb::target_group::{Backend, TargetGroup};
use crate::{ListenerStats, ProxyError};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Settings of one TCP listener, mirroring the NLB and target group attributes.
#[derive(Debug, Clone, Copy)]
pub struct TcpListenerConfig {
    /// The load balancer's `idle_timeout` (AWS NLB: 350 s): a flow with no byte in either
    /// direction for this long is closed.
    pub idle_timeout: Duration,
    /// Target group attribute `proxy_protocol_v2`: send a PROXY protocol v2 header carrying the
    /// client's address before the client's bytes.
    pub proxy_protocol_v2: bool,
}

impl Default for TcpListenerConfig {
    /// The AWS defaults: 350 s idle timeout, no PROXY protocol (the connect timeout is the
    /// target group's).
    fn default() -> Self {
        TcpListenerConfig {
            idle_timeout: Duration::from_secs(350),
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
        flows.spawn(flow.run(stream).instrument(crate::trace::flow(peer, local)));
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

impl Flow {
    async fn run(self, client: TcpStream) {
        let _open = OpenConnection(Arc::clone(&self.stats));
        let Some((backend, upstream, _in_flight)) = self.connect().await else {
            // No target could take the flow: closing the client connection is all there is.
            self.stats.tcp_reset();
            return;
        };
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
        // A flow to a target whose deregistration delay is over is closed.
        let deregistered = || !self.group.is_registered(&backend);
        let end = splice(
            client,
            upstream,
            self.config.idle_timeout,
            Some(&self.stats),
            deregistered,
        )
        .await;
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

    /// A target for the flow, chosen by its hash on the forwarding path, and a connection to
    /// it, counted in flight; a target that refuses or times out is ejected and one other
    /// target is tried.
    async fn connect(&self) -> Option<(Arc<Backend>, TcpStream, InFlight)> {
        let Some(mut path) = Forwarding::flow(&self.group, self.hash).await else {
            tracing::debug!(group = self.group.name(), client = %self.peer, "no routable target for the flow");
            return None;
        };
        loop {
            let in_flight = path.begin();
            let addr = path.target().addr;
            let failure = match tokio::time::timeout(
                path.connect_timeout(),
                TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(stream)) => {
                    path.flow_opened();
                    return Some((Arc::clone(path.target()), stream, in_flight));
                }
                Ok(Err(e)) => {
                    tracing::debug!(target = %addr, error = %e, "target refused the flow");
                    Failure::ConnectFailed
                }
                Err(_) => {
                    tracing::debug!(target = %addr, "connecting to the target timed out");
                    Failure::ConnectTimeout
                }
            };
            drop(in_flight);
            if !path.retry(failure, true) {
                path.give_up(failure);
                return None;
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
