//! The per-group scaling controller: owns the group's policies, alarms and scheduled actions
//! and turns metric readings into desired-capacity changes with causes.
//!
//! The runtime calls [`ScalingController::tick`] about once a second with the monotonic time,
//! the wall time (for scheduled actions) and a [`MetricSource`] over its metrics store. Each
//! policy evaluates at its own period; their proposals are combined by AWS's rules (§6.1) and
//! the result is applied to the [`AutoScalingGroup`], whose activity log records the cause.

mod measured;
mod predictive;

use std::time::Duration;

use jiff::Timestamp;

use crate::group::{AutoScalingGroup, ScalingProcess};
use crate::id::InstanceId;
use crate::metrics::{Metric, Statistic};

use crate::policy::predictive::LoadHour;
use crate::policy::{
    combine, PredictivePolicy, Proposal, ScalingPolicy, SimplePolicy, StepPolicy,
    TargetTrackingPolicy,
};
use crate::schedule::ScheduledActionSpec;
use crate::time::Time;
use measured::{is_warming, Measured};

/// What a policy asks the metrics store for.
#[derive(Clone, Copy, Debug)]
pub struct MetricQuery<'a> {
    /// The metric, e.g. `request_rate_per_target`.
    pub metric: Metric,
    /// The statistic of the period, e.g. `average` or `p90`.
    pub statistic: Statistic,
    /// The period the value is aggregated over, ending at `end`.
    pub period: Duration,
    /// End of the period (inclusive).
    pub end: Time,
    /// The instances whose data counts: for an instance metric (CPU) those in service and
    /// past warm-up (AWS leaves warming instances out of the aggregate); for a load balancer
    /// metric every instance in service and healthy in its target groups, warming or not.
    pub instances: &'a [InstanceId],
}

/// The runtime's (or a simulation's) metrics, as the controller reads them.
pub trait MetricSource {
    /// The group-level value of the query over its instances, or `None` when there is no data
    /// for the period (the alarm then treats it as missing).
    fn group_metric(&self, query: &MetricQuery<'_>) -> Option<f64>;
}

/// The group-wide settings the controller needs besides its policies.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ControllerSpec {
    /// Seconds a new instance needs before its metrics count (AWS `DefaultInstanceWarmup`);
    /// falls back to `default_cooldown` when unset, as in AWS.
    pub default_instance_warmup: Option<Duration>,
    /// Cooldown of simple policies without their own (AWS `DefaultCooldown`).
    pub default_cooldown: Duration,
    /// The dynamic scaling policies, in the order the config lists them.
    pub policies: Vec<ScalingPolicy>,
    /// Scheduled actions.
    pub scheduled: Vec<ScheduledActionSpec>,
}

/// One capacity change the controller made, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScalingDecision {
    /// Desired capacity before.
    pub from: u32,
    /// Desired capacity after.
    pub to: u32,
    /// The cause recorded in the group's activity log.
    pub cause: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Scheduled<P> {
    policy: P,
    period: Duration,
    next_eval: Time,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ScheduledAction {
    spec: ScheduledActionSpec,
    next_run: Option<Timestamp>,
}

/// A policy's state for status output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyStatus {
    /// Policy name.
    pub name: String,
    /// `target_tracking`, `step`, `simple` or `predictive`.
    pub kind: &'static str,
    /// What the policy does, in one line: the tracked metric and target, or the alarm
    /// (metric, statistic, comparison, threshold, M of N periods) of a step/simple policy.
    pub description: String,
    /// Alarm state for step/simple policies.
    pub alarm_state: Option<crate::alarm::AlarmState>,
    /// Latest value the policy saw.
    pub last_value: Option<f64>,
}

/// The scaling controller of one Auto Scaling group.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ScalingController {
    warmup: Duration,
    target_tracking: Vec<Scheduled<TargetTrackingPolicy>>,
    step: Vec<Scheduled<StepPolicy>>,
    simple: Vec<Scheduled<SimplePolicy>>,
    scheduled: Vec<ScheduledAction>,
    predictive: Vec<PredictivePolicy>,
    /// The capacity predictive policies hold up this second: dynamic policies do not scale
    /// in below it.
    predictive_floor: Option<u32>,
    /// Hours of load history completed since the driver last took them (to make durable).
    finished_hours: Vec<(Metric, LoadHour)>,
    last_wall: Option<Timestamp>,
    last_values: Vec<(String, Option<f64>)>,
}

impl ScalingController {
    /// A controller whose policies first evaluate one period after `now`.
    pub fn new(spec: ControllerSpec, now: Time) -> Self {
        let warmup = spec
            .default_instance_warmup
            .unwrap_or(spec.default_cooldown);
        let scheduled = |period: Duration| {
            let period = period.max(Duration::from_secs(1));
            (period, now + period)
        };
        let mut c = ScalingController {
            warmup,
            target_tracking: Vec::new(),
            step: Vec::new(),
            simple: Vec::new(),
            scheduled: spec
                .scheduled
                .into_iter()
                .map(|spec| ScheduledAction {
                    spec,
                    next_run: None,
                })
                .collect(),
            predictive: Vec::new(),
            predictive_floor: None,
            finished_hours: Vec::new(),
            last_wall: None,
            last_values: Vec::new(),
        };
        for p in spec.policies {
            match p {
                ScalingPolicy::TargetTracking(s) => {
                    let (period, next_eval) = scheduled(s.period);
                    c.target_tracking.push(Scheduled {
                        period,
                        next_eval,
                        policy: TargetTrackingPolicy::new(s),
                    });
                }
                ScalingPolicy::Step(s) => {
                    let (period, next_eval) = scheduled(s.alarm.period);
                    c.step.push(Scheduled {
                        period,
                        next_eval,
                        policy: StepPolicy::new(s),
                    });
                }
                ScalingPolicy::Predictive(s) => c.predictive.push(PredictivePolicy::new(s)),
                ScalingPolicy::Simple(s) => {
                    let (period, next_eval) = scheduled(s.alarm.period);
                    c.simple.push(Scheduled {
                        period,
                        next_eval,
                        policy: SimplePolicy::new(s, spec.default_cooldown),
                    });
                }
            }
        }
        c
    }

    /// The warm-up in force (default instance warm-up, else the default cooldown).
    pub fn instance_warmup(&self) -> Duration {
        self.warmup
    }

    /// The target tracking policies, e.g. to check stabilization in simulations.
    pub fn target_tracking_policies(&self) -> impl Iterator<Item = &TargetTrackingPolicy> {
        self.target_tracking.iter().map(|s| &s.policy)
    }

    /// Every policy's state, for `flotilla status`.
    pub fn policy_status(&self) -> Vec<PolicyStatus> {
        let last = |name: &str| {
            self.last_values
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| *v)
        };
        let mut out = Vec::new();
        for s in &self.target_tracking {
            let spec = s.policy.spec();
            let name = spec.name.clone();
            let mut description = format!(
                "keeps {} {} at {} (period {}s, scale-in stabilization {}s)",
                spec.metric,
                spec.statistic,
                crate::policy::fmt_value(spec.target_value),
                s.period.as_secs(),
                spec.scale_in_stabilization.as_secs()
            );
            if spec.disable_scale_in {
                description.push_str(", scale-in disabled");
            }
            out.push(PolicyStatus {
                last_value: last(&name),
                name,
                kind: "target_tracking",
                description,
                alarm_state: None,
            });
        }
        for s in &self.step {
            let name = s.policy.spec().name.clone();
            out.push(PolicyStatus {
                last_value: last(&name),
                name,
                kind: "step",
                description: format!("alarm: {}", s.policy.alarm().describe()),
                alarm_state: Some(s.policy.alarm().state()),
            });
        }
        for s in &self.simple {
            let name = s.policy.spec().name.clone();
            out.push(PolicyStatus {
                last_value: last(&name),
                name,
                kind: "simple",
                description: format!("alarm: {}", s.policy.alarm().describe()),
                alarm_state: Some(s.policy.alarm().state()),
            });
        }
        out.extend(self.predictive_status());
        out
    }

    /// Whether an instance is warming up at `now`: pending, or in service for less than the
    /// warm-up, unless the group started with it ([`Instance::initial`]). Warming instances'
    /// instance metrics (CPU) are left out of policy metrics, and they block scale-in.
    pub fn is_warming(&self, group: &AutoScalingGroup, id: &InstanceId, now: Time) -> bool {
        group
            .instances()
            .find(|i| i.id == *id)
            .is_some_and(|i| is_warming(i, now, self.warmup))
    }

    /// When the next policy evaluation is due, so a driver can sleep until then.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.target_tracking
            .iter()
            .map(|s| s.next_eval)
            .chain(self.step.iter().map(|s| s.next_eval))
            .chain(self.simple.iter().map(|s| s.next_eval))
            .min()
    }

    /// Runs due scheduled actions (when `wall` is given) and due policy evaluations, applies
    /// the combined result to `group`, and returns the changes made.
    pub fn tick(
        &mut self,
        now: Time,
        wall: Option<Timestamp>,
        group: &mut AutoScalingGroup,
        metrics: &dyn MetricSource,
    ) -> Vec<ScalingDecision> {
        let mut decisions = Vec::new();
        if let Some(wall) = wall {
            self.run_schedules(now, wall, group, &mut decisions);
            self.run_predictive(now, wall, group, metrics, &mut decisions);
        }
        self.run_policies(now, group, metrics, &mut decisions);
        decisions
    }

    fn run_schedules(
        &mut self,
        now: Time,
        wall: Timestamp,
        group: &mut AutoScalingGroup,
        decisions: &mut Vec<ScalingDecision>,
    ) {
        let Some(last) = self.last_wall.replace(wall) else {
            // First tick: only runs after now count (AWS runs nothing retroactively).
            for a in &mut self.scheduled {
                a.next_run = a.spec.next_run_after(wall);
            }
            return;
        };
        if wall < last {
            return; // the wall clock stepped back: wait for it to catch up
        }
        let suspended = group.is_suspended(ScalingProcess::ScheduledActions);
        for a in &mut self.scheduled {
            let Some(due) = a.next_run.filter(|t| *t <= wall) else {
                continue;
            };
            a.next_run = a.spec.next_run_after(wall);
            if suspended {
                continue; // actions due while suspended are skipped
            }
            let from = group.desired_capacity();
            let cause = format!(
                "scheduled action {} (due {due}): {}",
                a.spec.name,
                a.spec.describe()
            );
            if group
                .update_capacity(
                    now,
                    a.spec.min_size,
                    a.spec.max_size,
                    a.spec.desired_capacity,
                    cause.clone(),
                )
                .is_ok()
            {
                let to = group.desired_capacity();
                if to != from {
                    decisions.push(ScalingDecision { from, to, cause });
                }
            }
        }
    }

    fn run_policies(
        &mut self,
        now: Time,
        group: &mut AutoScalingGroup,
        metrics: &dyn MetricSource,
        decisions: &mut Vec<ScalingDecision>,
    ) {
        let settled = group.is_settled();
        for s in &mut self.simple {
            s.policy.tick(now, settled);
        }
        let due = |next: Time| now >= next;
        if !self.target_tracking.iter().any(|s| due(s.next_eval))
            && !self.step.iter().any(|s| due(s.next_eval))
            && !self.simple.iter().any(|s| due(s.next_eval))
        {
            return;
        }
        let fleet = Measured::of(group, now, self.warmup);
        let warming = fleet.warming;
        let desired = group.desired_capacity();
        let mut proposals: Vec<Proposal> = Vec::new();
        let mut simple_sources: Vec<(usize, usize)> = Vec::new();
        let mut tt_voters = 0;
        let mut last_values = Vec::new();
        // A step or simple policy's alarm metric over its period, as CloudWatch evaluates it.
        let alarm_value = |a: &crate::alarm::AlarmSpec, period| {
            metrics.group_metric(&MetricQuery {
                metric: a.metric,
                statistic: a.statistic,
                period,
                end: now,
                instances: fleet.for_metric(a.metric),
            })
        };

        for s in &mut self.target_tracking {
            if !due(s.next_eval) {
                continue;
            }
            s.next_eval = next_eval(s.next_eval, s.period, now);
            let spec = s.policy.spec();
            let measured = fleet.for_metric(spec.metric);
            let value = metrics.group_metric(&MetricQuery {
                metric: spec.metric,
                statistic: spec.statistic,
                period: s.period,
                end: now,
                instances: measured,
            });
            let measured_n = u32::try_from(measured.len()).unwrap_or(u32::MAX);
            last_values.push((spec.name.clone(), value));
            if !spec.disable_scale_in {
                tt_voters += 1;
            }
            if let Some(p) = s
                .policy
                .evaluate(now, value, measured_n, desired, warming > 0)
            {
                proposals.push(p);
            }
        }
        for s in &mut self.step {
            if !due(s.next_eval) {
                continue;
            }
            s.next_eval = next_eval(s.next_eval, s.period, now);
            let value = alarm_value(&s.policy.spec().alarm, s.period);
            last_values.push((s.policy.spec().name.clone(), value));
            if let Some(p) = s.policy.evaluate(value, desired, warming) {
                proposals.push(p);
            }
        }
        for (i, s) in self.simple.iter_mut().enumerate() {
            if !due(s.next_eval) {
                continue;
            }
            s.next_eval = next_eval(s.next_eval, s.period, now);
            let value = alarm_value(&s.policy.spec().alarm, s.period);
            last_values.push((s.policy.spec().name.clone(), value));
            if let Some(p) = s.policy.evaluate(value, desired) {
                simple_sources.push((i, proposals.len()));
                proposals.push(p);
            }
        }
        for (name, v) in last_values {
            match self.last_values.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = v,
                None => self.last_values.push((name, v)),
            }
        }
        if group.is_suspended(ScalingProcess::AlarmNotification) {
            return; // alarms keep their state; policies are not invoked
        }
        let Some(chosen) = combine(desired, &proposals, tt_voters) else {
            return;
        };
        let spec = group.spec();
        // Predictive policies hold capacity up: no scale-in below their forecast.
        let floor = self.predictive_floor.unwrap_or(0).min(desired);
        let to = chosen
            .capacity
            .max(floor)
            .clamp(spec.min_size, spec.max_size);
        if to == desired {
            return;
        }
        let cause = format!("{}; desired {desired} → {to}", chosen.cause);
        if group.scale_to(now, to, cause.clone()).is_ok() {
            // A simple policy whose proposal was executed waits for its activity and cooldown.
            for (i, p) in simple_sources {
                if proposals[p].cause == chosen.cause {
                    self.simple[i].policy.executed();
                }
            }
            decisions.push(ScalingDecision {
                from: desired,
                to,
                cause,
            });
        }
    }
}

/// The next evaluation time after `now`, on the policy's period grid (skipping missed ones).
fn next_eval(prev: Time, period: Duration, now: Time) -> Time {
    let mut next = prev + period;
    if next <= now {
        next = now + period;
    }
    next
}
