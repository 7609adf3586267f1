//! Once a second: the driver's counters become metrics, and the scaling policies, scheduled
//! actions and canary rollbacks decide on them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;

use crate::controller::{MetricQuery, MetricSource};
use crate::group::LifecycleState;
use crate::health::TargetState;
use crate::id::InstanceId;
use crate::metrics::{Metric, MetricsStore, Scope, Statistic};
use crate::time::Time;

use super::{Cluster, Durable, Effect};

/// One second of one target's traffic, as the data plane counted it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetSample {
    /// The target group it was counted in.
    pub target_group: String,
    /// The target.
    pub address: SocketAddr,
    /// Requests answered this second.
    pub requests: u64,
    /// Of which the target answered 5xx.
    pub target_5xx: u64,
    /// Response times this second: (seconds, how many), one entry per histogram bucket.
    pub response_times: Vec<(f64, u64)>,
}

/// One second of one load balancer's listeners.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadBalancerSample {
    /// The load balancer.
    pub load_balancer: String,
    /// Requests answered this second.
    pub requests: u64,
    /// 5xx answers the load balancer generated.
    pub elb_5xx: u64,
    /// 5xx answers from targets.
    pub target_5xx: u64,
    /// Client connections open now.
    pub active_connections: u64,
    /// Client connections opened this second.
    pub new_connections: u64,
}

/// What the driver measured over the last second.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Samples {
    /// Per target.
    pub targets: Vec<TargetSample>,
    /// Per load balancer.
    pub load_balancers: Vec<LoadBalancerSample>,
    /// Percent of one core each running instance used (its whole process tree).
    pub cpu: Vec<(InstanceId, f64)>,
    /// Per target group, a second every healthy target took alike, said once (a driver of
    /// alike targets, such as the simulator; the runtime reports `targets`).
    #[serde(default)]
    pub rollups: Vec<super::rollup::TargetGroupRollup>,
}

/// When samples are due.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sampling {
    next: Time,
    /// Asked for and not yet answered: no new request until the answer.
    requested: bool,
}

impl Sampling {
    pub(crate) fn new(now: Time) -> Self {
        Sampling {
            next: now,
            requested: false,
        }
    }

    /// Whether to ask for samples now (once per due second).
    pub(crate) fn due(&mut self, now: Time) -> bool {
        let due = !self.requested && now >= self.next;
        self.requested |= due;
        due
    }

    /// When samples are next due (never while a request is unanswered).
    pub(crate) fn next_sample(&self) -> Option<Time> {
        (!self.requested).then_some(self.next)
    }

    fn answered(&mut self, now: Time) {
        self.requested = false;
        self.next = Time::from_duration(Duration::from_secs(now.as_duration().as_secs() + 1));
    }
}

impl Cluster {
    /// One second of measurements (answering [`Effect::CollectSamples`](super::Effect)), at
    /// `now` and the wall time `wall` (scheduled actions run by the wall clock). Records them
    /// and what follows from them, then lets every group's scaling controller and every canary
    /// rollback decide.
    pub fn handle_samples(&mut self, now: Time, wall: Timestamp, samples: Samples) {
        self.sampling.answered(now);
        let shared = self.record_rollups(now, &samples.rollups);
        let per_instance = self.record_targets(now, &samples, &shared);
        self.record_load_balancers(now, &samples);
        self.record_groups(now, &samples, &per_instance);
        self.prune_series(now, &samples);
        self.record_cost(now);
        self.spot_drill(now);
        self.evaluate_policies(now, wall);
        let rollbacks = self.forwards.evaluate(now, &self.metrics);
        self.forwards
            .apply_rollbacks(now, rollbacks, &mut self.effects);
        self.pump(now);
    }

    /// Per target, target group and zone; returns requests per instance.
    fn record_targets(
        &mut self,
        now: Time,
        samples: &Samples,
        shared: &crate::hashing::FastMap<String, (u64, u64)>,
    ) -> HashMap<InstanceId, u64> {
        let mut per_instance: HashMap<InstanceId, u64> = HashMap::new();
        let mut per_tg: HashMap<&str, (u64, u64)> = HashMap::new();
        for t in &samples.targets {
            let instance = self.by_address.get(&t.address).cloned();
            let target = Scope::Target(t.address);
            self.metrics
                .record(Metric::RequestCount, &target, now, t.requests as f64);
            if let Some(id) = &instance {
                *per_instance.entry(id.clone()).or_default() += t.requests;
            }
            let sums = per_tg.entry(t.target_group.as_str()).or_default();
            sums.0 += t.requests;
            sums.1 += t.target_5xx;
            if t.response_times.is_empty() {
                continue;
            }
            let tg = Scope::TargetGroup(t.target_group.clone());
            let instance = instance.map(Scope::Instance);
            for scope in [Some(&target), Some(&tg), instance.as_ref()]
                .into_iter()
                .flatten()
            {
                self.metrics.record_distribution_buckets(
                    Metric::TargetResponseTime,
                    scope,
                    now,
                    &t.response_times,
                );
            }
        }
        let names: Vec<String> = self.target_groups.keys().cloned().collect();
        for name in names {
            let (mut requests, mut target_5xx) =
                per_tg.get(name.as_str()).copied().unwrap_or_default();
            if let Some((r, e)) = shared.get(&name) {
                requests += r;
                target_5xx += e;
            }
            self.record_target_group(now, &name, requests, target_5xx);
        }
        per_instance
    }

    fn record_target_group(&mut self, now: Time, name: &str, requests: u64, target_5xx: u64) {
        let Some(tg) = self.target_groups.get(name) else {
            return;
        };
        let scope = Scope::TargetGroup(name.to_string());
        let mut healthy = 0usize;
        let mut unhealthy = 0usize;
        let mut per_zone: HashMap<std::sync::Arc<str>, (u32, u32)> = HashMap::new();
        for (address, state) in tg.health.states() {
            healthy += usize::from(state == TargetState::Healthy);
            unhealthy += usize::from(state == TargetState::Unhealthy);
            // Per zone: AWS's `AvailabilityZone` dimension.
            let zone = tg.routes.get(&address).map(|(_, z)| z.clone()).or_else(|| {
                let id = self.by_address.get(&address)?;
                Some(self.members.get(id)?.zone.clone())
            });
            let Some(zone) = zone else {
                continue;
            };
            let counts = per_zone.entry(zone).or_default();
            match state {
                TargetState::Healthy => counts.0 += 1,
                TargetState::Unhealthy => counts.1 += 1,
                _ => {}
            }
        }
        let m = &mut self.metrics;
        m.record(Metric::RequestCount, &scope, now, requests as f64);
        m.record(Metric::HttpTarget5xxCount, &scope, now, target_5xx as f64);
        m.record(Metric::HealthyHostCount, &scope, now, healthy as f64);
        m.record(Metric::UnhealthyHostCount, &scope, now, unhealthy as f64);
        if healthy > 0 {
            let rate = requests as f64 / healthy as f64;
            m.record(Metric::RequestRatePerTarget, &scope, now, rate);
        }
        for (zone, (healthy, unhealthy)) in per_zone {
            let scope = Scope::TargetGroupZone {
                target_group: name.to_string(),
                zone: zone.to_string(),
            };
            m.record(Metric::HealthyHostCount, &scope, now, f64::from(healthy));
            m.record(
                Metric::UnhealthyHostCount,
                &scope,
                now,
                f64::from(unhealthy),
            );
        }
    }

    fn record_load_balancers(&mut self, now: Time, samples: &Samples) {
        for lb in &samples.load_balancers {
            let scope = Scope::LoadBalancer(lb.load_balancer.clone());
            for (metric, value) in [
                (Metric::RequestCount, lb.requests),
                (Metric::HttpElb5xxCount, lb.elb_5xx),
                (Metric::HttpTarget5xxCount, lb.target_5xx),
                (Metric::ActiveConnections, lb.active_connections),
                (Metric::NewConnections, lb.new_connections),
            ] {
                self.metrics.record(metric, &scope, now, value as f64);
            }
        }
    }

    /// Per instance and per group: requests, CPU, capacity gauges.
    fn record_groups(
        &mut self,
        now: Time,
        samples: &Samples,
        per_instance: &HashMap<InstanceId, u64>,
    ) {
        let cpu: HashMap<&InstanceId, f64> = samples.cpu.iter().map(|(id, v)| (id, *v)).collect();
        // Only roll-ups this second: no instance has a series second to write.
        let rollup_only = !samples.rollups.is_empty() && per_instance.is_empty() && cpu.is_empty();
        for (name, g) in &self.groups {
            let scope = Scope::Group(name.clone());
            let (mut requests, mut in_service, mut cpu_sum, mut cpu_n) = (0u64, 0u32, 0.0, 0u32);
            for i in g.asg.instances() {
                if i.lifecycle != LifecycleState::InService {
                    continue;
                }
                in_service += 1;
                if rollup_only {
                    // A roll-up second: members' requests are in the shares, and an
                    // instance without a target's sample has no series second (not a 0).
                    continue;
                }
                let iscope = Scope::Instance(i.id.clone());
                let n = per_instance.get(&i.id).copied().unwrap_or(0);
                requests += n;
                self.metrics
                    .record(Metric::RequestCount, &iscope, now, n as f64);
                if let Some(c) = cpu.get(&i.id) {
                    self.metrics
                        .record(Metric::CpuUtilization, &iscope, now, *c);
                    cpu_sum += c;
                    cpu_n += 1;
                }
            }
            if !samples.rollups.is_empty() {
                let (r, _, c, n) = self.shared_group_second(name, &samples.rollups);
                requests += r;
                cpu_sum += c;
                cpu_n += n;
            }
            let m = &mut self.metrics;
            m.record(
                Metric::InServiceInstances,
                &scope,
                now,
                f64::from(in_service),
            );
            let desired = f64::from(g.asg.desired_capacity());
            m.record(Metric::DesiredCapacity, &scope, now, desired);
            if in_service > 0 {
                let rate = requests as f64 / f64::from(in_service);
                m.record(Metric::RequestRatePerTarget, &scope, now, rate);
            }
            if cpu_n > 0 {
                let avg = cpu_sum / f64::from(cpu_n);
                m.record(Metric::CpuUtilization, &scope, now, avg);
            }
        }
    }

    /// Series of instances and targets that are gone are dropped so memory follows the live
    /// fleet (every new instance listens on a new port) — every ten seconds, since it walks
    /// every series.
    fn prune_series(&mut self, now: Time, samples: &Samples) {
        if self
            .pruned_at
            .is_some_and(|at| now.saturating_since(at) < Duration::from_secs(10))
        {
            return;
        }
        self.pruned_at = Some(now);
        let live_targets: HashSet<SocketAddr> = samples.targets.iter().map(|t| t.address).collect();
        let members = &self.members;
        self.metrics.retain_scopes(|s| match s {
            Scope::Instance(id) => members.contains_key(id),
            Scope::Target(a) => live_targets.contains(a),
            _ => true,
        });
    }

    /// Runs every group's scheduled actions and due policies, each group in a
    /// `scaling_evaluation` span so its log lines say which group they belong to.
    fn evaluate_policies(&mut self, now: Time, wall: Timestamp) {
        for (name, g) in self.groups.iter_mut() {
            let span = tracing::info_span!("scaling_evaluation", group = name.as_str());
            let _entered = span.enter();
            let source = GroupMetrics {
                store: &self.metrics,
                shares: &self.shares,
                group: name,
            };
            for d in g.controller.tick(now, Some(wall), &mut g.asg, &source) {
                tracing::info!(
                    from = d.from,
                    to = d.to,
                    cause = d.cause.as_str(),
                    "scaling decision"
                );
            }
            for (metric, hour) in g.controller.take_finished_hours() {
                self.effects.push_back(Effect::Persist(Durable::LoadHour {
                    group: name.clone(),
                    metric,
                    hour,
                }));
            }
        }
    }

    /// The metrics store, for reads by the API and the dashboard.
    pub fn metrics(&self) -> &MetricsStore {
        &self.metrics
    }
}

/// One group's view of the store, as its controller reads it.
struct GroupMetrics<'a> {
    store: &'a MetricsStore,
    /// Requests of roll-up seconds (see [`super::rollup`]).
    shares: &'a crate::hashing::FastMap<String, super::rollup::Shares>,
    group: &'a str,
}

impl MetricSource for GroupMetrics<'_> {
    fn group_metric(&self, q: &MetricQuery<'_>) -> Option<f64> {
        let period = q.period.as_secs().max(1);
        let instance = |id: &InstanceId| Scope::Instance(id.clone());
        if q.metric == Metric::RequestRatePerTarget {
            // Requests to the measured (warm, in-service) instances per second per instance.
            if q.instances.is_empty() {
                return None;
            }
            let end = q.end.as_duration().as_secs();
            let start = end.saturating_sub(period - 1);
            let total: f64 = q
                .instances
                .iter()
                .filter_map(|id| {
                    let scope = instance(id);
                    let own = self.store.aggregate(
                        Metric::RequestCount,
                        &scope,
                        period,
                        Statistic::Sum,
                        q.end,
                    );
                    let shared: u64 = self
                        .shares
                        .values()
                        .map(|s| s.requests(id, start, end))
                        .sum();
                    match (own, shared) {
                        (own, 0) => own,
                        (own, n) => Some(own.unwrap_or(0.0) + n as f64),
                    }
                })
                .sum();
            return Some(total / period as f64 / q.instances.len() as f64);
        }
        let per_instance: Vec<f64> = q
            .instances
            .iter()
            .filter_map(|id| {
                self.store
                    .aggregate(q.metric, &instance(id), period, q.statistic, q.end)
            })
            .collect();
        if !per_instance.is_empty() {
            return Some(per_instance.iter().sum::<f64>() / per_instance.len() as f64);
        }
        if q.metric.is_instance_metric() {
            // Every instance warms up: no data (the group series would count warming ones).
            return None;
        }
        let scope = Scope::Group(self.group.to_string());
        self.store
            .aggregate(q.metric, &scope, period, q.statistic, q.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_rate_uses_only_measured_instances() {
        let mut store = MetricsStore::default();
        let t = |s: u64| Time::from_duration(Duration::from_secs(s));
        let a = InstanceId::from("i-a".to_string());
        let b = InstanceId::from("i-b".to_string());
        for s in 0..4 {
            store.record(
                Metric::RequestCount,
                &Scope::Instance(a.clone()),
                t(s),
                300.0,
            );
            store.record(
                Metric::RequestCount,
                &Scope::Instance(b.clone()),
                t(s),
                100.0,
            );
        }
        let shares = crate::hashing::FastMap::default();
        let m = GroupMetrics {
            store: &store,
            shares: &shares,
            group: "web",
        };
        let q = |ids: &[InstanceId]| {
            m.group_metric(&MetricQuery {
                metric: Metric::RequestRatePerTarget,
                statistic: Statistic::Average,
                period: Duration::from_secs(2),
                end: t(3),
                instances: ids,
            })
        };
        assert_eq!(q(&[a.clone(), b.clone()]), Some(200.0));
        assert_eq!(q(&[a]), Some(300.0));
        assert_eq!(q(&[]), None);
    }
}
