//! The edge under `flotilla up`: the DNS server (`[dns]`) and the distributions
//! (`[distributions.NAME]`), bound with the listeners, fed the cluster's addresses and health
//! once a second, reloaded with the config and stopped first on shutdown. The decisions are
//! in `flotilla-dns` and `flotilla-edge`; this only wires them.

mod admin;
mod live;
mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_config::Config;
use flotilla_dns::{BoundDns, DnsService};
use flotilla_edge::{BoundEdges, EdgeService};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shared::{lock, Shared};
use crate::RuntimeError;

pub(crate) use admin::{
    check_info, checks_info, decode_health_check, decode_records, distributions_info, records_info,
    zones_info, EdgeAdmin,
};
pub(crate) use live::{healthy_of, LiveAliases, LiveOrigins, OriginTable};
pub(crate) use metrics::{register as register_metrics, render as prometheus};

/// How often alias and origin tables are refreshed from the cluster.
const REFRESH: Duration = Duration::from_secs(1);

/// The edge's sockets, bound before anything starts.
pub(crate) struct Bound {
    dns: Option<BoundDns>,
    edges: BoundEdges,
    /// Duplicates of every socket, for a hot upgrade's successor.
    sockets: Sockets,
}

/// The edge's listening sockets as a hot upgrade hands them over: kept (duplicated) by the
/// running edge, sent to the successor, taken by its [`bind`] instead of binding anew — so
/// neither a DNS query nor a viewer's connection finds the port closed.
#[derive(Default)]
pub(crate) struct Sockets {
    /// The DNS server's `[dns] bind`, its UDP socket and its TCP socket.
    pub(crate) dns: Option<(SocketAddr, OwnedFd, OwnedFd)>,
    /// Distribution listeners, by configured address.
    pub(crate) distributions: Vec<(SocketAddr, OwnedFd)>,
}

impl Sockets {
    /// Duplicates, to send (the running edge keeps its own should the upgrade fail).
    pub(crate) fn try_clone(&self) -> std::io::Result<Sockets> {
        let dns = match &self.dns {
            Some((addr, udp, tcp)) => Some((*addr, udp.try_clone()?, tcp.try_clone()?)),
            None => None,
        };
        let distributions = self
            .distributions
            .iter()
            .map(|(addr, fd)| Ok((*addr, fd.try_clone()?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Sockets { dns, distributions })
    }
}

fn handed_over(addr: SocketAddr) {
    tracing::info!(%addr, from = "the previous flotilla process", "edge socket taken over, not bound anew");
}

/// Binds the DNS server's UDP and TCP sockets and every distribution listener, or takes
/// them from `handed` (a hot upgrade's predecessor's, by configured address). Handed sockets
/// the config has no use for are closed here (the predecessor drains its own).
pub(crate) async fn bind(config: &Config, handed: Sockets) -> Result<Bound, RuntimeError> {
    let bind_error = |addr| move |source| RuntimeError::Bind { addr, source };
    let dns = match &config.dns {
        Some(d) => Some(match handed.dns {
            Some((addr, udp, tcp)) if addr == d.bind => {
                handed_over(addr);
                BoundDns::from_std(udp.into(), tcp.into()).map_err(bind_error(addr))?
            }
            _ => BoundDns::bind(d.bind).await.map_err(bind_error(d.bind))?,
        }),
        None => None,
    };
    let mut distributions: HashMap<SocketAddr, OwnedFd> =
        handed.distributions.into_iter().collect();
    let edges = BoundEdges::bind(&config.distributions, |addr| {
        let fd = distributions.remove(&addr)?;
        handed_over(addr);
        Some(std::net::TcpListener::from(fd))
    })
    .await
    .map_err(|e| RuntimeError::Edge(e.to_string()))?;
    for addr in distributions.keys() {
        tracing::warn!(%addr, "a handed-over distribution socket is not in the config; closed");
    }
    let duplicate = |e: std::io::Error| RuntimeError::Edge(format!("edge sockets: {e}"));
    let sockets = Sockets {
        dns: match (&dns, &config.dns) {
            (Some(b), Some(d)) => {
                let (udp, tcp) = b.duplicate().map_err(duplicate)?;
                Some((d.bind, udp, tcp))
            }
            _ => None,
        },
        distributions: edges.duplicate().map_err(duplicate)?,
    };
    Ok(Bound {
        dns,
        edges,
        sockets,
    })
}

/// The running edge.
pub(crate) struct EdgeRuntime {
    pub(crate) dns: Option<DnsService>,
    pub(crate) edges: EdgeService,
    stop: watch::Sender<bool>,
    refresher: JoinHandle<()>,
    /// Duplicates of its listening sockets, for a hot upgrade.
    pub(crate) sockets: Sockets,
}

/// Where the running edge lives in [`Shared`] (taken out on shutdown).
pub(crate) type Slot = Mutex<Option<EdgeRuntime>>;

impl Bound {
    /// Starts the edge over the cluster in `shared`, and puts it in `shared`'s slot.
    pub(crate) fn start(self, shared: &Arc<Shared>) {
        let aliases = Arc::new(live::LiveAliases::default());
        let origins = Arc::new(live::LiveOrigins::default());
        let edges = self.edges.start(origins.clone());
        let edge_addrs: HashMap<String, Vec<SocketAddr>> = edges
            .all()
            .map(|(n, _)| (n.clone(), edges.addresses(n).to_vec()))
            .collect();
        live::refresh(shared, &aliases, &origins, &edge_addrs);
        let dns_addr = self.dns.as_ref().and_then(|b| b.local_addr().ok());
        let dns = match (self.dns, &shared.config().dns) {
            (Some(bound), Some(cfg)) => Some(DnsService::start(bound, cfg, aliases.clone())),
            _ => None,
        };
        if let Some(a) = dns_addr {
            tracing::info!(addr = %a, "dns serving (udp and tcp)");
        }
        let (stop, mut stop_rx) = watch::channel(false);
        let weak = Arc::downgrade(shared);
        let refresher = tokio::spawn(async move {
            let stopped = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(REFRESH) => {}
                }
                let Some(shared) = weak.upgrade() else { break };
                live::refresh(&shared, &aliases, &origins, &edge_addrs);
            }
        });
        *lock(&shared.edge) = Some(EdgeRuntime {
            dns,
            edges,
            stop,
            refresher,
            sockets: self.sockets,
        });
    }
}

/// Why `new` cannot be applied by a reload.
pub(crate) fn reload_blockers(shared: &Shared, old: &Config, new: &Config) -> Vec<String> {
    let mut why = Vec::new();
    if old.dns.as_ref().map(|d| d.bind) != new.dns.as_ref().map(|d| d.bind) {
        why.push("[dns] was added, removed or its bind changed".to_string());
    }
    if let Some(e) = lock(&shared.edge).as_ref() {
        why.extend(e.edges.reload_blockers(&new.distributions));
    }
    why
}

/// Applies a reloaded config to the DNS zones, health checks and distributions.
pub(crate) fn reconfigure(shared: &Shared, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    let guard = lock(&shared.edge);
    let Some(e) = guard.as_ref() else {
        return changes;
    };
    if let (Some(dns), Some(cfg)) = (&e.dns, &new.dns) {
        dns.reconfigure(cfg);
        changes.push("dns zones and health checks reloaded".to_string());
    }
    if !new.distributions.is_empty() {
        e.edges.reconfigure(&new.distributions);
        changes.push("distributions reloaded".to_string());
    }
    changes
}

/// Stops answering DNS and serving distributions.
pub(crate) async fn stop(shared: &Shared) {
    let Some(e) = lock(&shared.edge).take() else {
        return;
    };
    let _ = e.stop.send(true);
    if let Some(dns) = e.dns {
        dns.stop().await;
    }
    e.edges.stop().await;
    let _ = e.refresher.await;
}
