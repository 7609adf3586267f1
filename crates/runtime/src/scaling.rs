//! Metrics sampling and the scaling controllers, driven once per second by the control loop.
//!
//! Every second the runtime samples the data plane's counters (requests per backend) and each
//! instance's CPU time from `/proc/<pid>/stat` into the metrics store, then lets each group's
//! [`ScalingController`] evaluate its policies against the store. Decisions go straight into
//! the group, whose activity log records the cause.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use flotilla_admin::api::{DatapointInfo, MetricDatapoints, MetricParams};
use flotilla_admin::AdminError;
use flotilla_config::{
    AdjustmentType as CfgAdjustment, AlarmSpec as CfgAlarm, Comparison as CfgComparison, Config,
    MissingData as CfgMissing, ScalingPolicyKind,
};
use flotilla_control::alarm::{AlarmSpec, Comparison, MissingData};
use flotilla_control::policy::{
    AdjustmentType, SimpleSpec, StepAdjustment, StepSpec, TargetTrackingSpec,
};
use flotilla_control::schedule::ScheduledActionSpec;
use flotilla_control::{
    ControllerSpec, InstanceId, LifecycleState, MetricQuery, MetricSource, ScalingController,
    TargetState, Time,
};
use flotilla_metrics::{MetricsStore, Statistic};
use flotilla_proxy::HistogramSnapshot;

use crate::backend::Shared;
use crate::clock::Clock;
use crate::control::Control;

/// Linux's `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat`, fixed at 100 for the
/// user-space ABI on every architecture we run on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// The store and the per-group controllers.
pub(crate) struct Scaling {
    pub(crate) store: MetricsStore,
    controllers: BTreeMap<String, ScalingController>,
    last_requests: HashMap<(String, SocketAddr), u64>,
    /// Cumulative response-time histogram of each target at the last sample.
    last_response_times: HashMap<(String, SocketAddr), HistogramSnapshot>,
    last_cpu: HashMap<u32, (u64, Time)>,
    next_sample: Time,
}

impl Scaling {
    /// Builds one controller per group from its config.
    pub(crate) fn new(config: &Config, now: Time) -> Self {
        let controllers = config
            .auto_scaling_groups
            .iter()
            .map(|(name, asg)| (name.clone(), controller(name, asg, now)))
            .collect();
        Scaling {
            store: MetricsStore::default(),
            controllers,
            last_requests: HashMap::new(),
            last_response_times: HashMap::new(),
            last_cpu: HashMap::new(),
            next_sample: now,
        }
    }

    /// Replaces a group's controller after a reload changed its policies, scheduled actions,
    /// warm-up or cooldown. Alarm windows, stabilization history and cooldowns start afresh.
    pub(crate) fn replace_controller(
        &mut self,
        name: &str,
        asg: &flotilla_config::AutoScalingGroup,
        now: Time,
    ) {
        self.controllers
            .insert(name.to_string(), controller(name, asg, now));
    }

    /// Policy states of one group, for `GET /v1/groups/{name}/scaling`.
    pub(crate) fn policies(&self, group: &str) -> Vec<flotilla_admin::api::PolicyInfo> {
        self.controllers
            .get(group)
            .map(|c| {
                c.policy_status()
                    .into_iter()
                    .map(|p| flotilla_admin::api::PolicyInfo {
                        name: p.name,
                        kind: p.kind.to_string(),
                        description: p.description,
                        alarm_state: p.alarm_state.map(|s| s.as_str().to_string()),
                        last_value: p.last_value,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// When the next sample is due, for the control loop's sleep.
    pub(crate) fn next_sample(&self) -> Time {
        self.next_sample
    }

    /// Samples once per second and runs the controllers; a no-op between seconds.
    /// `cpu`: the process groups' CPU ticks, read by [`process_tree_ticks`] before the control
    /// lock was taken (`None`: no instance runs, or the sample is not due).
    pub(crate) fn tick(
        &mut self,
        c: &mut Control,
        now: Time,
        wall: jiff::Timestamp,
        cpu: Option<HashMap<u32, u64>>,
    ) {
        if now < self.next_sample {
            return;
        }
        let sec = now.as_duration().as_secs();
        self.next_sample = Time::from_duration(Duration::from_secs(sec + 1));
        self.sample(c, now, cpu.unwrap_or_default());
        for (name, controller) in &mut self.controllers {
            let Some(g) = c.groups.get_mut(name) else {
                continue;
            };
            let source = GroupMetrics {
                store: &self.store,
                group: name,
            };
            for d in controller.tick(now, Some(wall), &mut g.asg, &source) {
                tracing::info!(group = name.as_str(), "scaling: {}", d.cause);
            }
        }
    }

    fn sample(&mut self, c: &Control, now: Time, tree_ticks: HashMap<u32, u64>) {
        // Requests per backend since the last sample, per target group, target and instance.
        let mut per_instance: HashMap<InstanceId, u64> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (tg_name, tg) in &c.target_groups {
            let mut total = 0u64;
            for b in tg.proxy.stats() {
                let key = (tg_name.clone(), b.addr);
                seen.insert(key.clone());
                let prev = self.last_requests.insert(key, b.requests_total);
                let delta = b
                    .requests_total
                    .saturating_sub(prev.unwrap_or(b.requests_total));
                total += delta;
                self.store.record(
                    "request_count",
                    &format!("target/{}", b.addr),
                    now,
                    delta as f64,
                );
                let instance = c.instance_at(b.addr);
                if let Some(id) = instance {
                    *per_instance.entry(id.clone()).or_default() += delta;
                }
                // Response times of this second, as a distribution at target, target group
                // and instance scope (the last is what group policies read, warm-up excluded).
                // A target's histogram starts empty when it joins, so its first reading counts
                // in full: requests of its first second are not lost.
                let prev = self
                    .last_response_times
                    .insert((tg_name.clone(), b.addr), b.response_time.clone())
                    .unwrap_or_default();
                let mut scopes = vec![
                    format!("target/{}", b.addr),
                    format!("target-group/{tg_name}"),
                ];
                if let Some(id) = instance {
                    scopes.push(format!("instance/{id}"));
                }
                for (mid, n) in b.response_time.since(&prev).buckets() {
                    for scope in &scopes {
                        self.store.record_distribution_n(
                            "target_response_time",
                            scope,
                            now,
                            mid.as_secs_f64(),
                            n,
                        );
                    }
                }
            }
            let scope = format!("target-group/{tg_name}");
            self.store
                .record("request_count", &scope, now, total as f64);
            let healthy = tg
                .health
                .targets()
                .filter(|t| t.state == TargetState::Healthy)
                .count();
            let unhealthy = tg
                .health
                .targets()
                .filter(|t| t.state == TargetState::Unhealthy)
                .count();
            self.store
                .record("healthy_host_count", &scope, now, healthy as f64);
            self.store
                .record("unhealthy_host_count", &scope, now, unhealthy as f64);
            if healthy > 0 {
                self.store.record(
                    "request_rate_per_target",
                    &scope,
                    now,
                    total as f64 / healthy as f64,
                );
            }
        }
        // Counters of targets that left are forgotten (a reused address starts afresh).
        self.last_requests.retain(|k, _| seen.contains(k));
        self.last_response_times.retain(|k, _| seen.contains(k));
        // Per instance: requests and CPU; per group: gauges and averages.
        let live_pids: Vec<u32> = c.instances.values().filter_map(|r| r.pid).collect();
        self.last_cpu.retain(|pid, _| live_pids.contains(pid));
        for (name, g) in &c.groups {
            let scope = format!("group/{name}");
            let mut requests = 0u64;
            let mut in_service = 0u32;
            let mut cpu_sum = 0.0;
            let mut cpu_n = 0u32;
            for i in g.asg.instances() {
                if i.lifecycle != LifecycleState::InService {
                    continue;
                }
                in_service += 1;
                let iscope = format!("instance/{}", i.id);
                let n = per_instance.get(&i.id).copied().unwrap_or(0);
                requests += n;
                self.store.record("request_count", &iscope, now, n as f64);
                let pid = c.instances.get(&i.id).and_then(|r| r.pid);
                let ticks = pid.and_then(|p| tree_ticks.get(&p).copied());
                if let Some(cpu) = pid
                    .zip(ticks)
                    .and_then(|(p, t)| self.cpu_percent(p, t, now))
                {
                    self.store.record("cpu_utilization", &iscope, now, cpu);
                    cpu_sum += cpu;
                    cpu_n += 1;
                }
            }
            self.store
                .record("in_service_instances", &scope, now, f64::from(in_service));
            self.store.record(
                "desired_capacity",
                &scope,
                now,
                f64::from(g.asg.desired_capacity()),
            );
            if in_service > 0 {
                self.store.record(
                    "request_rate_per_target",
                    &scope,
                    now,
                    requests as f64 / f64::from(in_service),
                );
            }
            if cpu_n > 0 {
                self.store
                    .record("cpu_utilization", &scope, now, cpu_sum / f64::from(cpu_n));
            }
        }
        // Series of instances and targets that are gone are dropped so memory follows the live
        // fleet (every new instance listens on a new port).
        let live: std::collections::HashSet<String> = c
            .instances
            .keys()
            .map(|id| format!("instance/{id}"))
            .chain(seen.iter().map(|(_, addr)| format!("target/{addr}")))
            .collect();
        let stale: Vec<String> = self
            .store
            .series_names()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| {
                (s.starts_with("instance/") || s.starts_with("target/")) && !live.contains(s)
            })
            .collect();
        for s in stale {
            self.store.remove_scope(&s);
        }
    }

    /// Percent of one core the instance used since the last sample (first sample: none),
    /// from the CPU ticks of its whole process tree.
    fn cpu_percent(&mut self, pid: u32, ticks: u64, now: Time) -> Option<f64> {
        let prev = self.last_cpu.insert(pid, (ticks, now));
        let (prev_ticks, prev_time) = prev?;
        let dt = now.saturating_since(prev_time).as_secs_f64();
        if dt <= 0.0 {
            return None;
        }
        let used = ticks.saturating_sub(prev_ticks) as f64 / CLOCK_TICKS_PER_SEC;
        Some(used / dt * 100.0)
    }

    /// Answers `GET /v1/metrics/{metric}`.
    pub(crate) fn read(
        &self,
        clock: &Clock,
        groups: &[String],
        metric: &str,
        p: &MetricParams,
    ) -> Result<MetricDatapoints, AdminError> {
        let scope = match (&p.scope, groups) {
            (Some(s), _) => s.clone(),
            (None, [only]) => format!("group/{only}"),
            (None, _) => {
                return Err(AdminError::BadRequest(
                    "scope is required, e.g. scope=group/web".into(),
                ))
            }
        };
        let period = match &p.period {
            Some(s) => humantime::parse_duration(s)
                .map_err(|e| AdminError::BadRequest(format!("period {s:?}: {e}")))?,
            None => Duration::from_secs(1),
        };
        if period.as_secs() == 0 || period.subsec_nanos() != 0 {
            return Err(AdminError::BadRequest(
                "period must be a whole number of seconds, at least 1s".into(),
            ));
        }
        let statistic: Statistic = p
            .statistic
            .as_deref()
            .unwrap_or("average")
            .parse()
            .map_err(|e: flotilla_metrics::MetricsError| AdminError::BadRequest(e.to_string()))?;
        let now = clock.now();
        let since = match &p.since {
            None => Time::from_duration(now.as_duration().saturating_sub(Duration::from_secs(300))),
            Some(s) => since_time(clock, now, s)?,
        };
        let points = self
            .store
            .read(metric, &scope, period.as_secs(), statistic, since, now)
            .map_err(|e| match e {
                flotilla_metrics::MetricsError::NoSuchSeries { .. } => {
                    AdminError::NotFound(e.to_string())
                }
                _ => AdminError::BadRequest(e.to_string()),
            })?;
        Ok(MetricDatapoints {
            datapoints: points
                .into_iter()
                .map(|d| DatapointInfo {
                    time: clock.rfc3339(d.time),
                    value: d.value,
                })
                .collect(),
        })
    }
}

/// `since` as a control-plane time: a duration ago, or an RFC 3339 wall time.
fn since_time(clock: &Clock, now: Time, s: &str) -> Result<Time, AdminError> {
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(Time::from_duration(now.as_duration().saturating_sub(ago)));
    }
    let wall = humantime::parse_rfc3339_weak(s).map_err(|_| {
        AdminError::BadRequest(format!(
            "since {s:?}: expected a duration (5m) or an RFC 3339 time"
        ))
    })?;
    let ago = SystemTime::now()
        .duration_since(wall)
        .unwrap_or(Duration::ZERO);
    let _ = clock;
    Ok(Time::from_duration(now.as_duration().saturating_sub(ago)))
}

/// (process group, utime + stime in clock ticks) of a process, from `/proc/<pid>/stat`.
fn read_cpu_ticks(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let pgrp: u32 = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// The CPU ticks of every process group when a metrics sample is due and some instance runs,
/// read before the caller takes the control lock: the `/proc` scan is file I/O, which the
/// control lock is never held across.
pub(crate) fn process_tree_ticks(shared: &Shared, now: Time) -> Option<HashMap<u32, u64>> {
    let due = shared
        .scaling
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .next_sample()
        <= now;
    if !due || !shared.lock().instances.values().any(|r| r.pid.is_some()) {
        return None;
    }
    Some(process_group_ticks())
}

/// CPU ticks per process group. Each instance runs in its own process group led by its
/// process (see `flotilla-compute`), so this is the CPU of the instance's whole process tree,
/// children included; one scan of `/proc` per second serves every instance.
fn process_group_ticks() -> HashMap<u32, u64> {
    let mut by_group = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by_group;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        if let Some((pgrp, ticks)) = read_cpu_ticks(pid) {
            *by_group.entry(pgrp).or_insert(0) += ticks;
        }
    }
    by_group
}

/// The scaling controller of one group, from its config; a scheduled action that cannot be
/// understood (validation refuses those, so only a bug gets here) is logged and left out.
fn controller(name: &str, asg: &flotilla_config::AutoScalingGroup, now: Time) -> ScalingController {
    let mut spec = ControllerSpec {
        default_instance_warmup: asg.default_instance_warmup,
        default_cooldown: asg.default_cooldown,
        ..ControllerSpec::default()
    };
    for p in &asg.scaling_policies {
        match &p.kind {
            ScalingPolicyKind::TargetTracking {
                metric,
                statistic,
                target_value,
                period,
                scale_in_stabilization,
                disable_scale_in,
            } => spec.target_tracking.push(TargetTrackingSpec {
                name: p.name.clone(),
                metric: metric.clone(),
                statistic: statistic.clone(),
                target_value: *target_value,
                period: *period,
                scale_in_stabilization: *scale_in_stabilization,
                disable_scale_in: *disable_scale_in,
            }),
            ScalingPolicyKind::Step {
                adjustment_type,
                alarm,
                steps,
                min_adjustment_magnitude,
            } => spec.step.push(StepSpec {
                name: p.name.clone(),
                adjustment_type: adjustment(*adjustment_type),
                alarm: alarm_spec(alarm),
                steps: steps
                    .iter()
                    .map(|s| StepAdjustment {
                        lower: s.lower,
                        upper: s.upper,
                        adjustment: s.adjustment,
                    })
                    .collect(),
                min_adjustment_magnitude: *min_adjustment_magnitude,
            }),
            ScalingPolicyKind::Simple {
                adjustment_type,
                alarm,
                adjustment: adj,
                cooldown,
            } => spec.simple.push(SimpleSpec {
                name: p.name.clone(),
                adjustment_type: adjustment(*adjustment_type),
                alarm: alarm_spec(alarm),
                adjustment: *adj,
                cooldown: *cooldown,
                min_adjustment_magnitude: None,
            }),
        }
    }
    for a in &asg.scheduled_actions {
        match ScheduledActionSpec::parse(
            &a.name,
            a.recurrence.as_deref(),
            &a.time_zone,
            a.start_time.as_deref(),
            a.end_time.as_deref(),
            a.min_size,
            a.max_size,
            a.desired_capacity,
        ) {
            Ok(s) => spec.scheduled.push(s),
            Err(e) => {
                tracing::error!(group = name, "scheduled action skipped: {e}")
            }
        }
    }
    ScalingController::new(spec, now)
}

/// One group's view of the store, as its controller reads it.
struct GroupMetrics<'a> {
    store: &'a MetricsStore,
    group: &'a str,
}

impl MetricSource for GroupMetrics<'_> {
    fn group_metric(&self, q: &MetricQuery<'_>) -> Option<f64> {
        let period = q.period.as_secs().max(1);
        let stat: Statistic = q.statistic.parse().unwrap_or(Statistic::Average);
        if q.metric == "request_rate_per_target" {
            // Requests to the measured (warm, in-service) instances per second per instance.
            if q.instances.is_empty() {
                return None;
            }
            let total: f64 = q
                .instances
                .iter()
                .filter_map(|id| {
                    self.store.aggregate(
                        "request_count",
                        &format!("instance/{id}"),
                        period,
                        Statistic::Sum,
                        q.end,
                    )
                })
                .sum();
            return Some(total / period as f64 / q.instances.len() as f64);
        }
        let per_instance: Vec<f64> = q
            .instances
            .iter()
            .filter_map(|id| {
                self.store
                    .aggregate(q.metric, &format!("instance/{id}"), period, stat, q.end)
            })
            .collect();
        if !per_instance.is_empty() {
            return Some(per_instance.iter().sum::<f64>() / per_instance.len() as f64);
        }
        self.store.aggregate(
            q.metric,
            &format!("group/{}", self.group),
            period,
            stat,
            q.end,
        )
    }
}

fn adjustment(a: CfgAdjustment) -> AdjustmentType {
    match a {
        CfgAdjustment::ChangeInCapacity => AdjustmentType::ChangeInCapacity,
        CfgAdjustment::ExactCapacity => AdjustmentType::ExactCapacity,
        CfgAdjustment::PercentChangeInCapacity => AdjustmentType::PercentChangeInCapacity,
    }
}

/// The control plane's alarm settings from the config's.
pub(crate) fn alarm_spec(a: &CfgAlarm) -> AlarmSpec {
    AlarmSpec {
        metric: a.metric.clone(),
        statistic: a.statistic.clone(),
        period: a.period,
        evaluation_periods: a.evaluation_periods,
        datapoints_to_alarm: a.datapoints_to_alarm,
        comparison: match a.comparison {
            CfgComparison::GreaterThan => Comparison::GreaterThan,
            CfgComparison::GreaterThanOrEqual => Comparison::GreaterThanOrEqual,
            CfgComparison::LessThan => Comparison::LessThan,
            CfgComparison::LessThanOrEqual => Comparison::LessThanOrEqual,
        },
        threshold: a.threshold,
        treat_missing_data: match a.treat_missing_data {
            CfgMissing::Missing => MissingData::Missing,
            CfgMissing::NotBreaching => MissingData::NotBreaching,
            CfgMissing::Breaching => MissingData::Breaching,
            CfgMissing::Ignore => MissingData::Ignore,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_per_process_group() {
        let (pgrp, ticks) = read_cpu_ticks(std::process::id()).expect("own stat");
        assert_eq!(read_cpu_ticks(u32::MAX), None);
        let groups = process_group_ticks();
        assert!(groups.get(&pgrp).is_some_and(|t| *t >= ticks));
    }

    #[test]
    fn request_rate_uses_only_measured_instances() {
        let mut store = MetricsStore::default();
        let t = |s: u64| Time::from_duration(Duration::from_secs(s));
        let a = InstanceId::from("i-a".to_string());
        let b = InstanceId::from("i-b".to_string());
        for s in 0..4 {
            store.record("request_count", "instance/i-a", t(s), 300.0);
            store.record("request_count", "instance/i-b", t(s), 100.0);
        }
        let m = GroupMetrics {
            store: &store,
            group: "web",
        };
        let q = |ids: &[InstanceId]| {
            m.group_metric(&MetricQuery {
                metric: "request_rate_per_target",
                statistic: "average",
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
