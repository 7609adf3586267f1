//! Predictive scaling (AWS §6.7): forecast the group's load for the next 48 hours from its own
//! hourly history (daily and weekly seasonality, [`forecast`]) and, in `forecast_and_scale`
//! mode, raise the capacity ahead of each hour to what the forecast needs. It never scales in
//! by itself; while it holds capacity up, dynamic policies do not scale in below it (each
//! policy computes its capacity and the group gets the largest, as in AWS).

mod forecast;
mod history;

use std::time::Duration;

pub use forecast::{forecast, MIN_HISTORY_HOURS};
pub(crate) use history::LoadHistory;
pub use history::{LoadHour, KEPT_HOURS};

use super::{fmt_value, Proposal};
use crate::metrics::Metric;

/// Hours forecast ahead (AWS: 48).
pub const HORIZON_HOURS: usize = 48;

/// Whether the forecast only shows or also scales (AWS `Mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PredictiveMode {
    /// Forecast, show it, do nothing (AWS's default, to judge it first).
    #[default]
    ForecastOnly,
    /// Forecast and raise capacity ahead of each hour.
    ForecastAndScale,
}

impl PredictiveMode {
    /// `forecast_only` or `forecast_and_scale`.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictiveMode::ForecastOnly => "forecast_only",
            PredictiveMode::ForecastAndScale => "forecast_and_scale",
        }
    }
}

/// What to do when the forecast needs more than `max_size` (AWS
/// `MaxCapacityBreachBehavior`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MaxCapacityBreach {
    /// Stay within `max_size` (default).
    #[default]
    HonorMaxCapacity,
    /// Raise `max_size` to the forecast plus `max_capacity_buffer` percent; the raised
    /// maximum stays (until a reload sets the file's again).
    IncreaseMaxCapacity,
}

impl MaxCapacityBreach {
    /// `honor_max_capacity` or `increase_max_capacity`.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxCapacityBreach::HonorMaxCapacity => "honor_max_capacity",
            MaxCapacityBreach::IncreaseMaxCapacity => "increase_max_capacity",
        }
    }
}

/// A predictive scaling policy's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PredictiveSpec {
    /// Policy name, used in causes.
    pub name: String,
    /// The load metric: `request_count` (requests per second to the group) or
    /// `cpu_utilization` (the group's CPU percent summed over its instances).
    pub metric: Metric,
    /// Load one instance should carry (requests per second, or CPU percent): capacity is
    /// ceil(load / target).
    pub target_value: f64,
    /// Forecast only, or forecast and scale.
    pub mode: PredictiveMode,
    /// How long before each hour its capacity is put in place (AWS default 300 s).
    pub scheduling_buffer_time: Duration,
    /// What to do when the forecast exceeds `max_size`.
    pub max_capacity_breach_behavior: MaxCapacityBreach,
    /// Percent of the forecast capacity `max_size` may be raised above it (0–100).
    pub max_capacity_buffer: u32,
}

/// One forecast hour.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForecastPoint {
    /// Whole hours since the Unix epoch (UTC).
    pub hour: i64,
    /// The load forecast (the policy's metric).
    pub load: f64,
    /// The instances that load needs: ceil(load / target).
    pub capacity: u32,
}

/// A predictive policy: its history and its latest forecast.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PredictivePolicy {
    spec: PredictiveSpec,
    pub(crate) history: LoadHistory,
    forecast: Vec<ForecastPoint>,
    /// The hour the forecast was made in.
    made_in: Option<i64>,
}

impl PredictivePolicy {
    /// A policy with no history.
    pub fn new(spec: PredictiveSpec) -> Self {
        PredictivePolicy {
            spec,
            history: LoadHistory::default(),
            forecast: Vec::new(),
            made_in: None,
        }
    }

    /// Its settings.
    pub fn spec(&self) -> &PredictiveSpec {
        &self.spec
    }

    /// The latest forecast, hour by hour (empty until there is a day of history).
    pub fn forecast(&self) -> &[ForecastPoint] {
        &self.forecast
    }

    /// The hour the latest forecast was made in.
    pub fn forecast_made_in(&self) -> Option<i64> {
        self.made_in
    }

    /// Complete hours of history.
    pub fn history_hours(&self) -> usize {
        self.history.hours().count()
    }

    /// Every complete hour of history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &LoadHour> + '_ {
        self.history.hours()
    }

    /// Records one second's load (Unix `second`); returns an hour it completed. Makes a new
    /// forecast at the first second of each hour.
    pub fn record(&mut self, second: i64, load: Option<f64>) -> Option<LoadHour> {
        let done = load
            .filter(|l| l.is_finite() && *l >= 0.0)
            .and_then(|l| self.history.record(second, l));
        let hour = second.div_euclid(3600);
        if self.made_in != Some(hour) {
            self.refresh(hour);
        }
        done
    }

    /// Forecasts the [`HORIZON_HOURS`] from `hour` on.
    pub fn refresh(&mut self, hour: i64) {
        self.made_in = Some(hour);
        let target = self.spec.target_value;
        self.forecast = forecast(&self.history.means(), hour, HORIZON_HOURS)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, load)| ForecastPoint {
                hour: hour + i as i64,
                load,
                capacity: capacity_for(load, target),
            })
            .collect();
    }

    /// The forecast hour in force at Unix `second`: the one that starts within the
    /// scheduling buffer (its capacity is in place that much ahead).
    pub fn point_at(&self, second: i64) -> Option<ForecastPoint> {
        let buffer = i64::try_from(self.spec.scheduling_buffer_time.as_secs()).unwrap_or(0);
        let hour = (second + buffer).div_euclid(3600);
        self.forecast.iter().find(|p| p.hour == hour).copied()
    }

    /// In `forecast_and_scale` mode, the capacity the forecast wants at `second`, with the
    /// max the group must allow for it: `(capacity, Some(new max))` when
    /// `increase_max_capacity` raises `max_size`.
    pub fn wanted(&self, second: i64, max_size: u32) -> Option<(ForecastPoint, u32, Option<u32>)> {
        if self.spec.mode != PredictiveMode::ForecastAndScale {
            return None;
        }
        let p = self.point_at(second)?;
        let (cap, new_max) = match self.spec.max_capacity_breach_behavior {
            _ if p.capacity <= max_size => (p.capacity, None),
            MaxCapacityBreach::HonorMaxCapacity => (max_size, None),
            MaxCapacityBreach::IncreaseMaxCapacity => {
                let buffer = f64::from(self.spec.max_capacity_buffer.min(100)) / 100.0;
                let raised = (f64::from(p.capacity) * (1.0 + buffer)).ceil();
                (p.capacity, Some(raised.min(f64::from(u32::MAX)) as u32))
            }
        };
        Some((p, cap, new_max))
    }

    /// A scale-out to what the forecast wants, when that is above `desired`.
    pub fn proposal(&self, second: i64, desired: u32, max_size: u32) -> Option<Proposal> {
        let (p, cap, _) = self.wanted(second, max_size)?;
        (cap > desired).then(|| Proposal {
            capacity: cap,
            cause: format!(
                "policy {} (predictive): the forecast of {} {} for the hour from {} UTC needs \
                 {} instance(s) at {} per instance",
                self.spec.name,
                fmt_value(p.load),
                self.spec.metric,
                hour_label(p.hour),
                p.capacity,
                fmt_value(self.spec.target_value)
            ),
            target_tracking: false,
        })
    }
}

/// ceil(load / target) instances, at least 0.
fn capacity_for(load: f64, target: f64) -> u32 {
    if target.is_nan() || target <= 0.0 {
        return 0;
    }
    let c = (load / target - 1e-9).ceil().max(0.0);
    if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        c as u32
    }
}

/// `2024-05-01 09:00` for an hour index.
fn hour_label(hour: i64) -> String {
    let days = hour.div_euclid(24);
    let h = hour.rem_euclid(24);
    let date = jiff::civil::Date::new(1970, 1, 1)
        .ok()
        .and_then(|d| d.checked_add(jiff::Span::new().days(days)).ok());
    match date {
        Some(d) => format!("{d} {h:02}:00"),
        None => format!("hour {hour}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: PredictiveMode, breach: MaxCapacityBreach) -> PredictivePolicy {
        PredictivePolicy::new(PredictiveSpec {
            name: "daily".into(),
            metric: Metric::RequestCount,
            target_value: 100.0,
            mode,
            scheduling_buffer_time: Duration::from_secs(300),
            max_capacity_breach_behavior: breach,
            max_capacity_buffer: 10,
        })
    }

    /// One day of hourly load h × 100 (hour h of the day), recorded second by second.
    fn learn(p: &mut PredictivePolicy) {
        for second in (0..86_400 + 1).step_by(60) {
            let h = (second / 3600) % 24;
            p.record(second, Some(h as f64 * 100.0));
        }
    }

    #[test]
    fn scales_ahead_of_the_hour_never_in_and_honours_max() {
        let mut p = policy(
            PredictiveMode::ForecastAndScale,
            MaxCapacityBreach::HonorMaxCapacity,
        );
        learn(&mut p);
        assert_eq!(p.history_hours(), 24);
        assert_eq!(p.forecast().len(), HORIZON_HOURS);
        // Day 2, 09:54: the 10:00 hour (1000/s) is within the 5-minute buffer → 10 instances.
        let at = 86_400 + 9 * 3600 + 54 * 60 + 59;
        assert_eq!(p.proposal(at, 5, 20).map(|x| x.capacity), Some(9));
        let at = 86_400 + 9 * 3600 + 55 * 60;
        let prop = p.proposal(at, 5, 20).expect("scale out");
        assert_eq!(prop.capacity, 10);
        assert!(prop.cause.contains("1970-01-02 10:00"), "{}", prop.cause);
        assert_eq!(p.proposal(at, 12, 20), None, "never scales in");
        assert_eq!(p.proposal(at, 5, 8).map(|x| x.capacity), Some(8));
        let only = policy(
            PredictiveMode::ForecastOnly,
            MaxCapacityBreach::HonorMaxCapacity,
        );
        assert_eq!(only.proposal(at, 5, 20), None);
    }

    #[test]
    fn increase_max_capacity_raises_max_by_the_buffer() {
        let mut p = policy(
            PredictiveMode::ForecastAndScale,
            MaxCapacityBreach::IncreaseMaxCapacity,
        );
        learn(&mut p);
        // 23:00 needs 23; max 20 → raised to ceil(23 × 1.1) = 26.
        let at = 86_400 + 23 * 3600;
        let (_, cap, new_max) = p.wanted(at, 20).expect("wanted");
        assert_eq!((cap, new_max), (23, Some(26)));
    }

    #[test]
    fn without_a_day_of_history_nothing_is_forecast() {
        let mut p = policy(
            PredictiveMode::ForecastAndScale,
            MaxCapacityBreach::HonorMaxCapacity,
        );
        for second in (0..3600 * 10).step_by(60) {
            p.record(second, Some(50.0));
        }
        assert!(p.forecast().is_empty());
        assert_eq!(p.proposal(3600 * 10, 1, 10), None);
    }
}
