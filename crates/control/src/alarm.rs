//! CloudWatch-style metric alarms (AWS §8.1): M of N datapoints, four missing-data treatments,
//! states OK / ALARM / INSUFFICIENT_DATA.
//!
//! The alarm is fed one aggregated datapoint per period (`None` when the period had no data) and
//! re-evaluates its window each time. Like CloudWatch it looks at an evaluation range two periods
//! longer than N: with at least N real datapoints in the range the most recent N decide and the
//! missing-data setting is ignored; with fewer, gaps are filled according to the setting.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::metrics::{Metric, Statistic};

/// How the period's statistic is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Comparison {
    /// `>` (`GreaterThanThreshold`)
    GreaterThan,
    /// `>=` (`GreaterThanOrEqualToThreshold`)
    GreaterThanOrEqual,
    /// `<` (`LessThanThreshold`)
    LessThan,
    /// `<=` (`LessThanOrEqualToThreshold`)
    LessThanOrEqual,
}

impl Comparison {
    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::GreaterThanOrEqual => value >= threshold,
            Comparison::LessThan => value < threshold,
            Comparison::LessThanOrEqual => value <= threshold,
        }
    }

    /// The operator as written in causes, e.g. `">="`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThan => ">",
            Comparison::GreaterThanOrEqual => ">=",
            Comparison::LessThan => "<",
            Comparison::LessThanOrEqual => "<=",
        }
    }
}

/// CloudWatch `TreatMissingData`: what a period without data means.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum MissingData {
    /// Judge by the data there is; all missing ⇒ INSUFFICIENT_DATA (the default).
    #[default]
    Missing,
    /// Missing counts as within the threshold.
    NotBreaching,
    /// Missing counts as breaching.
    Breaching,
    /// Without enough data the alarm keeps its state.
    Ignore,
}

/// An alarm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AlarmState {
    /// The metric is within the threshold.
    Ok,
    /// The metric breached the threshold in M of the last N periods.
    Alarm,
    /// Just created, or no data to judge.
    InsufficientData,
}

impl AlarmState {
    /// AWS spelling, for status output.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl MissingData {
    /// The config spelling, e.g. `"not_breaching"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Missing => "missing",
            MissingData::NotBreaching => "not_breaching",
            MissingData::Breaching => "breaching",
            MissingData::Ignore => "ignore",
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alarm's settings, as `PutMetricAlarm` takes them (the metric itself is read by the
/// caller, which feeds the alarm one value per period).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlarmSpec {
    /// The metric watched.
    pub metric: Metric,
    /// The statistic of each period.
    pub statistic: Statistic,
    /// Length of one period.
    pub period: Duration,
    /// N: how many recent periods are evaluated (at least 1).
    pub evaluation_periods: u32,
    /// M: how many of them must breach (1..=N).
    pub datapoints_to_alarm: u32,
    /// How the value is compared with the threshold.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
    /// What a period without data means.
    pub treat_missing_data: MissingData,
}

/// A metric alarm: the spec, the recent datapoints and the current state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Alarm {
    spec: AlarmSpec,
    window: VecDeque<Option<f64>>,
    state: AlarmState,
}

impl Alarm {
    /// A new alarm in INSUFFICIENT_DATA, as CloudWatch creates them.
    pub fn new(mut spec: AlarmSpec) -> Self {
        spec.evaluation_periods = spec.evaluation_periods.max(1);
        spec.datapoints_to_alarm = spec.datapoints_to_alarm.clamp(1, spec.evaluation_periods);
        Alarm {
            spec,
            window: VecDeque::new(),
            state: AlarmState::InsufficientData,
        }
    }

    /// The alarm's settings.
    pub fn spec(&self) -> &AlarmSpec {
        &self.spec
    }

    /// What the alarm watches, in one line for status output, e.g. "cpu_utilization average
    /// >= 70 in 2 of 3 periods of 10s (missing data: missing)".
    pub fn describe(&self) -> String {
        let s = &self.spec;
        format!(
            "{} {} {} {} in {} of {} periods of {}s (missing data: {})",
            s.metric,
            s.statistic,
            s.comparison.symbol(),
            crate::policy::fmt_value(s.threshold),
            s.datapoints_to_alarm,
            s.evaluation_periods,
            s.period.as_secs(),
            s.treat_missing_data.as_str()
        )
    }

    /// The current state.
    pub fn state(&self) -> AlarmState {
        self.state
    }

    /// The most recent real datapoint in the evaluation range, for causes.
    pub fn latest_value(&self) -> Option<f64> {
        self.window.iter().rev().find_map(|v| *v)
    }

    /// How many of the recent real datapoints breach (for causes: "for 2 periods").
    pub fn breaching_count(&self) -> usize {
        let n = self.spec.evaluation_periods as usize;
        self.window
            .iter()
            .rev()
            .flatten()
            .take(n)
            .filter(|v| self.breaches(**v))
            .count()
    }

    /// Feeds the datapoint of the period that just ended (`None` = no data) and returns the
    /// new state.
    pub fn record_period(&mut self, value: Option<f64>) -> AlarmState {
        let range = self.range_len();
        self.window.push_back(value.filter(|v| v.is_finite()));
        while self.window.len() > range {
            self.window.pop_front();
        }
        self.state = self.evaluate();
        self.state
    }

    fn range_len(&self) -> usize {
        self.spec.evaluation_periods as usize + 2
    }

    fn breaches(&self, v: f64) -> bool {
        self.spec.comparison.breaches(v, self.spec.threshold)
    }

    /// The evaluation range, oldest first, padded at the old end with missing periods (an alarm
    /// younger than the range has not seen them).
    fn range(&self) -> Vec<Option<f64>> {
        let pad = self.range_len().saturating_sub(self.window.len());
        std::iter::repeat_n(None, pad)
            .chain(self.window.iter().copied())
            .collect()
    }

    fn evaluate(&self) -> AlarmState {
        let n = self.spec.evaluation_periods as usize;
        let m = self.spec.datapoints_to_alarm as usize;
        let range = self.range();
        let real: Vec<f64> = range.iter().flatten().copied().collect();
        let verdict = |breaching: usize| {
            if breaching >= m {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            }
        };
        if real.len() >= n {
            let recent = &real[real.len() - n..];
            return verdict(recent.iter().filter(|v| self.breaches(**v)).count());
        }
        let last_n = &range[range.len() - n..];
        match self.spec.treat_missing_data {
            MissingData::Breaching | MissingData::NotBreaching => {
                let fill = self.spec.treat_missing_data == MissingData::Breaching;
                verdict(
                    last_n
                        .iter()
                        .filter(|v| v.map_or(fill, |v| self.breaches(v)))
                        .count(),
                )
            }
            MissingData::Missing | MissingData::Ignore if real.is_empty() => {
                if self.spec.treat_missing_data == MissingData::Missing {
                    AlarmState::InsufficientData
                } else {
                    self.state
                }
            }
            MissingData::Missing => {
                let breaching = real.iter().filter(|v| self.breaches(**v)).count();
                if breaching >= m
                    || (breaching == real.len() && self.old_enough_unbroken_breach(last_n, m))
                {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                }
            }
            MissingData::Ignore => {
                let breaching = real.iter().filter(|v| self.breaches(**v)).count();
                if breaching >= m {
                    AlarmState::Alarm
                } else if breaching < real.len() {
                    AlarmState::Ok
                } else {
                    self.state
                }
            }
        }
    }

    /// CloudWatch's premature-alarm guard for sparse data: a lone breach alarms only once it is
    /// at least M periods old and no datapoint in the range is good (`- - X - -` alarms for
    /// M = 3, `- - - - X` does not yet).
    fn old_enough_unbroken_breach(&self, last_n: &[Option<f64>], m: usize) -> bool {
        let Some(first) = last_n.iter().position(|v| v.is_some()) else {
            return false;
        };
        let age = last_n.len() - 1 - first;
        age + 1 >= m
            && last_n[first..]
                .iter()
                .all(|v| v.is_none_or(|v| self.breaches(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: u32, m: u32, missing: MissingData) -> AlarmSpec {
        AlarmSpec {
            metric: Metric::CpuUtilization,
            statistic: Statistic::Average,
            period: Duration::from_secs(10),
            evaluation_periods: n,
            datapoints_to_alarm: m,
            comparison: Comparison::GreaterThan,
            threshold: 50.0,
            treat_missing_data: missing,
        }
    }

    /// Runs the AWS notation (`0` ok, `X` breach, `-` missing) through an alarm that was in
    /// `prior` state, returning the final state.
    fn run(pattern: &str, m: u32, missing: MissingData, prior: AlarmState) -> AlarmState {
        let mut a = Alarm::new(spec(3, m, missing));
        a.state = prior;
        let mut last = prior;
        for c in pattern.split_whitespace() {
            let v = match c {
                "0" => Some(10.0),
                "X" => Some(90.0),
                _ => None,
            };
            // Drive the same window the table shows; state only matters at the end.
            let before = a.state;
            last = a.record_period(v);
            if c == "-" && missing == MissingData::Ignore && pattern.trim() == "- - - - -" {
                assert_eq!(last, before);
            }
        }
        last
    }

    use AlarmState::{Alarm as A, InsufficientData as I, Ok as O};
    use MissingData::{Breaching, Ignore, Missing, NotBreaching};
    const MODES: [MissingData; 4] = [Missing, Ignore, Breaching, NotBreaching];

    #[test]
    fn aws_table_three_of_three() {
        for mode in MODES {
            assert_eq!(run("0 - X - X", 3, mode, O), O, "{mode:?}");
            assert_eq!(run("0 X X - X", 3, mode, O), A, "{mode:?}");
        }
        assert_eq!(run("- - - - -", 3, Missing, O), I);
        assert_eq!(run("- - - - -", 3, Ignore, A), A, "ignore retains ALARM");
        assert_eq!(run("- - - - -", 3, Ignore, O), O, "ignore retains OK");
        assert_eq!(run("- - - - -", 3, Breaching, O), A);
        assert_eq!(run("- - - - -", 3, NotBreaching, A), O);
        // Premature-alarm guard.
        assert_ne!(run("- - - - X", 3, Missing, O), A);
        assert_eq!(run("- - X - -", 3, Missing, O), A);
    }

    #[test]
    fn aws_table_two_of_three() {
        for (mode, want) in [(Missing, O), (Ignore, O), (Breaching, A), (NotBreaching, O)] {
            assert_eq!(run("0 - X - -", 2, mode, O), want, "{mode:?}");
            assert_eq!(run("- - - - 0", 2, mode, O), want, "{mode:?}");
        }
    }

    #[test]
    fn describes_itself() {
        let a = Alarm::new(spec(3, 2, NotBreaching));
        assert_eq!(
            a.describe(),
            "cpu_utilization average > 50 in 2 of 3 periods of 10s (missing data: not_breaching)"
        );
    }

    #[test]
    fn m_of_n_need_not_be_consecutive() {
        let mut a = Alarm::new(spec(3, 2, Missing));
        assert_eq!(a.state(), I);
        for v in [90.0, 10.0, 90.0] {
            a.record_period(Some(v));
        }
        assert_eq!(a.state(), A);
        assert_eq!(a.breaching_count(), 2);
        assert_eq!(a.latest_value(), Some(90.0));
        a.record_period(Some(10.0));
        assert_eq!(a.state(), O, "now 0 X 0: one breach of 2 needed");
    }
}
