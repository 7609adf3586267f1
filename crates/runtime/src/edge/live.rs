//! What the edge reads of the cluster, refreshed once a second from the runtime's state:
//! the addresses alias records answer with (a load balancer's listener addresses, healthy
//! while some target group it forwards to has a healthy target) and where distributions'
//! origins are (a load balancer's first HTTP listener, a target group's healthy targets in
//! turn). Cluster mode's load balancer nodes publish one address per lb node through the same
//! [`LiveAliases`] (`crate::node::lb::dns`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use flotilla_config::edge::Origin;
use flotilla_config::{Config, ListenerProtocol};
use flotilla_control::fleet::load_balancer_healthy;
use flotilla_control::TargetGroupHealth;
use flotilla_dns::{AliasAddress, AliasSource, AliasTable};
use flotilla_edge::OriginResolver;

use crate::shared::Shared;

/// The alias table as last published.
#[derive(Default)]
pub(crate) struct LiveAliases(pub(crate) ArcSwap<AliasTable>);

impl AliasSource for LiveAliases {
    fn load_balancer(&self, name: &str) -> Vec<AliasAddress> {
        self.0.load().load_balancer(name)
    }

    fn distribution(&self, name: &str) -> Vec<AliasAddress> {
        self.0.load().distribution(name)
    }
}

/// Where origins are, as last published.
#[derive(Default, Debug, Clone)]
pub(crate) struct OriginTable {
    load_balancers: HashMap<String, SocketAddr>,
    target_groups: HashMap<String, Vec<SocketAddr>>,
}

/// The origin table and a turn counter for target groups.
#[derive(Default)]
pub(crate) struct LiveOrigins {
    pub(crate) table: ArcSwap<OriginTable>,
    turn: AtomicUsize,
}

impl OriginResolver for LiveOrigins {
    fn resolve(&self, origin: &Origin) -> Option<SocketAddr> {
        match origin {
            Origin::Address(a) => Some(*a),
            Origin::LoadBalancer(lb) => self.table.load().load_balancers.get(lb).copied(),
            Origin::TargetGroup(tg) => {
                let t = self.table.load();
                let targets = t.target_groups.get(tg)?;
                let i = self.turn.fetch_add(1, Ordering::Relaxed);
                targets.get(i % targets.len().max(1)).copied()
            }
            Origin::Group { .. } => None,
        }
    }
}

/// The address a node is reached at: its bind address, loopback for a wildcard bind.
fn node_ip(a: SocketAddr) -> std::net::IpAddr {
    match a.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    }
}

/// The healthy targets of one target group's health machine.
pub(crate) fn healthy_of(h: Option<&TargetGroupHealth>) -> Vec<SocketAddr> {
    h.map(|h| {
        h.targets()
            .filter(|t| t.state.as_str() == "healthy")
            .map(|t| t.target)
            .collect()
    })
    .unwrap_or_default()
}

/// Healthy targets by target group, from the cluster's health machines.
fn healthy_targets(shared: &Shared) -> HashMap<String, Vec<SocketAddr>> {
    let c = shared.cluster();
    let names: Vec<String> = c.target_group_names().map(str::to_string).collect();
    names
        .into_iter()
        .map(|n| {
            let up = healthy_of(c.target_group_health(&n));
            (n, up)
        })
        .collect()
}

impl OriginTable {
    /// Origins of a cluster-mode lb node: each load balancer's first HTTP listener as bound
    /// here (`bound` maps a configured bind to it), and the healthy targets this node checks.
    pub(crate) fn of_node(
        config: &Config,
        bound: impl Fn(SocketAddr) -> SocketAddr,
        target_groups: HashMap<String, Vec<SocketAddr>>,
    ) -> OriginTable {
        let load_balancers = config
            .load_balancers
            .iter()
            .filter_map(|(name, lb)| {
                let l = lb
                    .listeners
                    .iter()
                    .find(|l| l.protocol == ListenerProtocol::Http)?;
                Some((name.clone(), bound(l.bind)))
            })
            .collect();
        OriginTable {
            load_balancers,
            target_groups,
        }
    }
}

/// Recomputes both tables from the config in force and the cluster's state.
pub(crate) fn refresh(
    shared: &Shared,
    aliases: &LiveAliases,
    origins: &LiveOrigins,
    edge_addrs: &HashMap<String, Vec<SocketAddr>>,
) {
    let config: Config = shared.config().clone();
    let healthy = healthy_targets(shared);
    let mut table = AliasTable::default();
    let mut origin_table = OriginTable {
        target_groups: healthy.clone(),
        ..Default::default()
    };
    for (name, lb) in &config.load_balancers {
        let up = {
            let c = shared.cluster();
            load_balancer_healthy(lb.target_group_names().map(|g| c.target_group_health(g)))
        };
        let mut nodes: Vec<AliasAddress> = Vec::new();
        for l in &lb.listeners {
            let bound = shared.listeners.bound_address(l.bind);
            if !nodes.iter().any(|n| n.ip == node_ip(bound)) {
                nodes.push(AliasAddress {
                    ip: node_ip(bound),
                    healthy: up,
                });
            }
            if l.protocol == ListenerProtocol::Http
                && !origin_table.load_balancers.contains_key(name)
            {
                origin_table.load_balancers.insert(name.clone(), bound);
            }
        }
        table.load_balancers.insert(name.clone(), nodes);
    }
    for (name, addrs) in edge_addrs {
        let mut nodes: Vec<AliasAddress> = Vec::new();
        for a in addrs {
            if !nodes.iter().any(|n| n.ip == node_ip(*a)) {
                nodes.push(AliasAddress {
                    ip: node_ip(*a),
                    healthy: true,
                });
            }
        }
        table.distributions.insert(name.clone(), nodes);
    }
    if **aliases.0.load() != table {
        aliases.0.store(Arc::new(table));
    }
    origins.table.store(Arc::new(origin_table));
}
