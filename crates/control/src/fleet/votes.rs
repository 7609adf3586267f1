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
use crate::id::InstanceId;

/// One load balancer node's verdict on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Healthy or not.
    pub healthy: bool,
    /// Why not, in AWS reason-code words (empty when healthy).
    pub reason: String,
}

/// Per target group, then per target key (the instance id, or the address of a static
/// target). Two levels rather than a (group, key) pair, so a lookup borrows the names instead
/// of copying both: a new leader asks about 10,000 targets at once.
type PerTarget<V> = BTreeMap<String, BTreeMap<String, V>>;

#[derive(Debug, Default)]
pub(crate) struct Votes {
    votes: PerTarget<BTreeMap<String, Vote>>,
    /// The last verdict per target, which stands while nobody votes.
    last: PerTarget<ProbeResult>,
    /// Probes asked for and not answered yet, with the address they probe. Keyed by the
    /// key as shared text (in the text's order, as the other maps): a new leader's first
    /// probes wait here 10,000 at once, and a copy of an instance's id is a count.
    pending: BTreeMap<String, BTreeMap<InstanceId, SocketAddr>>,
    /// How many target groups' last verdict on each key is a failure: placement asks for
    /// every instance of every candidate host, too often for a pass over `last`.
    failing: BTreeMap<String, u32>,
}

/// The entry of `tg`'s `key`, made (with copies of the names) only when new; always `Some`.
fn slot<'a, V>(
    map: &'a mut PerTarget<V>,
    tg: &str,
    key: &str,
    new: impl FnOnce() -> V,
) -> Option<&'a mut V> {
    if !map.contains_key(tg) {
        map.insert(tg.to_string(), BTreeMap::new());
    }
    let keys = map.get_mut(tg)?;
    if !keys.contains_key(key) {
        keys.insert(key.to_string(), new());
    }
    keys.get_mut(key)
}

/// Removes `tg`'s `key`, and `tg` once it has no key left.
fn take<V>(map: &mut PerTarget<V>, tg: &str, key: &str) -> Option<V> {
    let keys = map.get_mut(tg)?;
    let v = keys.remove(key);
    if keys.is_empty() {
        map.remove(tg);
    }
    v
}

impl Votes {
    /// Records (or, with `None`, withdraws) `node`'s vote.
    pub(crate) fn set(&mut self, tg: &str, key: &str, node: &str, vote: Option<Vote>) {
        match vote {
            Some(v) => {
                let Some(by_node) = slot(&mut self.votes, tg, key, BTreeMap::new) else {
                    return;
                };
                match by_node.get_mut(node) {
                    Some(old) => *old = v,
                    None => {
                        by_node.insert(node.to_string(), v);
                    }
                }
            }
            None => {
                let Some(by_node) = self.votes.get_mut(tg).and_then(|k| k.get_mut(key)) else {
                    return;
                };
                by_node.remove(node);
                if by_node.is_empty() {
                    take(&mut self.votes, tg, key);
                }
            }
        }
    }

    /// The answer to a probe of the target now, if there is one.
    pub(crate) fn verdict(&mut self, tg: &str, key: &str) -> Option<ProbeResult> {
        let by_node = self.votes.get(tg).and_then(|k| k.get(key));
        let Some(by_node) = by_node.filter(|v| !v.is_empty()) else {
            return self.last.get(tg).and_then(|k| k.get(key)).cloned();
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
        self.set_last(tg, key, result.clone());
        Some(result)
    }

    /// Records the last verdict on the target, keeping the failure counts.
    fn set_last(&mut self, tg: &str, key: &str, result: ProbeResult) {
        let failed = matches!(result, ProbeResult::Failure { .. });
        let Some(last) = slot(&mut self.last, tg, key, || ProbeResult::Success) else {
            return;
        };
        let was_failed = matches!(std::mem::replace(last, result), ProbeResult::Failure { .. });
        match (was_failed, failed) {
            (false, true) => match self.failing.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    self.failing.insert(key.to_string(), 1);
                }
            },
            (true, false) => self.uncount_failure(key),
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
    pub(crate) fn wait(&mut self, tg: &str, key: InstanceId, address: SocketAddr) {
        // One search: the key is new (a probe waits once), and owned already.
        match self.pending.get_mut(tg) {
            Some(keys) => {
                keys.insert(key, address);
            }
            None => {
                self.pending
                    .insert(tg.to_string(), BTreeMap::from([(key, address)]));
            }
        }
    }

    /// The waiting probe of the target, taken.
    pub(crate) fn take_pending(&mut self, tg: &str, key: &str) -> Option<SocketAddr> {
        let keys = self.pending.get_mut(tg)?;
        let address = keys.remove(key);
        if keys.is_empty() {
            self.pending.remove(tg);
        }
        address
    }

    /// Every waiting probe, taken, by target group then key.
    pub(crate) fn take_all_pending(&mut self) -> Vec<(String, InstanceId, SocketAddr)> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .flat_map(|(tg, keys)| keys.into_iter().map(move |(key, a)| (tg.clone(), key, a)))
            .collect()
    }

    /// Forgets what was known of `key` in every target group (its instance is gone).
    pub(crate) fn forget(&mut self, key: &str) {
        for keys in self.last.values_mut() {
            keys.remove(key);
        }
        self.last.retain(|_, keys| !keys.is_empty());
        self.failing.remove(key);
        for keys in self.pending.values_mut() {
            keys.remove(key);
        }
        self.pending.retain(|_, keys| !keys.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_probes_are_found_by_text_and_taken_in_key_order() {
        let mut v = Votes::default();
        let addr = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let keys = ["i-0b", "i-0a", "10.0.0.9:80"];
        for (n, key) in keys.iter().enumerate() {
            v.wait("tg", InstanceId::from(key.to_string()), addr(n as u16));
        }
        v.wait("other", InstanceId::from("i-0c".to_string()), addr(9));
        assert_eq!(v.take_pending("tg", "i-0b"), Some(addr(0)));
        assert_eq!(v.take_pending("tg", "i-0b"), None); // taken once
        let all: Vec<(String, String, SocketAddr)> = v
            .take_all_pending()
            .into_iter()
            .map(|(tg, key, a)| (tg, key.to_string(), a))
            .collect();
        assert_eq!(
            all,
            vec![
                ("other".to_string(), "i-0c".to_string(), addr(9)),
                ("tg".to_string(), "10.0.0.9:80".to_string(), addr(2)),
                ("tg".to_string(), "i-0a".to_string(), addr(1)),
            ]
        );
        assert!(v.take_all_pending().is_empty());
    }
}
