//! A target group's second as one roll-up: every healthy target took the same traffic.
//!
//! The runtime reports each target's second ([`TargetSample`](super::TargetSample)); a driver
//! whose targets are alike (the simulator's homogeneous fleet) can say it once per target
//! group instead ([`TargetGroupRollup`]), so a second costs the cluster O(1) rather than five
//! series records per target. What the scaling policies read stays exact: the requests each
//! instance took are kept as the per-member count of each second ([`Shares`]) and the seconds
//! each instance was a member, so `request_rate_per_target` sums the same integers either way.
//! Per-target and per-instance series are not written for shared seconds (see
//! docs/simulator.md, "Roll-ups").

use std::collections::VecDeque;

use crate::group::LifecycleState;
use crate::hashing::FastMap;
use crate::health::TargetState;
use crate::id::InstanceId;
use crate::metrics::Metric;
use crate::policy::ScalingPolicy;

use super::Cluster;

/// One second of a target group's traffic that every healthy target in it took alike.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetGroupRollup {
    /// The target group.
    pub target_group: String,
    /// Requests each healthy target answered this second (its 5xx included).
    pub requests: u64,
    /// Of which each target answered 5xx.
    pub target_5xx: u64,
    /// Each target's response times this second: (seconds, how many), one entry per bucket.
    pub response_times: Vec<(f64, u64)>,
    /// Percent of one core each of their instances used.
    pub cpu: Option<f64>,
}

/// The requests each member of one target group took per second, and which instances were
/// members when: enough to sum any instance's requests over a window exactly.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    /// The first second `cumulative` holds.
    first: u64,
    /// Requests per member summed through each second from `first` on.
    cumulative: VecDeque<u64>,
    /// The sum through the second before `first`.
    before: u64,
    /// Each instance's member seconds, `[from, to]` inclusive (`to` = `u64::MAX` while open).
    spans: FastMap<InstanceId, Vec<(u64, u64)>>,
    /// The members now (healthy targets whose instance is in service), their target count,
    /// and the (routing, lifecycle) changes they were found at.
    members: Vec<InstanceId>,
    targets: usize,
    /// Members per group.
    by_group: Vec<(String, u64)>,
    found_at: Option<(u64, u64)>,
}

impl Shares {
    /// Adds `each` requests per member at second `s` (seconds without a roll-up add none).
    fn record(&mut self, s: u64, each: u64) {
        if self.cumulative.is_empty() {
            self.first = s;
        }
        let last = self.first + self.cumulative.len() as u64;
        let through = self.cumulative.back().copied().unwrap_or(self.before);
        if s < last {
            // A second roll-up for the same second: counted in it.
            if let Some(b) = self.cumulative.back_mut() {
                *b += each;
            }
            return;
        }
        for _ in last..s {
            self.cumulative.push_back(through);
        }
        self.cumulative.push_back(through + each);
    }

    /// Requests member `id` took in seconds `[a, b]`.
    pub(crate) fn requests(&self, id: &InstanceId, a: u64, b: u64) -> u64 {
        let Some(spans) = self.spans.get(id) else {
            return 0;
        };
        let Some(latest) = (self.first + self.cumulative.len() as u64).checked_sub(1) else {
            return 0;
        };
        let at = |s: u64| -> u64 {
            // Through second s (s >= first - 1).
            match s.checked_sub(self.first) {
                Some(k) => self.cumulative.get(k as usize).copied().unwrap_or(0),
                None => self.before,
            }
        };
        let mut total = 0;
        for &(from, to) in spans {
            let lo = from.max(a).max(self.first);
            let hi = to.min(b).min(latest);
            if lo <= hi && !self.cumulative.is_empty() {
                total += at(hi)
                    - if lo > self.first {
                        at(lo - 1)
                    } else {
                        self.before
                    };
            }
        }
        total
    }

    /// Forgets seconds before `oldest`.
    fn trim(&mut self, oldest: u64) {
        while self.first < oldest && self.cumulative.len() > 1 {
            self.before = self.cumulative.pop_front().unwrap_or(self.before);
            self.first += 1;
        }
        self.spans.retain(|_, spans| {
            spans.retain(|&(_, to)| to >= oldest);
            !spans.is_empty()
        });
    }

    /// Makes `now` the member set from second `s` on (closing the spans of those who left).
    fn set_members(&mut self, s: u64, now: Vec<InstanceId>) {
        let mut fresh: FastMap<&InstanceId, ()> = now.iter().map(|i| (i, ())).collect();
        for id in &self.members {
            if fresh.remove(id).is_none() {
                if let Some(span) = self.spans.get_mut(id).and_then(|v| v.last_mut()) {
                    span.1 = s.saturating_sub(1);
                }
            }
        }
        for id in fresh.into_keys() {
            self.spans
                .entry(id.clone())
                .or_default()
                .push((s, u64::MAX));
        }
        self.members = now;
    }
}

impl Cluster {
    /// Whether roll-ups keep every metric `group`'s policies read exactly as per-target
    /// samples would: true when they all read `request_rate_per_target` (or it has none). A
    /// driver that can send either sends roll-ups only then.
    pub fn rollups_exact(&self, group: &str) -> bool {
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        g.config.scaling_policies.iter().all(|p| {
            let metric = match p {
                ScalingPolicy::TargetTracking(s) => s.metric,
                ScalingPolicy::Step(s) => s.alarm.metric,
                ScalingPolicy::Simple(s) => s.alarm.metric,
                ScalingPolicy::Predictive(s) => s.metric,
            };
            metric == Metric::RequestRatePerTarget
        })
    }

    /// Takes one second's roll-ups: per-member requests into [`Shares`]; target-group totals,
    /// response times and 5xx into the target-group series (as the per-target path sums
    /// them); returns per group (requests of its members, members, CPU) for the group series.
    pub(super) fn record_rollups(
        &mut self,
        now: crate::time::Time,
        rollups: &[TargetGroupRollup],
    ) -> FastMap<String, (u64, u64)> {
        // (requests, 5xx) per target group, as the per-target path sums them.
        let s = now.as_duration().as_secs();
        let mut per_tg = FastMap::default();
        for r in rollups {
            self.refresh_members(s, &r.target_group);
            let Some(shares) = self.shares.get_mut(&r.target_group) else {
                continue;
            };
            shares.record(s, r.requests);
            shares.trim(s.saturating_sub(self.metrics.window()));
            let n = shares.targets as u64;
            let sums: &mut (u64, u64) = per_tg.entry(r.target_group.clone()).or_default();
            sums.0 += r.requests * n;
            sums.1 += r.target_5xx * n;
            if n > 0 && !r.response_times.is_empty() {
                let scaled: Vec<(f64, u64)> =
                    r.response_times.iter().map(|(v, c)| (*v, c * n)).collect();
                let scope = crate::metrics::Scope::TargetGroup(r.target_group.clone());
                self.metrics.record_distribution_buckets(
                    Metric::TargetResponseTime,
                    &scope,
                    now,
                    &scaled,
                );
            }
        }
        per_tg
    }

    /// Finds the target group's members again if routing or a lifecycle changed since.
    fn refresh_members(&mut self, s: u64, target_group: &str) {
        let lifecycles: u64 = self
            .groups
            .values()
            .map(|g| g.asg.lifecycle_changes())
            .sum();
        let key = (self.health_changes + self.routing_changes, lifecycles);
        let Some(tg) = self.target_groups.get(target_group) else {
            return;
        };
        let shares = self.shares.entry(target_group.to_string()).or_default();
        if shares.found_at == Some(key) {
            return;
        }
        shares.found_at = Some(key);
        // Instances in service, with their group: the per-target path records only these.
        let in_service: FastMap<&InstanceId, &str> = self
            .groups
            .iter()
            .flat_map(|(name, g)| {
                g.asg
                    .instances()
                    .filter(|i| i.lifecycle == LifecycleState::InService)
                    .map(move |i| (&i.id, name.as_str()))
            })
            .collect();
        let mut targets = 0;
        let mut members = Vec::new();
        let mut by_group: Vec<(String, u64)> = Vec::new();
        for (address, state) in tg.health.states() {
            if state != TargetState::Healthy {
                continue;
            }
            targets += 1;
            let Some(id) = self.by_address.get(&address) else {
                continue;
            };
            let Some(group) = in_service.get(id) else {
                continue;
            };
            members.push(id.clone());
            match by_group.iter_mut().find(|(g, _)| g == group) {
                Some((_, n)) => *n += 1,
                None => by_group.push(((*group).to_string(), 1)),
            }
        }
        shares.targets = targets;
        shares.by_group = by_group;
        shares.set_members(s, members);
    }

    /// Per group: requests its shared members took this second (over `rollups`), how many
    /// members it has, and the sum of their CPU and how many reported one.
    pub(super) fn shared_group_second(
        &self,
        group: &str,
        rollups: &[TargetGroupRollup],
    ) -> (u64, u32, f64, u32) {
        let (mut requests, mut members, mut cpu_sum, mut cpu_n) = (0, 0u32, 0.0, 0u32);
        for r in rollups {
            let Some(sh) = self.shares.get(&r.target_group) else {
                continue;
            };
            let n = sh
                .by_group
                .iter()
                .find(|(g, _)| g == group)
                .map_or(0, |(_, n)| *n);
            requests += r.requests * n;
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            members += n;
            if let Some(c) = r.cpu {
                cpu_sum += c * f64::from(n);
                cpu_n += n;
            }
        }
        (requests, members, cpu_sum, cpu_n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::from(s.to_string())
    }

    #[test]
    fn a_member_sums_only_its_own_seconds() {
        let mut sh = Shares::default();
        sh.set_members(10, vec![id("a")]);
        sh.record(10, 5);
        sh.record(11, 7);
        sh.set_members(12, vec![id("a"), id("b")]);
        sh.record(12, 3);
        sh.set_members(13, vec![id("b")]);
        sh.record(14, 2); // second 13 had no roll-up: nothing
        assert_eq!(sh.requests(&id("a"), 0, 100), 15);
        assert_eq!(sh.requests(&id("a"), 11, 11), 7);
        assert_eq!(sh.requests(&id("b"), 0, 100), 5);
        assert_eq!(sh.requests(&id("b"), 13, 13), 0);
        assert_eq!(sh.requests(&id("c"), 0, 100), 0);
        sh.trim(12);
        assert_eq!(
            sh.requests(&id("a"), 0, 100),
            3,
            "seconds before 12 are forgotten"
        );
        assert_eq!(sh.requests(&id("b"), 12, 14), 5);
    }
}
