//! Simple scaling (AWS §6.5): one fixed adjustment per alarm, then a cooldown.

use std::time::Duration;

use super::{apply_adjustment, fmt_value, AdjustmentType, Proposal};
use crate::alarm::{Alarm, AlarmSpec, AlarmState};
use crate::time::Time;

/// A simple policy's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimpleSpec {
    /// Policy name, used in causes.
    pub name: String,
    /// How `adjustment` is interpreted.
    pub adjustment_type: AdjustmentType,
    /// The alarm that invokes the policy.
    pub alarm: AlarmSpec,
    /// The change (or the new capacity for exact capacity).
    pub adjustment: i64,
    /// Overrides the group's default cooldown.
    pub cooldown: Option<Duration>,
    /// Smallest change for percent adjustments.
    pub min_adjustment_magnitude: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// Ready to act on the alarm.
    Idle,
    /// Its activity is running; the cooldown starts when it completes.
    AwaitingActivity,
    /// Ignoring alarms until then.
    CoolingUntil(Time),
}

/// A simple scaling policy, its alarm and cooldown.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SimplePolicy {
    spec: SimpleSpec,
    alarm: Alarm,
    cooldown: Duration,
    phase: Phase,
}

impl SimplePolicy {
    /// A policy using `default_cooldown` unless the spec overrides it.
    pub fn new(spec: SimpleSpec, default_cooldown: Duration) -> Self {
        let alarm = Alarm::new(spec.alarm.clone());
        let cooldown = spec.cooldown.unwrap_or(default_cooldown);
        SimplePolicy {
            spec,
            alarm,
            cooldown,
            phase: Phase::Idle,
        }
    }

    /// The policy's settings.
    pub fn spec(&self) -> &SimpleSpec {
        &self.spec
    }

    /// Its alarm, for status output.
    pub fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    /// When the cooldown ends, while one runs.
    pub fn cooldown_until(&self) -> Option<Time> {
        match self.phase {
            Phase::CoolingUntil(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the policy is waiting for its activity or cooldown.
    pub fn is_blocked(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// Advances the cooldown: it starts once the group has `settled` (the activity's last
    /// instance finished launching or terminating) and ends `cooldown` later.
    pub fn tick(&mut self, now: Time, settled: bool) {
        match self.phase {
            Phase::AwaitingActivity if settled => {
                self.phase = Phase::CoolingUntil(now + self.cooldown);
            }
            Phase::CoolingUntil(t) if now >= t => self.phase = Phase::Idle,
            _ => {}
        }
    }

    /// Feeds the alarm one period; in ALARM and not cooling down, proposes the adjustment.
    pub fn evaluate(&mut self, value: Option<f64>, desired: u32) -> Option<Proposal> {
        if self.alarm.record_period(value) != AlarmState::Alarm || self.phase != Phase::Idle {
            return None;
        }
        let capacity = apply_adjustment(
            desired,
            self.spec.adjustment_type,
            self.spec.adjustment,
            self.spec.min_adjustment_magnitude,
        );
        if capacity == desired {
            return None;
        }
        let a = &self.spec.alarm;
        Some(Proposal {
            capacity,
            cause: format!(
                "policy {}: alarm {} {} {} {} ALARM in {} of {} periods, adjustment {:+}",
                self.spec.name,
                a.metric,
                self.alarm.latest_value().map_or("-".into(), fmt_value),
                a.comparison.symbol(),
                fmt_value(a.threshold),
                self.alarm.breaching_count(),
                a.evaluation_periods,
                self.spec.adjustment,
            ),
            target_tracking: false,
        })
    }

    /// The controller executed this policy's proposal: wait for the activity, then cool down.
    pub fn executed(&mut self) {
        self.phase = Phase::AwaitingActivity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{Comparison, MissingData};

    #[test]
    fn cooldown_after_activity_completes() {
        let spec = SimpleSpec {
            name: "add-two".into(),
            adjustment_type: AdjustmentType::ChangeInCapacity,
            alarm: AlarmSpec {
                metric: crate::metrics::Metric::CpuUtilization,
                statistic: crate::metrics::Statistic::Average,
                period: Duration::from_secs(10),
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                comparison: Comparison::GreaterThan,
                threshold: 70.0,
                treat_missing_data: MissingData::Missing,
            },
            adjustment: 2,
            cooldown: None,
            min_adjustment_magnitude: None,
        };
        let t = |s: u64| Time::from_millis(s * 1000);
        let mut p = SimplePolicy::new(spec, Duration::from_secs(60));
        let got = p.evaluate(Some(90.0), 2).unwrap();
        assert_eq!(got.capacity, 4);
        p.executed();
        // Activity still running: ignored, and the cooldown has not started.
        p.tick(t(10), false);
        assert_eq!(p.evaluate(Some(90.0), 4), None);
        assert_eq!(p.cooldown_until(), None);
        // Instances up at t=20: cooldown to t=80.
        p.tick(t(20), true);
        assert_eq!(p.cooldown_until(), Some(t(80)));
        p.tick(t(79), true);
        assert_eq!(p.evaluate(Some(90.0), 4), None);
        p.tick(t(80), true);
        assert!(!p.is_blocked());
        assert_eq!(p.evaluate(Some(90.0), 4).unwrap().capacity, 6);
    }
}
