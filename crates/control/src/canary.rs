//! Automatic canary rollback: an alarm on the canary target group's metric, evaluated once
//! per period while the canary gets traffic; when it fires, the canary's weight goes to 0.
//!
//! Like the other machines it reads no clock and no metric itself: [`CanaryRollback::tick`]
//! takes `now` and a reader for the period's value, and returns the rollback to carry out.

use std::time::Duration;

use crate::alarm::{Alarm, AlarmSpec, AlarmState};
use crate::time::Time;

/// What a rollback watches.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RollbackSpec {
    /// The canary target group whose weight is set to 0 when the alarm fires.
    pub target_group: String,
    /// The alarm on that group's metric.
    pub alarm: AlarmSpec,
}

/// Where a rollback stands, for the API.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RollbackState {
    /// The canary gets no traffic (weight 0), so there is nothing to judge.
    Idle,
    /// The canary gets traffic and its alarm is evaluated every period.
    Watching,
    /// The alarm fired at `at`; the canary's weight was set to 0 for `cause`.
    RolledBack {
        /// When the alarm fired.
        at: Time,
        /// Why, in words (metric, value, threshold).
        cause: String,
    },
}

/// The decision to take the canary out: set `target_group`'s weight to 0.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rollback {
    /// The canary target group.
    pub target_group: String,
    /// Why, for the log line and the API.
    pub cause: String,
}

/// One forward action's canary rollback.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CanaryRollback {
    spec: RollbackSpec,
    alarm: Alarm,
    state: RollbackState,
    next_eval: Time,
}

impl CanaryRollback {
    /// A rollback that starts watching when [`set_canary_weight`](Self::set_canary_weight)
    /// says the canary gets traffic.
    pub fn new(spec: RollbackSpec) -> Self {
        CanaryRollback {
            alarm: Alarm::new(spec.alarm.clone()),
            spec,
            state: RollbackState::Idle,
            next_eval: Time::from_millis(0),
        }
    }

    /// The settings.
    pub fn spec(&self) -> &RollbackSpec {
        &self.spec
    }

    /// Where it stands.
    pub fn state(&self) -> &RollbackState {
        &self.state
    }

    /// The alarm's state and one-line description, for the API.
    pub fn alarm(&self) -> (AlarmState, String) {
        (self.alarm.state(), self.alarm.describe())
    }

    /// The canary's weight in force changed (config, operator or this rollback). A weight
    /// above 0 (re)arms the watch with a fresh alarm, first evaluated one period after `now`,
    /// so an operator who sends traffic to the canary again after a rollback gets a new
    /// verdict; 0 stops it (a rollback keeps its record until the canary is re-armed).
    pub fn set_canary_weight(&mut self, weight: u32, now: Time) {
        let gets_traffic = weight > 0;
        match (&self.state, gets_traffic) {
            (RollbackState::Watching, true) => {}
            (_, true) => {
                self.alarm = Alarm::new(self.spec.alarm.clone());
                self.state = RollbackState::Watching;
                self.next_eval = now + self.period();
            }
            (RollbackState::Watching, false) => self.state = RollbackState::Idle,
            (_, false) => {}
        }
    }

    /// When the next evaluation is due (`None` while not watching).
    pub fn poll_timeout(&self) -> Option<Time> {
        (self.state == RollbackState::Watching).then_some(self.next_eval)
    }

    /// Evaluates every period that ended by `now`, reading each period's value with `read`
    /// (the period's end; `None` = no data). Returns the rollback when the alarm enters ALARM.
    pub fn tick(
        &mut self,
        now: Time,
        mut read: impl FnMut(Time) -> Option<f64>,
    ) -> Option<Rollback> {
        while self.state == RollbackState::Watching && now >= self.next_eval {
            let end = self.next_eval;
            self.next_eval = end + self.period();
            if self.alarm.record_period(read(end)) != AlarmState::Alarm {
                continue;
            }
            let value = self
                .alarm
                .latest_value()
                .map_or_else(|| "no data".to_string(), crate::policy::fmt_value);
            let cause = format!(
                "canary rollback of target group {}: {} was {value} (alarm: {}); weight set to 0",
                self.spec.target_group,
                self.spec.alarm.metric,
                self.alarm.describe()
            );
            self.state = RollbackState::RolledBack {
                at: now,
                cause: cause.clone(),
            };
            return Some(Rollback {
                target_group: self.spec.target_group.clone(),
                cause,
            });
        }
        None
    }

    fn period(&self) -> Duration {
        self.spec.alarm.period.max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{Comparison, MissingData};

    fn spec(evaluation_periods: u32, datapoints_to_alarm: u32) -> RollbackSpec {
        RollbackSpec {
            target_group: "canary".into(),
            alarm: AlarmSpec {
                metric: crate::metrics::Metric::HttpTarget5xxRate,
                statistic: crate::metrics::Statistic::Average,
                period: Duration::from_secs(10),
                evaluation_periods,
                datapoints_to_alarm,
                comparison: Comparison::GreaterThanOrEqual,
                threshold: 5.0,
                treat_missing_data: MissingData::Missing,
            },
        }
    }

    fn t(s: u64) -> Time {
        Time::from_millis(s * 1000)
    }

    #[test]
    fn rolls_back_when_the_alarm_fires_and_only_while_the_canary_gets_traffic() {
        let mut r = CanaryRollback::new(spec(2, 2));
        // Weight 0: nothing to watch, however bad the numbers.
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.tick(t(100), |_| Some(100.0)), None);
        r.set_canary_weight(10, t(0));
        assert_eq!(r.poll_timeout(), Some(t(10)));
        // Healthy periods, then one bad one: 2 of 2 needed.
        let mut seen = Vec::new();
        assert_eq!(
            r.tick(t(10), |end| {
                seen.push(end);
                Some(0.0)
            }),
            None
        );
        assert_eq!(r.tick(t(20), |_| Some(50.0)), None);
        assert_eq!(r.state(), &RollbackState::Watching);
        let rb = r.tick(t(30), |_| Some(40.0)).expect("rolls back");
        assert_eq!(rb.target_group, "canary");
        assert!(
            rb.cause.contains("http_target_5xx_rate was 40"),
            "{}",
            rb.cause
        );
        assert!(matches!(r.state(), RollbackState::RolledBack { at, .. } if *at == t(30)));
        assert_eq!(seen, [t(10)]);
        // Rolled back: no more evaluations, and the weight going to 0 keeps the record.
        assert_eq!(r.poll_timeout(), None);
        r.set_canary_weight(0, t(31));
        assert!(matches!(r.state(), RollbackState::RolledBack { .. }));
        // The operator sends traffic again: a fresh alarm (INSUFFICIENT_DATA), a new verdict.
        r.set_canary_weight(5, t(40));
        assert_eq!(r.state(), &RollbackState::Watching);
        assert_eq!(r.alarm().0, AlarmState::InsufficientData);
        assert_eq!(r.tick(t(50), |_| Some(99.0)), None);
        assert!(r.tick(t(60), |_| Some(99.0)).is_some());
    }

    #[test]
    fn catches_up_on_missed_periods_and_treats_no_data_as_missing() {
        let mut r = CanaryRollback::new(spec(1, 1));
        r.set_canary_weight(1, t(0));
        // No requests at all: missing data, never a rollback.
        assert_eq!(r.tick(t(100), |_| None), None);
        assert_eq!(r.alarm().0, AlarmState::InsufficientData);
        // A late tick evaluates each period that ended, in order.
        let mut ends = Vec::new();
        let rb = r.tick(t(135), |end| {
            ends.push(end);
            (end == t(130)).then_some(6.0)
        });
        assert!(rb.is_some());
        assert_eq!(ends, [t(110), t(120), t(130)]);
        // Weight 0 while watching: idle, nothing evaluated.
        let mut r = CanaryRollback::new(spec(1, 1));
        r.set_canary_weight(1, t(0));
        r.set_canary_weight(0, t(5));
        assert_eq!(r.state(), &RollbackState::Idle);
        assert_eq!(r.tick(t(100), |_| Some(100.0)), None);
    }
}
