//! Which instance goes on scale-in: zone balance first, then the termination policies (AWS §5.4,
//! §5.5).

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::id::InstanceId;
use crate::time::Time;

/// A rule for choosing among scale-in candidates in the same zone(s), as AWS
/// `TerminationPolicies`. Applied in list order, each breaking the ties left by the previous one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum TerminationPolicy {
    /// AWS default: oldest launch template first, then the instance closest to its next billing
    /// hour, then (deterministically, where AWS is random) the lowest id.
    #[default]
    Default,
    /// Longest-running first: retires old instances, e.g. to pick up patches.
    OldestInstance,
    /// Most recently launched first: handy when testing a new launch template.
    NewestInstance,
    /// Instances on the oldest launch template version first: finishes a rollout on scale-in.
    OldestLaunchTemplate,
}

impl TerminationPolicy {
    /// The config spelling, e.g. `"oldest_instance"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationPolicy::Default => "default",
            TerminationPolicy::OldestInstance => "oldest_instance",
            TerminationPolicy::NewestInstance => "newest_instance",
            TerminationPolicy::OldestLaunchTemplate => "oldest_launch_template",
        }
    }
}

/// What the victim choice needs to know about one live instance.
#[derive(Clone, Debug)]
pub(crate) struct Candidate<'a> {
    pub(crate) id: &'a InstanceId,
    pub(crate) zone: &'a str,
    pub(crate) pending: bool,
    pub(crate) launch_template_version: u64,
    pub(crate) launched_at: Time,
    /// Bought as the option scale-in should take next (a mixed instances group's split).
    pub(crate) preferred: bool,
}

const HOUR: Duration = Duration::from_secs(3600);

/// How far into its current billing hour an instance is; larger = closer to the next hour.
fn hour_phase(now: Time, launched_at: Time) -> Duration {
    let age = now.saturating_since(launched_at).as_nanos() % HOUR.as_nanos();
    // `age` < 3600 s in nanoseconds, which always fits in u64.
    Duration::from_nanos(u64::try_from(age).unwrap_or(u64::MAX))
}

fn by_policy(
    now: Time,
    policy: TerminationPolicy,
    a: &Candidate<'_>,
    b: &Candidate<'_>,
) -> Ordering {
    match policy {
        TerminationPolicy::OldestLaunchTemplate => {
            a.launch_template_version.cmp(&b.launch_template_version)
        }
        TerminationPolicy::OldestInstance => a.launched_at.cmp(&b.launched_at),
        TerminationPolicy::NewestInstance => b.launched_at.cmp(&a.launched_at),
        TerminationPolicy::Default => a
            .launch_template_version
            .cmp(&b.launch_template_version)
            .then_with(|| {
                Reverse(hour_phase(now, a.launched_at))
                    .cmp(&Reverse(hour_phase(now, b.launched_at)))
            }),
    }
}

/// Index in `candidates` of the instance to terminate next, or `None` if there are none.
///
/// 1. Zone: the zone with the most candidates; a zone no longer in `zones` counts as fuller than
///    any listed one (its instances should go first). If several zones tie, all their instances
///    compete (AWS: "if zones are balanced, policies apply across all zones").
/// 2. Pending instances before in-service ones: cancelling a launch disturbs no traffic.
/// 3. (Mixed instances groups) the purchase option whose removal keeps the On-Demand/Spot
///    split (`preferred`), as AWS's default policy does first.
/// 4. `policies` in order, then [`TerminationPolicy::Default`] as the final policy.
/// 5. Deterministic tie-break (AWS picks at random): the zone later in `zones` (so a group
///    scaled in ends up where a fresh launch of that size would have put it), then the lowest id.
pub(crate) fn choose_victim(
    now: Time,
    zones: &[String],
    policies: &[TerminationPolicy],
    candidates: &[Candidate<'_>],
) -> Option<usize> {
    let zone_rank = |z: &str| zones.iter().position(|x| x == z).unwrap_or(usize::MAX);
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for c in candidates {
        *per_zone.entry(c.zone).or_default() += 1;
    }
    let zone_key = |z: &str| {
        (
            zone_rank(z) == usize::MAX,
            per_zone.get(z).copied().unwrap_or(0),
        )
    };
    let fullest = per_zone.keys().map(|z| zone_key(z)).max()?;
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| zone_key(c.zone) == fullest)
        .min_by(|(_, a), (_, b)| {
            b.pending
                .cmp(&a.pending)
                .then_with(|| b.preferred.cmp(&a.preferred))
                .then_with(|| {
                    policies
                        .iter()
                        .chain(std::iter::once(&TerminationPolicy::Default))
                        .map(|p| by_policy(now, *p, a, b))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                })
                .then_with(|| zone_rank(b.zone).cmp(&zone_rank(a.zone)))
                .then_with(|| a.id.cmp(b.id))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn next_hour_rule() {
        let now = Time::from_duration(Duration::from_secs(7200));
        // launched 1h59m ago (phase 59m) beats launched 30m ago (phase 30m).
        assert!(
            hour_phase(now, Time::from_duration(Duration::from_secs(60)))
                > hour_phase(now, Time::from_duration(Duration::from_secs(5400)))
        );
        assert_eq!(hour_phase(Time::ZERO, Time::from_millis(5)), Duration::ZERO);
    }

    #[test]
    fn unlisted_zone_goes_first_and_empty_is_none() {
        let ids: Vec<InstanceId> = (0..3).map(|i| InstanceId::from(format!("i-{i}"))).collect();
        let c = |i: usize, zone: &'static str| Candidate {
            id: &ids[i],
            zone,
            pending: false,
            launch_template_version: 1,
            launched_at: Time::ZERO,
            preferred: false,
        };
        let cands = vec![c(0, "a"), c(1, "a"), c(2, "gone")];
        assert_eq!(choose_victim(Time::ZERO, &zones(), &[], &cands), Some(2));
        assert_eq!(choose_victim(Time::ZERO, &zones(), &[], &[]), None);
    }
}
