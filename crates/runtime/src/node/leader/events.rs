//! What changed in the store, fed to the leader's fleet: hosts, observations, health votes,
//! and the applied config (in place when the cluster can take it, else a rebuild).

use flotilla_cluster::records::{ConfigBlob, HealthVote, HostRecord, Observation};
use flotilla_cluster::store::decode;
use flotilla_cluster::{Change, Key};
use flotilla_control::fleet::Vote;
use flotilla_control::InstanceId;

use super::super::{convert, membership, Node};
use super::host::LeaderHost;

/// Applies `changes`; returns true when the control plane must be built again (a config it
/// cannot take in place).
pub(super) fn apply(
    node: &Node,
    host: &LeaderHost,
    changes: &[Change],
    config_generation: &mut u64,
) -> bool {
    let keys = node.store.keys();
    let mut fleet = host.fleet();
    let now = host.clock.now();
    for change in changes {
        let (key, value) = match change {
            Change::Put { key, entry } => (key.as_str(), Some(entry.value.as_slice())),
            Change::Deleted { key, .. } => (key.as_str(), None),
        };
        match keys.parse(key) {
            Some(Key::Host { host: name }) => {
                let record = value.map(|v| decode::<HostRecord>(key, v));
                let spec = match record {
                    None => None,
                    Some(Ok(r)) => match convert::host_spec(&r) {
                        Some(s) => Some(s),
                        None => continue, // not a compute host
                    },
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "unreadable host record");
                        continue;
                    }
                };
                fleet.handle_host(now, name, spec);
            }
            Some(Key::Observation { host: h, instance }) => {
                let observed = value
                    .and_then(|v| decode::<Observation>(key, v).ok())
                    .map(|o| convert::observed(&o));
                let id = InstanceId::from(instance.to_string());
                fleet.handle_observation(now, h, &id, observed);
            }
            Some(Key::HealthVote {
                target_group,
                instance,
                node: voter,
            }) => {
                let vote = value
                    .and_then(|v| decode::<HealthVote>(key, v).ok())
                    .map(|h| Vote {
                        healthy: h.healthy,
                        reason: h.reason,
                    });
                fleet.handle_vote(now, target_group, instance, voter, vote);
            }
            Some(Key::Config) => {
                let Some(v) = value else { continue };
                if reconfigure(&mut fleet, now, key, v, config_generation) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A newly applied config: in place when the cluster can take it.
fn reconfigure(
    fleet: &mut flotilla_control::Fleet,
    now: flotilla_control::Time,
    key: &str,
    value: &[u8],
    generation: &mut u64,
) -> bool {
    let Ok(blob) = decode::<ConfigBlob>(key, value) else {
        return false;
    };
    if blob.generation == *generation {
        return false;
    }
    let config = match membership::parse(&blob) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                error = e.as_str(),
                "the applied config does not parse; keeping the one in force"
            );
            return false;
        }
    };
    *generation = blob.generation;
    let spec = config.config.cluster_spec(|a| a);
    let blockers = fleet.cluster().reconfigure_blockers(&spec);
    if !blockers.is_empty() {
        tracing::info!(
            reasons = blockers.join("; ").as_str(),
            "the applied config changes what cannot change in place"
        );
        return true;
    }
    let changes = fleet.command(now, |c, now| c.reconfigure(now, spec));
    tracing::info!(
        generation = blob.generation,
        changes = changes.join("; ").as_str(),
        "applied config taken in place"
    );
    false
}
