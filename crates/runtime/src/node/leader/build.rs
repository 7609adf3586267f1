//! A new leader's control plane, built from one consistent listing of the store (revision R;
//! the watch goes on from R+1): the applied config, the operators' intents, the registered
//! hosts, every assignment with its agent's observation (adopted, never launched again), the
//! load balancer nodes' votes, and the activity history.

use std::collections::{BTreeMap, HashMap};

use flotilla_admin::api::ActivityInfo;
use flotilla_cluster::records::{
    ActivityRecord, AssignedState, Assignment, HealthVote, HostRecord, Observation, ObservedState,
    OverrideRecord,
};
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, Keys, Snapshot};
use flotilla_control::fleet::{FleetConfig, Vote};
use flotilla_control::{Cluster, Fleet, Restored, ScalingProcess, Time};

use super::super::{convert, Node, NodeConfig};

/// What a term starts from.
pub(super) struct Built {
    pub(super) fleet: Fleet,
    pub(super) history: BTreeMap<String, Vec<ActivityInfo>>,
    pub(super) config: std::sync::Arc<NodeConfig>,
}

/// The records of the snapshot with their parsed keys.
fn records<'s>(
    keys: &'s Keys,
    snapshot: &'s Snapshot,
) -> impl Iterator<Item = (Key<'s>, &'s str, &'s [u8])> + 's {
    snapshot
        .entries
        .iter()
        .filter_map(|(k, e)| Some((keys.parse(k)?, k.as_str(), e.value.as_slice())))
}

/// Assignments to run whose launch no leader saw confirmed, on a registered host whose agent
/// has not reported the instance running or ended yet: a new leader waits (briefly) for
/// them, so it adopts rather than launches twice.
pub(super) fn pending_launches(keys: &Keys, snapshot: &Snapshot) -> usize {
    let mut hosts = std::collections::BTreeSet::new();
    let mut observed = std::collections::BTreeSet::new();
    let mut waiting = Vec::new();
    for (key, k, v) in records(keys, snapshot) {
        match key {
            Key::Host { host } => {
                hosts.insert(host);
            }
            Key::Observation { host, instance }
                if decode::<Observation>(k, v)
                    .is_ok_and(|o| o.state != ObservedState::Starting) =>
            {
                observed.insert((host, instance));
            }
            Key::Assignment { host, instance }
                if decode::<Assignment>(k, v)
                    .is_ok_and(|a| a.state == AssignedState::Run && a.address.is_empty()) =>
            {
                waiting.push((host, instance));
            }
            _ => {}
        }
    }
    waiting
        .iter()
        .filter(|(h, i)| hosts.contains(h) && !observed.contains(&(*h, *i)))
        .count()
}

/// Whether every zone of the config has a compute host registered: a new leader gives the
/// hosts of a cluster that is starting a moment to register before it places anything.
pub(super) fn every_zone_has_a_host(node: &Node, snapshot: &Snapshot) -> bool {
    let keys = node.store.keys();
    let mut zones = std::collections::BTreeSet::new();
    for (key, k, v) in records(keys, snapshot) {
        if let Key::Host { .. } = key {
            if let Some(spec) = decode::<HostRecord>(k, v)
                .ok()
                .and_then(|r| convert::host_spec(&r))
            {
                zones.insert(spec.zone);
            }
        }
    }
    config_of(node, snapshot)
        .config
        .cluster
        .zones
        .iter()
        .all(|z| zones.contains(z))
}

/// What operators set: desired capacities, suspended processes, weight overrides.
fn restored(keys: &Keys, snapshot: &Snapshot) -> Restored {
    let mut r = Restored::default();
    for (key, k, v) in records(keys, snapshot) {
        let Key::Override { kind, name } = key else {
            continue;
        };
        let Ok(o) = decode::<OverrideRecord>(k, v) else {
            tracing::warn!(key = k, "unreadable override; ignored");
            continue;
        };
        match kind {
            "desired" => {
                if let Some(d) = o.value.as_u64().and_then(|d| u32::try_from(d).ok()) {
                    r.desired.insert(name.to_string(), d);
                }
            }
            "suspended" => {
                let names: Vec<String> = serde_json::from_value(o.value).unwrap_or_default();
                let processes: Vec<ScalingProcess> =
                    names.iter().filter_map(|n| n.parse().ok()).collect();
                r.suspended.insert(name.to_string(), processes);
            }
            "weights" => {
                if let Some(w) = convert::weight_override(&o.value) {
                    r.weight_overrides.push(w);
                }
            }
            _ => {}
        }
    }
    r
}

/// The config the snapshot holds (the one this listing is consistent with), else the node's.
fn config_of(node: &Node, snapshot: &Snapshot) -> std::sync::Arc<NodeConfig> {
    let key = node.store.keys().config();
    let parsed = snapshot
        .entries
        .get(&key)
        .and_then(|e| decode::<flotilla_cluster::records::ConfigBlob>(&key, &e.value).ok())
        .and_then(|blob| super::super::membership::parse(&blob).ok());
    match parsed {
        Some(c) => std::sync::Arc::new(c),
        None => node.config(),
    }
}

/// Builds the fleet as the snapshot says, at `now`.
pub(super) fn build(node: &Node, snapshot: &Snapshot, now: Time) -> Built {
    let keys = node.store.keys();
    let config = config_of(node, snapshot);
    let spec = config.config.cluster_spec(|a| a);
    let mut cluster = Cluster::new(
        spec,
        node.options.id_seed ^ now.as_duration().as_nanos() as u64,
        now,
    );
    cluster.restore(now, restored(keys, snapshot));
    let grace = config.config.cluster.host_lost_grace;
    let mut fleet = Fleet::new(cluster, FleetConfig::new(grace));
    let mut observed = HashMap::new();
    for (key, k, v) in records(keys, snapshot) {
        match key {
            Key::Host { host } => {
                if let Some(spec) = decode::<HostRecord>(k, v)
                    .ok()
                    .and_then(|r| convert::host_spec(&r))
                {
                    fleet.handle_host(now, host, Some(spec));
                }
            }
            Key::Observation { host, instance } => {
                if let Ok(o) = decode::<Observation>(k, v) {
                    observed.insert((host, instance), convert::observed(&o));
                }
            }
            _ => {}
        }
    }
    let mut adopted = 0;
    for (key, k, v) in records(keys, snapshot) {
        match key {
            Key::Assignment { host, instance } => match decode::<Assignment>(k, v) {
                Ok(a) => {
                    let obs = observed.remove(&(host, instance));
                    fleet.adopt(now, convert::assignment(host, instance, &a), obs);
                    adopted += 1;
                }
                Err(e) => tracing::error!(error = %e, "unreadable assignment; ignored"),
            },
            Key::HealthVote {
                target_group,
                instance,
                node: voter,
            } => {
                if let Ok(h) = decode::<HealthVote>(k, v) {
                    let vote = Vote {
                        healthy: h.healthy,
                        reason: h.reason,
                    };
                    fleet.handle_vote(now, target_group, instance, voter, Some(vote));
                }
            }
            _ => {}
        }
    }
    tracing::info!(
        assignments = adopted,
        revision = snapshot.revision,
        "control plane built from the store"
    );
    Built {
        fleet,
        history: history(keys, snapshot),
        config,
    }
}

/// Activities of earlier leaders, newest first, per group.
fn history(keys: &Keys, snapshot: &Snapshot) -> BTreeMap<String, Vec<ActivityInfo>> {
    let mut out: BTreeMap<String, Vec<ActivityInfo>> = BTreeMap::new();
    for (key, k, v) in records(keys, snapshot) {
        let Key::Activity { group, .. } = key else {
            continue;
        };
        let Ok(a) = decode::<ActivityRecord>(k, v) else {
            continue;
        };
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(a.start_ms);
        out.entry(group.to_string())
            .or_default()
            .push(ActivityInfo {
                time: humantime::format_rfc3339_millis(t).to_string(),
                cause: a.cause,
                description: a.description,
                status: a.status,
            });
    }
    for list in out.values_mut() {
        list.reverse();
    }
    out
}
