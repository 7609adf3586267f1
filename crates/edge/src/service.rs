//! Every distribution of a config as `flotilla up` runs them: listeners bound before
//! anything starts, served until stop, reconfigured in place by reloads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flotilla_config::edge::Distribution;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::dist::Edge;
use crate::origin::OriginResolver;
use crate::server::{BoundListener, ListenError};

/// Distributions whose listeners are bound, not yet serving.
pub struct BoundEdges {
    bound: Vec<(String, Distribution, Vec<BoundListener>)>,
}

impl BoundEdges {
    /// Binds every listener of every distribution (a taken port fails here, before any
    /// instance is launched); a listener for which `inherited` gives a socket (a hot
    /// upgrade's predecessor's, by configured address) serves on it instead.
    pub async fn bind(
        distributions: &BTreeMap<String, Distribution>,
        mut inherited: impl FnMut(SocketAddr) -> Option<std::net::TcpListener>,
    ) -> Result<BoundEdges, ListenError> {
        let mut bound = Vec::new();
        for (name, d) in distributions {
            let mut ls = Vec::new();
            for l in &d.listeners {
                ls.push(BoundListener::bind(l, inherited(l.bind)).await?);
            }
            bound.push((name.clone(), d.clone(), ls));
        }
        Ok(BoundEdges { bound })
    }

    /// Duplicates of every listening socket, by configured address, kept to hand over in a
    /// hot upgrade.
    pub fn duplicate(&self) -> std::io::Result<Vec<(SocketAddr, OwnedFd)>> {
        let mut out = Vec::new();
        for (_, d, ls) in &self.bound {
            for (l, b) in d.listeners.iter().zip(ls) {
                out.push((l.bind, b.duplicate()?));
            }
        }
        Ok(out)
    }

    /// Starts serving, fetching from origins where `resolver` says they are.
    pub fn start(self, resolver: Arc<dyn OriginResolver>) -> EdgeService {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut edges = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for (name, d, listeners) in self.bound {
            let edge = Edge::new(&name, d, Arc::clone(&resolver));
            let mut addrs = Vec::new();
            for l in listeners {
                if let Some(a) = l.local_addr() {
                    if l.is_https() {
                        edge.https_port.store(a.port(), Ordering::Relaxed);
                    }
                    addrs.push(a);
                }
                tasks.spawn(l.serve(Arc::clone(&edge), stop_rx.clone()));
            }
            tracing::info!(distribution = name.as_str(), listeners = ?addrs, "distribution serving");
            addresses.insert(name.clone(), addrs);
            edges.insert(name, edge);
        }
        EdgeService {
            edges,
            addresses,
            stop,
            tasks,
        }
    }
}

/// The running distributions.
pub struct EdgeService {
    edges: BTreeMap<String, Arc<Edge>>,
    addresses: BTreeMap<String, Vec<SocketAddr>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl EdgeService {
    /// A distribution by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Edge>> {
        self.edges.get(name)
    }

    /// Every distribution, by name.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Arc<Edge>)> {
        self.edges.iter()
    }

    /// The bound listener addresses of a distribution.
    pub fn addresses(&self, name: &str) -> &[SocketAddr] {
        self.addresses.get(name).map_or(&[], Vec::as_slice)
    }

    /// Why a new config cannot be applied without a restart (distributions added or
    /// removed, listeners or cache sizes changed).
    pub fn reload_blockers(&self, new: &BTreeMap<String, Distribution>) -> Vec<String> {
        let mut why = Vec::new();
        let old: Vec<&String> = self.edges.keys().collect();
        let newer: Vec<&String> = new.keys().collect();
        if old != newer {
            why.push("distributions added or removed".to_string());
        }
        for (name, edge) in &self.edges {
            let Some(n) = new.get(name) else { continue };
            let c = edge.config();
            if c.listeners != n.listeners
                || c.cache_size != n.cache_size
                || c.max_object_size != n.max_object_size
            {
                why.push(format!(
                    "listeners or cache size of distribution {name} changed"
                ));
            }
        }
        why
    }

    /// Applies a reloaded config (after [`EdgeService::reload_blockers`] found nothing).
    pub fn reconfigure(&self, new: &BTreeMap<String, Distribution>) {
        for (name, edge) in &self.edges {
            if let Some(d) = new.get(name) {
                edge.reconfigure(d.clone());
            }
        }
    }

    /// Stops accepting and lets requests in flight finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
