//! The DNS of a load balancer node: the config's `[dns]` bound on this host's address (its
//! port as configured, as listeners are), answering the hosted zones as `flotilla up` does.
//! Alias records to a load balancer answer from the lb nodes' registrations (`lb/`, watched
//! with a [`PrefixWatcher`]): one address per live node with that node's own verdict
//! ([`alias_addresses`]), published through the same [`LiveAliases`] as under `up`. A node
//! whose lease runs out leaves the answers with its registration. A new config reloads the
//! zones and health checks, and the operators' changes stored in etcd are applied on every
//! node ([`dns_changes`]); a changed `[dns] bind` applies only after a restart (logged).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use flotilla_cluster::records::LbNodeRecord;
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, Keys, PrefixWatcher, Snapshot};
use flotilla_config::dns::Dns;
use flotilla_config::Config;
use flotilla_control::fleet::{alias_addresses, LbNodeView};
use flotilla_dns::{AliasAddress, AliasTable, BoundDns, DnsService};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{dns_changes, host_config, LbShared};
use crate::edge::LiveAliases;
use crate::node::{Node, NodeError};
use crate::shared::lock;

/// Binds `[dns]` (already on the host's address, see [`host_config`]) when the config has it;
/// a taken port refuses the start.
pub(super) async fn bind(config: &Config) -> Result<Option<BoundDns>, NodeError> {
    let Some(dns) = &config.dns else {
        return Ok(None);
    };
    let bound = BoundDns::bind(dns.bind)
        .await
        .map_err(|source| NodeError::Bind {
            addr: dns.bind,
            source,
        })?;
    Ok(Some(bound))
}

/// Starts answering on `bound` with `dns` (kept in `shared` for the admin API), and the task
/// that keeps alias answers, zones and the operators' changes current until `stop`.
pub(super) fn start(
    node: &Arc<Node>,
    shared: &Arc<LbShared>,
    bound: BoundDns,
    dns: &Dns,
    tasks: &mut JoinSet<()>,
    stop: watch::Receiver<bool>,
) {
    let aliases = Arc::new(LiveAliases::default());
    match bound.local_addr() {
        Ok(addr) => tracing::info!(%addr, "dns serving (udp and tcp)"),
        Err(e) => tracing::warn!(error = %e, "dns serving (address unknown)"),
    }
    let service = DnsService::start(bound, dns, aliases.clone());
    *lock(&shared.dns) = Some(service);
    let run = run(node.clone(), Arc::clone(shared), aliases, dns.bind, stop);
    tasks.spawn(run);
}

async fn run(
    node: Arc<Node>,
    shared: Arc<LbShared>,
    aliases: Arc<LiveAliases>,
    bind: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let store = node.store.clone();
    let keys = store.keys().clone();
    let mut nodes = PrefixWatcher::spawn(store.etcd().clone(), keys.lbs_prefix());
    let mut overrides = PrefixWatcher::spawn(store.etcd().clone(), keys.overrides_prefix());
    let mut config = node.config.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Ok(u) = nodes.changed() => {
                let table = table(&keys, &u.snapshot);
                if **aliases.0.load() != table {
                    tracing::debug!(?table, "dns alias answers changed");
                    aliases.0.store(Arc::new(table));
                }
            }
            Ok(_) = overrides.changed() => reconfigure(&node, &shared, bind, &overrides.snapshot()),
            Ok(()) = config.changed() => reconfigure(&node, &shared, bind, &overrides.snapshot()),
        }
    }
    let service = lock(&shared.dns).take();
    if let Some(service) = service {
        service.stop().await;
    }
    tracing::info!("dns stopped");
}

/// Applies the config in force with the operators' changes of its generation, unless its
/// `[dns]` moved or went: that takes a restart (the load balancer's reconfiguration says
/// so), and the zones in force keep answering.
fn reconfigure(node: &Node, shared: &LbShared, bind: SocketAddr, overrides: &Snapshot) {
    let applied = node.config();
    let config = host_config(&applied.config, node.options.address);
    let changes = dns_changes::stored(node.store.keys(), overrides, applied.generation);
    let guard = lock(&shared.dns);
    let Some(service) = guard.as_ref() else {
        return;
    };
    match dns_changes::effective(&config, &changes) {
        Some(dns) if dns.bind == bind => {
            if service.config() != dns {
                service.reconfigure(&dns);
                tracing::info!(
                    generation = applied.generation,
                    changes = changes.len(),
                    "dns zones and health checks reloaded"
                );
            }
        }
        _ => tracing::debug!(running = %bind, "dns keeps its zones until the node restarts"),
    }
}

/// The alias table from the lb nodes' registrations (unreadable ones are skipped).
fn table(keys: &Keys, snapshot: &Snapshot) -> AliasTable {
    let records: Vec<(IpAddr, LbNodeRecord)> = snapshot
        .entries
        .iter()
        .filter(|(key, _)| matches!(keys.parse(key), Some(Key::Lb { .. })))
        .filter_map(|(key, entry)| {
            let record = decode::<LbNodeRecord>(key, &entry.value).ok()?;
            Some((record.address.parse().ok()?, record))
        })
        .collect();
    let views = records.iter().map(|(address, r)| LbNodeView {
        address: *address,
        load_balancers: &r.load_balancers,
    });
    let load_balancers = alias_addresses(views)
        .into_iter()
        .map(|(lb, addrs)| {
            let addrs = addrs
                .into_iter()
                .map(|(ip, healthy)| AliasAddress { ip, healthy })
                .collect();
            (lb, addrs)
        })
        .collect();
    // Every live node serves the distributions it lists (on its own address).
    let mut distributions: std::collections::HashMap<String, Vec<AliasAddress>> =
        Default::default();
    for (ip, r) in &records {
        for d in &r.distributions {
            let addrs = distributions.entry(d.clone()).or_default();
            if !addrs.iter().any(|a| a.ip == *ip) {
                addrs.push(AliasAddress {
                    ip: *ip,
                    healthy: true,
                });
            }
        }
    }
    AliasTable {
        load_balancers,
        distributions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_cluster::watcher::Entry;
    use std::collections::BTreeMap;

    fn entry(record: &LbNodeRecord) -> Entry {
        Entry {
            value: serde_json::to_vec(record).unwrap(),
            create_revision: 1,
            mod_revision: 1,
            lease: 7,
        }
    }

    #[test]
    fn the_table_lists_every_registered_node_with_its_verdict() {
        let keys = Keys::default();
        let node = |address: &str, healthy: bool| LbNodeRecord {
            address: address.into(),
            load_balancers: BTreeMap::from([("front".to_string(), healthy)]),
            ..Default::default()
        };
        let mut snapshot = Snapshot::default();
        for (name, r) in [
            ("l1", node("10.0.0.1", true)),
            ("l2", node("10.0.0.2", false)),
            ("l3", node("not an address", true)),
        ] {
            snapshot.entries.insert(keys.lb(name), entry(&r));
        }
        snapshot.entries.insert(
            keys.lb("l4"),
            Entry {
                value: b"{".to_vec(),
                ..entry(&node("10.0.0.4", true))
            },
        );
        let t = table(&keys, &snapshot);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            t.load_balancers["front"],
            vec![
                AliasAddress {
                    ip: ip("10.0.0.1"),
                    healthy: true
                },
                AliasAddress {
                    ip: ip("10.0.0.2"),
                    healthy: false
                },
            ]
        );
        assert_eq!(t.load_balancers.len(), 1);
    }
}
