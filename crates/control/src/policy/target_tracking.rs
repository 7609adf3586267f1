//! Target tracking (AWS §6.2): keep a metric near a target value, like a thermostat.

use std::collections::VecDeque;
use std::time::Duration;

use super::{fmt_value, Proposal};
use crate::metrics::{Metric, Statistic};
use crate::time::Time;

/// The share of the target a scale-in may bring the metric up to.
const SCALE_IN_HEADROOM: f64 = 0.9;

/// A target tracking policy's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetTrackingSpec {
    /// Policy name, used in causes.
    pub name: String,
    /// The metric tracked; must fall as capacity rises (e.g. `request_rate_per_target`).
    pub metric: Metric,
    /// Statistic over each period (`average`, or `p90` for response time).
    pub statistic: Statistic,
    /// Value to keep the metric at; greater than zero.
    pub target_value: f64,
    /// How often the policy evaluates, and the period its metric is aggregated over.
    pub period: Duration,
    /// Scale in only to the highest recommendation seen in this window, so a dip does not
    /// remove capacity the next peak needs.
    pub scale_in_stabilization: Duration,
    /// Only ever scale out.
    pub disable_scale_in: bool,
}

/// A target tracking policy with its recommendation history.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TargetTrackingPolicy {
    spec: TargetTrackingSpec,
    recommendations: VecDeque<(Time, u32)>,
    above: u32,
    below: u32,
}

impl TargetTrackingPolicy {
    /// A policy with no history.
    pub fn new(spec: TargetTrackingSpec) -> Self {
        TargetTrackingPolicy {
            spec,
            recommendations: VecDeque::new(),
            above: 0,
            below: 0,
        }
    }

    /// The policy's settings.
    pub fn spec(&self) -> &TargetTrackingSpec {
        &self.spec
    }

    /// The highest recommendation inside the stabilization window: scale-in may not go below
    /// it. `None` before the first evaluation.
    pub fn scale_in_floor(&self, now: Time) -> Option<u32> {
        self.recommendations
            .iter()
            .filter(|(t, _)| now.saturating_since(*t) <= self.spec.scale_in_stabilization)
            .map(|(_, c)| *c)
            .max()
    }

    /// Evaluates one period.
    ///
    /// `value` is the metric over the period aggregated over the `measured` instances that are
    /// in service and past warm-up (`None`: no data, so no scaling, as INSUFFICIENT_DATA in AWS).
    /// The recommendation is ceil(measured × value / target): rounding up adds capacity when
    /// scaling out and removes only whole instances when scaling in. `scale_in_blocked` is set
    /// while any instance warms up. Returns a wish to scale out (any time) or in (after the
    /// stabilization window), else `None`.
    pub fn evaluate(
        &mut self,
        now: Time,
        value: Option<f64>,
        measured: u32,
        desired: u32,
        scale_in_blocked: bool,
    ) -> Option<Proposal> {
        let Some(value) = value.filter(|v| v.is_finite() && *v >= 0.0) else {
            self.above = 0;
            self.below = 0;
            return None;
        };
        let target = self.spec.target_value;
        let capacity_for = |target: f64| {
            if measured == 0 {
                return if value > 0.0 { desired.max(1) } else { 0 };
            }
            let raw = f64::from(measured) * value / target;
            // Float noise (e.g. 2.0000000001) must not add an instance.
            let c = (raw - 1e-9).ceil().max(0.0);
            if c >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                c as u32
            }
        };
        let rec_out = capacity_for(target);
        // Scale-in is conservative (as AWS's is, and like Kubernetes' 10 % tolerance): it
        // goes only as far as leaves the metric at most 90 % of the target, so a load right at
        // the boundary (4 instances at 101, 5 at 80) settles instead of flapping.
        let rec = capacity_for(target * SCALE_IN_HEADROOM).max(rec_out);
        if value > target {
            self.above += 1;
            self.below = 0;
        } else if value < target {
            self.below += 1;
            self.above = 0;
        } else {
            self.above = 0;
            self.below = 0;
        }
        self.recommendations.push_back((now, rec));
        let window = self.spec.scale_in_stabilization;
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.saturating_since(*t) > window)
        {
            self.recommendations.pop_front();
        }
        let name = &self.spec.name;
        // "target_response_time p90", but plain "cpu_utilization" for the usual average.
        let metric = match self.spec.statistic {
            Statistic::Average => self.spec.metric.to_string(),
            stat => format!("{} {stat}", self.spec.metric),
        };
        let v = fmt_value(value);
        let t = fmt_value(target);
        // A thermostat: out only while the metric is above the target, in only while below.
        // (More instances in service than desired — scale-in suspended or protected — must not
        // read as a reason to scale out.)
        if rec_out > desired && value > target {
            let n = self.above.max(1);
            let periods = if n == 1 { "period" } else { "periods" };
            return Some(Proposal {
                capacity: rec_out,
                cause: format!("policy {name}: {metric} {v} > target {t} for {n} {periods}"),
                target_tracking: true,
            });
        }
        if rec < desired && value < target && !self.spec.disable_scale_in && !scale_in_blocked {
            let floor = self.scale_in_floor(now).unwrap_or(rec);
            if floor < desired {
                let n = self.below.max(1);
                let periods = if n == 1 { "period" } else { "periods" };
                return Some(Proposal {
                    capacity: floor,
                    cause: format!(
                        "policy {name}: {metric} {v} < target {t} for {n} {periods} (highest \
                         recommendation in the last {}s: {floor})",
                        window.as_secs()
                    ),
                    target_tracking: true,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(stab: u64) -> TargetTrackingPolicy {
        TargetTrackingPolicy::new(TargetTrackingSpec {
            name: "keep-rps".into(),
            metric: Metric::RequestRatePerTarget,
            statistic: Statistic::Average,
            target_value: 100.0,
            period: Duration::from_secs(10),
            scale_in_stabilization: Duration::from_secs(stab),
            disable_scale_in: false,
        })
    }

    fn t(s: u64) -> Time {
        Time::from_millis(s * 1000)
    }

    #[test]
    fn proportional_round_up_out_round_down_in() {
        let mut p = policy(0);
        // 2 instances at 212.4 each: 4.248 → 5.
        let out = p.evaluate(t(10), Some(212.4), 2, 2, false).unwrap();
        assert_eq!(out.capacity, 5);
        assert_eq!(
            out.cause,
            "policy keep-rps: request_rate_per_target 212.4 > target 100 for 1 period"
        );
        // 10 instances at 85: 9 would run at 94.4, above 90 % of the target: stay (the
        // conservative scale-in that keeps a load at the boundary from flapping).
        let mut p = policy(0);
        assert_eq!(p.evaluate(t(5), Some(85.0), 10, 10, false), None);
        // 10 instances at 70: down to ceil(700 / 90) = 8, which runs at 87.5.
        assert_eq!(
            p.evaluate(t(10), Some(70.0), 10, 10, false)
                .unwrap()
                .capacity,
            8
        );
        // Exactly on target: nothing.
        assert_eq!(p.evaluate(t(20), Some(100.0), 10, 10, false), None);
        // No data: nothing (INSUFFICIENT_DATA).
        assert_eq!(p.evaluate(t(30), None, 10, 10, false), None);
        // Real zero: to zero (clamped to min by the controller).
        assert_eq!(
            p.evaluate(t(40), Some(0.0), 3, 3, false).unwrap().capacity,
            0
        );
    }

    #[test]
    fn stabilization_window_holds_the_highest_recommendation() {
        let mut p = policy(60);
        assert_eq!(
            p.evaluate(t(0), Some(300.0), 2, 2, false).unwrap().capacity,
            6
        );
        // Load drops; the 6 from t=0 is within 60 s, so no scale-in.
        assert_eq!(p.evaluate(t(10), Some(50.0), 6, 6, false), None);
        assert_eq!(p.evaluate(t(50), Some(50.0), 6, 6, false), None);
        // t=70: the 6 fell out of the window; highest since is 4 (6 × 50 / 90, rounded up).
        let d = p.evaluate(t(70), Some(50.0), 6, 6, false).unwrap();
        assert_eq!(d.capacity, 4);
        assert_eq!(p.scale_in_floor(t(70)), Some(4));
    }

    #[test]
    fn warm_up_blocks_scale_in_and_disable_scale_in() {
        let mut p = policy(0);
        assert_eq!(p.evaluate(t(10), Some(10.0), 4, 4, true), None);
        assert_eq!(
            p.evaluate(t(20), Some(10.0), 4, 4, false).unwrap().capacity,
            1
        );
        let mut p = policy(0);
        p.spec.disable_scale_in = true;
        assert_eq!(p.evaluate(t(10), Some(10.0), 4, 4, false), None);
        assert_eq!(
            p.evaluate(t(20), Some(300.0), 4, 4, false)
                .unwrap()
                .capacity,
            12
        );
    }

    #[test]
    fn warming_instances_do_not_double_scale() {
        let mut p = policy(0);
        // 2 serving at 200 → 4; 2 more warming (not measured); still 200 on the 2 → 4 = desired.
        assert_eq!(
            p.evaluate(t(10), Some(200.0), 2, 2, false)
                .unwrap()
                .capacity,
            4
        );
        assert_eq!(p.evaluate(t(20), Some(200.0), 2, 4, true), None);
    }
}
