//! This load balancer node's health votes (`health/<tg>/<target>/<node>`, leased to the node):
//! what its health machine last said of each target, written on change, all again after its
//! lease was re-granted, and retried while etcd is away.

use std::collections::BTreeMap;

use flotilla_cluster::records::{now_ms, HealthVote};

use super::super::Node;

/// (target group, target key).
type Target = (String, String);
/// Healthy or not, and why.
type Verdict = (bool, String);

#[derive(Default)]
pub(super) struct Votes {
    /// What this node says now, per (target group, target key): `None` withdraws.
    wanted: BTreeMap<Target, Option<Verdict>>,
    /// What is written.
    written: BTreeMap<Target, Verdict>,
    lease_generation: u64,
}

impl Votes {
    pub(super) fn set(&mut self, tg: &str, key: &str, vote: Option<(bool, String)>) {
        self.wanted.insert((tg.to_string(), key.to_string()), vote);
    }

    /// Writes what differs; stops at the first failure (the next round tries again).
    pub(super) async fn write(&mut self, node: &Node) {
        let lease = node.lease.snapshot();
        if lease.generation != self.lease_generation {
            self.lease_generation = lease.generation;
            self.written.clear();
        }
        let store = &node.store;
        let me = &node.options.name;
        let pending: Vec<(Target, Option<Verdict>)> = self
            .wanted
            .iter()
            .filter(|(k, v)| self.written.get(*k) != v.as_ref())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((tg, key), vote) in pending {
            let done = match &vote {
                Some((healthy, reason)) => {
                    let record = HealthVote {
                        healthy: *healthy,
                        since_ms: now_ms(),
                        reason: reason.clone(),
                    };
                    store
                        .vote_health(&tg, &key, me, &record, lease.id)
                        .await
                        .map(|_| ())
                }
                None => {
                    let k = store.keys().health_vote(&tg, &key, me);
                    store.etcd().delete(&k, false).await.map(|_| ())
                }
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "cannot write health votes; retrying");
                return;
            }
            match vote {
                Some(v) => {
                    self.written.insert((tg, key), v);
                }
                None => {
                    self.written.remove(&(tg.clone(), key.clone()));
                    self.wanted.remove(&(tg, key));
                }
            }
        }
    }
}
