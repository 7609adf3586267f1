//! The forecast model: a seasonal profile with a level correction.
//!
//! Each hour's load is forecast from the same hour of the previous days (daily seasonality:
//! up to 7 days, the most recent weighted most, × 0.7 per day back) and, with more than a week
//! of history, the same hour of the previous weeks (weekly seasonality: up to 2 weeks,
//! weights 1 and 0.5), averaged half and half. The profile is then scaled by the *level*: how
//! the last 24 hours compared with what the profile said of them (clamped to ½…2), so a
//! service that grew 30 % since last week is forecast 30 % higher. Hours beyond tomorrow use
//! the forecast of the day before as their "yesterday".
//!
//! Why this and not Holt-Winters, ARIMA or Prophet: load on a web service is dominated by its
//! daily and weekly cycle (what AWS's predictive scaling says it learns), a seasonal profile
//! captures exactly that from one day of history on, needs no fitting (no parameters to
//! search, nothing to diverge, the same answer in every run, cheap enough to recompute every
//! hour inside the sans-IO control plane), and is easy to explain in an activity's cause.
//! Its weakness is the same as AWS's: a one-off spike is not forecast — target tracking
//! covers it.

use std::collections::BTreeMap;

const DAY: i64 = 24;
const WEEK: i64 = 7 * DAY;
/// Complete hours needed before a forecast is made (AWS: 24 h).
pub const MIN_HISTORY_HOURS: usize = 24;

/// The profile value of hour `t`, from `series` (means and earlier forecasts).
fn profile(series: &BTreeMap<i64, f64>, t: i64) -> Option<f64> {
    let weighted = |lags: &[(i64, f64)]| {
        let (mut sum, mut weights) = (0.0, 0.0);
        for &(lag, w) in lags {
            if let Some(v) = series.get(&(t - lag)) {
                sum += w * v;
                weights += w;
            }
        }
        (weights > 0.0).then(|| sum / weights)
    };
    let daily: Vec<(i64, f64)> = (1..=7)
        .map(|d| (d * DAY, 0.7f64.powi(d as i32 - 1)))
        .collect();
    let daily = weighted(&daily);
    let weekly = weighted(&[(WEEK, 1.0), (2 * WEEK, 0.5)]);
    match (daily, weekly) {
        (Some(d), Some(w)) => Some(0.5 * d + 0.5 * w),
        (d, w) => d.or(w),
    }
}

/// The load of each of the `horizon` hours from `from` (an hour index), from the complete
/// hourly `means` before it; `None` with less than [`MIN_HISTORY_HOURS`] of them.
pub fn forecast(means: &BTreeMap<i64, f64>, from: i64, horizon: usize) -> Option<Vec<f64>> {
    let known: BTreeMap<i64, f64> = means
        .range(from - 3 * WEEK..from)
        .map(|(k, v)| (*k, *v))
        .collect();
    if known.len() < MIN_HISTORY_HOURS {
        return None;
    }
    // Level: the last day as measured against the profile's view of it.
    let (mut actual, mut expected) = (0.0, 0.0);
    for (t, v) in known.range(from - DAY..from) {
        if let Some(p) = profile(&known, *t) {
            actual += v;
            expected += p;
        }
    }
    let level = if expected > 0.0 {
        (actual / expected).clamp(0.5, 2.0)
    } else {
        1.0
    };
    let last = known.values().next_back().copied().unwrap_or(0.0);
    let mut series = known;
    let mut out = Vec::with_capacity(horizon);
    for t in from..from + horizon as i64 {
        let p = profile(&series, t).unwrap_or(last);
        series.insert(t, p);
        out.push((p * level).max(0.0));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily wave: 100 at night, 500 at 12:00.
    fn wave(hour: i64) -> f64 {
        let h = hour.rem_euclid(DAY) as f64;
        300.0 - 200.0 * (h / 24.0 * std::f64::consts::TAU).cos()
    }

    #[test]
    fn needs_a_day_then_repeats_the_day() {
        let mut means = BTreeMap::new();
        for h in 0..23 {
            means.insert(h, wave(h));
        }
        assert_eq!(forecast(&means, 23, 48), None, "23 hours are not enough");
        means.insert(23, wave(23));
        let f = forecast(&means, 24, 48).expect("a forecast");
        assert_eq!(f.len(), 48);
        for (i, v) in f.iter().enumerate() {
            let want = wave(24 + i as i64);
            assert!((v - want).abs() < 1e-6, "hour {i}: {v} vs {want}");
        }
    }

    #[test]
    fn the_level_follows_growth_and_weeks_blend_in() {
        let mut means = BTreeMap::new();
        // Two weeks of the wave, then a day 20 % higher.
        for h in 0..(2 * WEEK) {
            means.insert(h, wave(h));
        }
        for h in 2 * WEEK..(2 * WEEK + DAY) {
            means.insert(h, wave(h) * 1.2);
        }
        let from = 2 * WEEK + DAY;
        let f = forecast(&means, from, 24).expect("a forecast");
        // The profile of the next day mixes 1.2 (yesterday, weight 1) with 1.0 (older days and
        // weeks); the level lifts it back toward the last day's.
        let noon = (12 - from.rem_euclid(DAY)).rem_euclid(DAY) as usize;
        let ratio = f[noon] / wave(from + noon as i64);
        assert!(ratio > 1.1 && ratio < 1.35, "{ratio}");
    }
}
