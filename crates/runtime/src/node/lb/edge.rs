//! The distributions of a load balancer node: the config's `[distributions.NAME]` bound on
//! this host's address (as its listeners are), their origins resolved on this node — a load
//! balancer is this node's own listener, a target group the targets this node finds healthy —
//! and reloaded by `flotilla apply` as `flotilla up`'s reload does. Invalidations are stored
//! in etcd by whichever node's admin API took them (`invalidations/<dist>/<id>`); every lb node
//! watches them, removes the objects from its own cache and says so under its lease
//! (`invalidations/<dist>/<id>/<node>`), so any node can tell when every live node has.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::records::{InvalidationDone, InvalidationRecord};
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, PrefixWatcher, Snapshot};
use flotilla_config::Config;
use flotilla_edge::{BoundEdges, EdgeService};
use tokio::sync::watch;

use super::LbShared;
use crate::edge::LiveOrigins;
use crate::node::{Node, NodeError};
use crate::shared::lock;

/// How often an acknowledgement that could not be written is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// Binds every distribution listener (already on the host's address); a taken port refuses
/// the start.
pub(super) async fn bind(config: &Config) -> Result<BoundEdges, NodeError> {
    BoundEdges::bind(&config.distributions, |_| None)
        .await
        .map_err(|e| NodeError::Runtime(crate::RuntimeError::Edge(e.to_string())))
}

/// Starts serving the distributions with origins from `origins`.
pub(super) fn start(bound: BoundEdges, origins: Arc<LiveOrigins>) -> EdgeService {
    let edges = bound.start(origins);
    for (name, _) in edges.all() {
        for addr in edges.addresses(name) {
            tracing::info!(distribution = name.as_str(), %addr, "distribution serving");
        }
    }
    edges
}

/// Applies a new config's distributions in place, unless it adds, removes or re-binds one
/// (that takes a restart, as under `up`; logged).
pub(super) fn reconfigure(shared: &LbShared, new: &Config) {
    let guard = lock(&shared.edges);
    let Some(edges) = guard.as_ref() else { return };
    let blockers = edges.reload_blockers(&new.distributions);
    if !blockers.is_empty() {
        tracing::warn!(
            reasons = blockers.join("; ").as_str(),
            "distributions keep their listeners and caches until this node restarts"
        );
    }
    edges.reconfigure(&new.distributions);
}

/// What this node has applied: objects removed per `(distribution, id)`.
#[derive(Default)]
struct Applied {
    objects: HashMap<(String, String), u64>,
    /// Acknowledgements written under this lease generation.
    acked: HashMap<(String, String), u64>,
}

/// Follows `invalidations/` until `stop`: applies every invalidation of a distribution this
/// node serves once and acknowledges it under the node's lease (again after a re-grant).
pub(super) async fn run_invalidations(
    node: Arc<Node>,
    shared: Arc<LbShared>,
    mut stop: watch::Receiver<bool>,
) {
    let store = node.store.clone();
    let keys = store.keys().clone();
    let mut invalidations = PrefixWatcher::spawn(store.etcd().clone(), keys.invalidations_prefix());
    let mut applied = Applied::default();
    let mut generation = node.lease.snapshot().generation;
    let mut snapshot = Arc::new(Snapshot::default());
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Ok(u) = invalidations.changed() => snapshot = u.snapshot,
            () = tokio::time::sleep(RETRY) => {}
        }
        let lease = node.lease.snapshot();
        if lease.generation != generation {
            generation = lease.generation;
            applied.acked.clear();
        }
        apply(&node, &shared, &snapshot, &mut applied);
        acknowledge(&node, &mut applied, lease.id).await;
    }
}

/// Removes the objects of every invalidation not applied yet (of distributions served here).
fn apply(node: &Node, shared: &LbShared, snapshot: &Snapshot, applied: &mut Applied) {
    let keys = node.store.keys();
    let guard = lock(&shared.edges);
    let Some(edges) = guard.as_ref() else { return };
    let mut present = std::collections::HashSet::new();
    for (key, entry) in &snapshot.entries {
        let Some(Key::Invalidation { distribution, id }) = keys.parse(key) else {
            continue;
        };
        let k = (distribution.to_string(), id.to_string());
        present.insert(k.clone());
        if applied.objects.contains_key(&k) {
            continue;
        }
        let Some(edge) = edges.get(distribution) else {
            continue;
        };
        let Ok(record) = decode::<InvalidationRecord>(key, &entry.value) else {
            continue;
        };
        match edge.invalidate(record.paths) {
            Ok(inv) => {
                tracing::info!(
                    distribution,
                    id,
                    objects = inv.objects,
                    "invalidation applied"
                );
                applied.objects.insert(k, inv.objects as u64);
            }
            Err(e) => {
                tracing::warn!(
                    distribution,
                    id,
                    error = e.as_str(),
                    "invalid stored invalidation; skipped"
                );
                applied.objects.insert(k, 0);
            }
        }
    }
    applied.objects.retain(|k, _| present.contains(k));
    applied.acked.retain(|k, _| present.contains(k));
}

/// Writes the acknowledgements not written yet under this lease; failures are retried.
async fn acknowledge(node: &Node, applied: &mut Applied, lease: i64) {
    let keys = node.store.keys();
    let pending: Vec<((String, String), u64)> = applied
        .objects
        .iter()
        .filter(|(k, _)| !applied.acked.contains_key(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for ((dist, id), objects) in pending {
        let key = keys.invalidation_done(&dist, &id, &node.options.name);
        let done = InvalidationDone { objects };
        match node.store.put(&key, &done, Some(lease)).await {
            Ok(_) => {
                applied.acked.insert((dist, id), objects);
            }
            Err(e) => {
                tracing::warn!(error = %e, distribution = dist.as_str(), "cannot acknowledge an invalidation; retrying");
                return;
            }
        }
    }
}

/// One invalidation as every node can tell it: its record, and the objects removed by each
/// live lb node that serves the distribution (`None`: not yet).
pub(crate) struct InvalidationState {
    pub(crate) id: String,
    pub(crate) record: InvalidationRecord,
    pub(crate) nodes: BTreeMap<String, Option<u64>>,
}

/// The invalidations of `distribution`, newest first, from reads of `lb/` and
/// `invalidations/`.
pub(crate) fn invalidation_states(
    keys: &flotilla_cluster::Keys,
    lb_nodes: &Snapshot,
    snapshot: &Snapshot,
    distribution: &str,
) -> Vec<InvalidationState> {
    let serving: Vec<String> = lb_nodes
        .entries
        .iter()
        .filter_map(|(key, entry)| {
            let Some(Key::Lb { node }) = keys.parse(key) else {
                return None;
            };
            let r = decode::<flotilla_cluster::records::LbNodeRecord>(key, &entry.value).ok()?;
            r.distributions
                .iter()
                .any(|d| d == distribution)
                .then(|| node.to_string())
        })
        .collect();
    let mut out: BTreeMap<String, InvalidationState> = BTreeMap::new();
    for (key, entry) in &snapshot.entries {
        match keys.parse(key) {
            Some(Key::Invalidation {
                distribution: d,
                id,
            }) if d == distribution => {
                let Ok(record) = decode::<InvalidationRecord>(key, &entry.value) else {
                    continue;
                };
                let nodes = serving.iter().map(|n| (n.clone(), None)).collect();
                // A record sorts before its acknowledgements (`<id>` < `<id>/<node>`).
                out.insert(
                    id.to_string(),
                    InvalidationState {
                        id: id.to_string(),
                        record,
                        nodes,
                    },
                );
            }
            Some(Key::InvalidationDone {
                distribution: d,
                id,
                node,
            }) if d == distribution => {
                let Ok(done) = decode::<InvalidationDone>(key, &entry.value) else {
                    continue;
                };
                if let Some(s) = out.get_mut(id) {
                    s.nodes.insert(node.to_string(), Some(done.objects));
                }
            }
            _ => {}
        }
    }
    out.into_values().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_cluster::records::LbNodeRecord;
    use flotilla_cluster::watcher::Entry;
    use flotilla_cluster::Keys;

    fn entry<T: serde::Serialize>(v: &T) -> Entry {
        Entry {
            value: serde_json::to_vec(v).unwrap(),
            create_revision: 1,
            mod_revision: 1,
            lease: 0,
        }
    }

    /// Every live lb node serving the distribution is waited for; acknowledgements fill in
    /// the objects each removed; other distributions' records are not listed; newest first.
    #[test]
    fn states_wait_for_every_live_node_serving_the_distribution() {
        let keys = Keys::default();
        let mut lbs = Snapshot::default();
        for (node, dists) in [
            ("l1", vec!["cdn"]),
            ("l2", vec!["cdn"]),
            ("l3", vec!["other"]),
        ] {
            let r = LbNodeRecord {
                distributions: dists.into_iter().map(String::from).collect(),
                ..Default::default()
            };
            lbs.entries.insert(keys.lb(node), entry(&r));
        }
        let mut inv = Snapshot::default();
        let record = InvalidationRecord {
            paths: vec!["/*".into()],
            ..Default::default()
        };
        for id in ["I1-l1", "I2-l1"] {
            inv.entries
                .insert(keys.invalidation("cdn", id), entry(&record));
        }
        inv.entries
            .insert(keys.invalidation("other", "I3-l1"), entry(&record));
        for (id, node, objects) in [("I1-l1", "l1", 2), ("I1-l1", "l2", 3), ("I2-l1", "l2", 1)] {
            inv.entries.insert(
                keys.invalidation_done("cdn", id, node),
                entry(&InvalidationDone { objects }),
            );
        }
        let states = invalidation_states(&keys, &lbs, &inv, "cdn");
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].id, "I2-l1");
        assert_eq!(
            states[0].nodes,
            BTreeMap::from([("l1".to_string(), None), ("l2".to_string(), Some(1))])
        );
        assert_eq!(
            states[1].nodes,
            BTreeMap::from([("l1".to_string(), Some(2)), ("l2".to_string(), Some(3))])
        );
    }
}
