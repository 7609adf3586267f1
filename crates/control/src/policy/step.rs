//! Step scaling (AWS §6.3): the size of the alarm breach picks the adjustment.

use super::{apply_adjustment, fmt_value, AdjustmentType, Proposal};
use crate::alarm::{Alarm, AlarmSpec, AlarmState};

/// One step: applies when the metric minus the alarm threshold lies between the bounds.
/// Above the threshold the lower bound is inclusive and the upper exclusive; below it the
/// reverse, as in AWS.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepAdjustment {
    /// Lower bound relative to the threshold; `None` = −∞.
    pub lower: Option<f64>,
    /// Upper bound relative to the threshold; `None` = +∞.
    pub upper: Option<f64>,
    /// The adjustment (interpreted by the policy's adjustment type).
    pub adjustment: i64,
}

impl StepAdjustment {
    fn contains(&self, diff: f64) -> bool {
        if diff >= 0.0 {
            self.lower.is_none_or(|l| diff >= l) && self.upper.is_none_or(|u| diff < u)
        } else {
            self.lower.is_none_or(|l| diff > l) && self.upper.is_none_or(|u| diff <= u)
        }
    }
}

/// A step policy's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepSpec {
    /// Policy name, used in causes.
    pub name: String,
    /// How adjustments are interpreted.
    pub adjustment_type: AdjustmentType,
    /// The alarm that invokes the policy.
    pub alarm: AlarmSpec,
    /// Non-overlapping ranges relative to the threshold.
    pub steps: Vec<StepAdjustment>,
    /// Smallest change for percent adjustments.
    pub min_adjustment_magnitude: Option<u32>,
}

/// A step scaling policy and its alarm.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StepPolicy {
    spec: StepSpec,
    alarm: Alarm,
}

impl StepPolicy {
    /// A policy whose alarm starts in INSUFFICIENT_DATA.
    pub fn new(spec: StepSpec) -> Self {
        let alarm = Alarm::new(spec.alarm.clone());
        StepPolicy { spec, alarm }
    }

    /// The policy's settings.
    pub fn spec(&self) -> &StepSpec {
        &self.spec
    }

    /// Its alarm, for status output.
    pub fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    /// Feeds the alarm one period and, while it is in ALARM (re-invoked every period, as AWS
    /// does), proposes the step's adjustment.
    ///
    /// While instances warm up (`warming` of them), scale-out is computed from the capacity
    /// without them, so a breach in the same step does not add instances twice but a higher
    /// step adds the difference; scale-in waits until warm-up ends.
    pub fn evaluate(&mut self, value: Option<f64>, desired: u32, warming: u32) -> Option<Proposal> {
        if self.alarm.record_period(value) != AlarmState::Alarm {
            return None;
        }
        let v = self.alarm.latest_value()?;
        let diff = v - self.spec.alarm.threshold;
        let step = self.spec.steps.iter().find(|s| s.contains(diff))?;
        let kind = self.spec.adjustment_type;
        let mam = self.spec.min_adjustment_magnitude;
        let grows = match kind {
            AdjustmentType::ExactCapacity => step.adjustment > i64::from(desired),
            _ => step.adjustment > 0,
        };
        let capacity = if grows {
            let base = desired.saturating_sub(warming);
            apply_adjustment(base, kind, step.adjustment, mam)
        } else {
            if warming > 0 {
                return None;
            }
            apply_adjustment(desired, kind, step.adjustment, mam)
        };
        if capacity == desired || (grows && capacity < desired) {
            return None;
        }
        let a = &self.spec.alarm;
        Some(Proposal {
            capacity,
            cause: format!(
                "policy {}: alarm {} {} {} {} {} in {} of {} periods, step adjustment {:+}",
                self.spec.name,
                a.metric,
                fmt_value(v),
                a.comparison.symbol(),
                fmt_value(a.threshold),
                self.alarm.state(),
                self.alarm.breaching_count(),
                a.evaluation_periods,
                step.adjustment,
            ),
            target_tracking: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alarm::{Comparison, MissingData};

    fn alarm(cmp: Comparison) -> AlarmSpec {
        AlarmSpec {
            metric: crate::metrics::Metric::CpuUtilization,
            statistic: crate::metrics::Statistic::Average,
            period: Duration::from_secs(10),
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            comparison: cmp,
            threshold: 50.0,
            treat_missing_data: MissingData::Missing,
        }
    }

    fn s(lower: Option<f64>, upper: Option<f64>, adjustment: i64) -> StepAdjustment {
        StepAdjustment {
            lower,
            upper,
            adjustment,
        }
    }

    /// The AWS documentation example (§6.3): 10 → 11 → 14 → 13 → 10.
    #[test]
    fn aws_percent_example() {
        let mut out = StepPolicy::new(StepSpec {
            name: "out".into(),
            adjustment_type: AdjustmentType::PercentChangeInCapacity,
            alarm: alarm(Comparison::GreaterThanOrEqual),
            steps: vec![
                s(Some(0.0), Some(10.0), 0),
                s(Some(10.0), Some(20.0), 10),
                s(Some(20.0), None, 30),
            ],
            min_adjustment_magnitude: None,
        });
        let mut inp = StepPolicy::new(StepSpec {
            name: "in".into(),
            adjustment_type: AdjustmentType::PercentChangeInCapacity,
            alarm: alarm(Comparison::LessThanOrEqual),
            steps: vec![
                s(Some(-10.0), Some(0.0), 0),
                s(Some(-20.0), Some(-10.0), -10),
                s(None, Some(-20.0), -30),
            ],
            min_adjustment_magnitude: None,
        });
        let p = out.evaluate(Some(60.0), 10, 0).unwrap();
        assert_eq!(p.capacity, 11);
        assert!(p
            .cause
            .starts_with("policy out: alarm cpu_utilization 60 >= 50 ALARM"));
        assert_eq!(out.evaluate(Some(70.0), 11, 0).unwrap().capacity, 14);
        assert_eq!(inp.evaluate(Some(40.0), 14, 0).unwrap().capacity, 13);
        assert_eq!(inp.evaluate(Some(30.0), 13, 0).unwrap().capacity, 10);
        // Boundaries: 50 is in [0,10) → 0 change; 40 is in (-20,-10] → -10 %.
        assert_eq!(out.evaluate(Some(50.0), 10, 0), None);
    }

    #[test]
    fn warm_up_prevents_double_counting_and_blocks_scale_in() {
        let mut out = StepPolicy::new(StepSpec {
            name: "out".into(),
            adjustment_type: AdjustmentType::ChangeInCapacity,
            alarm: alarm(Comparison::GreaterThan),
            steps: vec![s(Some(0.0), Some(20.0), 1), s(Some(20.0), None, 3)],
            min_adjustment_magnitude: None,
        });
        assert_eq!(out.evaluate(Some(60.0), 4, 0).unwrap().capacity, 5);
        // Same step while the new instance warms: base 4 + 1 = 5 = desired → nothing.
        assert_eq!(out.evaluate(Some(60.0), 5, 1), None);
        // Higher step: 4 + 3 = 7, adds the difference.
        assert_eq!(out.evaluate(Some(80.0), 5, 1).unwrap().capacity, 7);
        let mut inp = StepPolicy::new(StepSpec {
            name: "in".into(),
            adjustment_type: AdjustmentType::ChangeInCapacity,
            alarm: alarm(Comparison::LessThan),
            steps: vec![s(None, Some(0.0), -1)],
            min_adjustment_magnitude: None,
        });
        assert_eq!(inp.evaluate(Some(10.0), 7, 2), None);
        assert_eq!(inp.evaluate(Some(10.0), 7, 0).unwrap().capacity, 6);
    }
}
