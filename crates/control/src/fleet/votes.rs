//! Health in cluster mode: every load balancer node checks its targets itself and votes; the
//! leader's target groups ask for a probe as under `flotilla up`, and the answer is the vote of
//! the load balancer nodes instead of a probe of the leader's own.
//!
//! The rule: a target fails only when a majority of the nodes voting on it say it is
//! unhealthy, so a load balancer node cut off from a zone cannot condemn the zone's instances
//! alone. With no vote at all (the nodes have not checked a new target yet, or every node is
//! gone) the last verdict stands; with none ever, the probe stays unanswered and times out as
//! it would under `flotilla up`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::health::ProbeResult;

/// One load balancer node's verdict on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Healthy or not.
    pub healthy: bool,
    /// Why not, in AWS reason-code words (empty when healthy).
    pub reason: String,
}

/// (target group, target key): the key is the instance id, or the address of a static target.
type Target = (String, String);

#[derive(Debug, Default)]
pub(crate) struct Votes {
    votes: BTreeMap<Target, BTreeMap<String, Vote>>,
    /// The last verdict per target, which stands while nobody votes.
    last: BTreeMap<Target, ProbeResult>,
    /// Probes asked for and not answered yet, with the address they probe.
    pending: BTreeMap<Target, SocketAddr>,
    /// How many target groups' last verdict on each key is a failure: placement asks for
    /// every instance of every candidate host, too often for a pass over `last`.
    failing: BTreeMap<String, u32>,
}

impl Votes {
    /// Records (or, with `None`, withdraws) `node`'s vote.
    pub(crate) fn set(&mut self, tg: &str, key: &str, node: &str, vote: Option<Vote>) {
        let target = (tg.to_string(), key.to_string());
        match vote {
            Some(v) => {
                self.votes
                    .entry(target)
                    .or_default()
                    .insert(node.to_string(), v);
            }
            None => {
                if let Some(by_node) = self.votes.get_mut(&target) {
                    by_node.remove(node);
                    if by_node.is_empty() {
                        self.votes.remove(&target);
                    }
                }
            }
        }
    }

    /// The answer to a probe of the target now, if there is one.
    pub(crate) fn verdict(&mut self, tg: &str, key: &str) -> Option<ProbeResult> {
        let target = (tg.to_string(), key.to_string());
        let Some(by_node) = self.votes.get(&target).filter(|v| !v.is_empty()) else {
            return self.last.get(&target).cloned();
        };
        let total = by_node.len();
        let unhealthy: Vec<&Vote> = by_node.values().filter(|v| !v.healthy).collect();
        let result = if unhealthy.len() * 2 > total {
            let reason = unhealthy
                .iter()
                .map(|v| v.reason.as_str())
                .find(|r| !r.is_empty())
                .unwrap_or("Target.FailedHealthChecks");
            ProbeResult::Failure {
                reason: format!(
                    "{reason} ({} of {total} load balancer nodes)",
                    unhealthy.len()
                ),
            }
        } else {
            ProbeResult::Success
        };
        self.set_last(target, result.clone());
        Some(result)
    }

    /// Records the last verdict on `target`, keeping the failure counts.
    fn set_last(&mut self, target: Target, result: ProbeResult) {
        let failed = matches!(result, ProbeResult::Failure { .. });
        let key = target.1.clone();
        let was_failed = matches!(
            self.last.insert(target, result),
            Some(ProbeResult::Failure { .. })
        );
        match (was_failed, failed) {
            (false, true) => *self.failing.entry(key).or_default() += 1,
            (true, false) => self.uncount_failure(&key),
            _ => {}
        }
    }

    fn uncount_failure(&mut self, key: &str) {
        if let Some(n) = self.failing.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.failing.remove(key);
            }
        }
    }

    /// Whether the last verdict on `key` in some target group was a failure.
    pub(crate) fn failing(&self, key: &str) -> bool {
        self.failing.contains_key(key)
    }

    /// A probe that waits for a vote.
    pub(crate) fn wait(&mut self, tg: &str, key: &str, address: SocketAddr) {
        self.pending
            .insert((tg.to_string(), key.to_string()), address);
    }

    /// The waiting probe of the target, taken.
    pub(crate) fn take_pending(&mut self, tg: &str, key: &str) -> Option<SocketAddr> {
        self.pending.remove(&(tg.to_string(), key.to_string()))
    }

    /// Every waiting probe, taken.
    pub(crate) fn take_all_pending(&mut self) -> Vec<(String, String, SocketAddr)> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((tg, key), addr)| (tg, key, addr))
            .collect()
    }

    /// Forgets what was known of `key` in every target group (its instance is gone).
    pub(crate) fn forget(&mut self, key: &str) {
        self.last.retain(|(_, k), _| k != key);
        self.failing.remove(key);
        self.pending.retain(|(_, k), _| k != key);
    }
}
