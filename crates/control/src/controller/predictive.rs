//! The controller's side of predictive scaling: feed each predictive policy the group's load
//! once a second (its history), apply its forecast ahead of each hour, hold dynamic
//! scale-in above it, and hand finished hours to the driver to keep.

use jiff::Timestamp;

use super::{MetricQuery, MetricSource, PolicyStatus, ScalingController, ScalingDecision};
use crate::group::AutoScalingGroup;
use crate::metrics::{Metric, Statistic};
use crate::policy::predictive::LoadHour;
use crate::policy::{fmt_value, PredictivePolicy};
use crate::time::Time;

impl ScalingController {
    /// Records the second's load, then applies the forecast in force (forecast_and_scale).
    pub(super) fn run_predictive(
        &mut self,
        now: Time,
        wall: Timestamp,
        group: &mut AutoScalingGroup,
        metrics: &dyn MetricSource,
        decisions: &mut Vec<ScalingDecision>,
    ) {
        self.predictive_floor = None;
        if self.predictive.is_empty() {
            return;
        }
        let second = wall.as_second();
        let fleet = super::Measured::of(group, now, self.warmup);
        let serving = fleet.serving();
        for p in &mut self.predictive {
            let per_instance = metrics.group_metric(&MetricQuery {
                metric: p.spec().metric,
                statistic: Statistic::Average,
                period: std::time::Duration::from_secs(1),
                end: now,
                instances: serving,
            });
            // The group's total: the per-instance average times the instances serving.
            let load = per_instance.map(|v| v * serving.len() as f64);
            if let Some(done) = p.record(second, load) {
                self.finished_hours.push((p.spec().metric, done));
            }
        }
        let max = group.spec().max_size;
        let wanted = self
            .predictive
            .iter()
            .filter_map(|p| Some((p, p.wanted(second, max)?)))
            .max_by_key(|(_, (_, cap, _))| *cap);
        let Some((policy, (_, cap, new_max))) = wanted else {
            return;
        };
        self.predictive_floor = Some(cap);
        if let Some(m) = new_max.filter(|m| *m > max) {
            let cause = format!(
                "policy {} (predictive, increase_max_capacity): the forecast needs {cap} \
                 instance(s), above max_size {max}",
                policy.spec().name
            );
            if let Err(e) = group.update_capacity(now, None, Some(m), None, cause) {
                tracing::warn!(error = %e, "predictive scaling could not raise max_size");
            }
        }
        let desired = group.desired_capacity();
        let Some(p) = policy.proposal(second, desired, group.spec().max_size) else {
            return;
        };
        let to = p.capacity.max(group.spec().min_size);
        let cause = format!("{}; desired {desired} → {to}", p.cause);
        if group.scale_to(now, to, cause.clone()).is_ok() {
            decisions.push(ScalingDecision {
                from: desired,
                to,
                cause,
            });
        }
    }

    /// The predictive policies (their forecasts and history), for the API and the simulator.
    pub fn predictive_policies(&self) -> impl Iterator<Item = &PredictivePolicy> + '_ {
        self.predictive.iter()
    }

    /// Hours of load history completed since the last call, by metric: the driver makes them
    /// durable so a restart does not forget what predictive scaling learned.
    pub fn take_finished_hours(&mut self) -> Vec<(Metric, LoadHour)> {
        std::mem::take(&mut self.finished_hours)
    }

    /// Takes back the hours of `metric` an earlier run kept.
    pub fn restore_history(&mut self, metric: Metric, hours: &[LoadHour]) {
        for p in self
            .predictive
            .iter_mut()
            .filter(|p| p.spec().metric == metric)
        {
            p.history.restore(hours.iter().copied());
        }
    }

    /// Keeps what `old` learned when policies are replaced (a reload): the history of each
    /// metric goes to the new policies of that metric.
    pub fn adopt_history(&mut self, old: &ScalingController) {
        for p in &mut self.predictive {
            if let Some(o) = old
                .predictive
                .iter()
                .find(|o| o.spec().metric == p.spec().metric)
            {
                p.history = o.history.clone();
            }
        }
    }

    pub(super) fn predictive_status(&self) -> Vec<PolicyStatus> {
        self.predictive
            .iter()
            .map(|p| {
                let s = p.spec();
                PolicyStatus {
                    name: s.name.clone(),
                    kind: "predictive",
                    description: format!(
                        "forecasts {} 48 h ahead from {} h of history ({}, {} per instance, \
                         {} s ahead, {})",
                        s.metric,
                        p.history_hours(),
                        s.mode.as_str(),
                        fmt_value(s.target_value),
                        s.scheduling_buffer_time.as_secs(),
                        s.max_capacity_breach_behavior.as_str()
                    ),
                    alarm_state: None,
                    last_value: p.forecast().first().map(|f| f.load),
                }
            })
            .collect()
    }
}
