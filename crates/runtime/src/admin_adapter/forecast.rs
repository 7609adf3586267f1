//! Predictive scaling's forecasts in the admin API's words.

use std::time::{Duration, UNIX_EPOCH};

use flotilla_admin::api::{ForecastInfo, ForecastPointInfo, LoadPointInfo, PredictiveInfo};
use flotilla_control::policy::predictive::{HORIZON_HOURS, MIN_HISTORY_HOURS};
use flotilla_control::policy::PredictivePolicy;
use flotilla_control::GroupView;

/// The start of hour `hour` (hours since the Unix epoch) in RFC 3339.
fn hour_time(hour: i64) -> String {
    let secs = u64::try_from(hour.max(0)).unwrap_or(0) * 3600;
    humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn policy(p: &PredictivePolicy) -> PredictiveInfo {
    let s = p.spec();
    let hours = p.history_hours();
    let status = if p.forecast().is_empty() {
        format!("no forecast yet: it needs {MIN_HISTORY_HOURS} hours of history, has {hours}")
    } else {
        "ready".to_string()
    };
    let recent = p.history().collect::<Vec<_>>();
    let skip = recent.len().saturating_sub(HORIZON_HOURS);
    PredictiveInfo {
        name: s.name.clone(),
        mode: s.mode.as_str().to_string(),
        metric: s.metric.as_str().to_string(),
        target_value: s.target_value,
        scheduling_buffer_time: humantime::format_duration(s.scheduling_buffer_time).to_string(),
        max_capacity_breach_behavior: s.max_capacity_breach_behavior.as_str().to_string(),
        history_hours: u32::try_from(hours).unwrap_or(u32::MAX),
        status,
        made_at: p.forecast_made_in().map(hour_time),
        forecast: p
            .forecast()
            .iter()
            .map(|f| ForecastPointInfo {
                time: hour_time(f.hour),
                load: f.load,
                capacity: f.capacity,
            })
            .collect(),
        history: recent[skip..]
            .iter()
            .map(|h| LoadPointInfo {
                time: hour_time(h.hour),
                load: h.mean,
            })
            .collect(),
    }
}

/// Every predictive policy of `g`.
pub(super) fn forecast(g: &GroupView<'_>) -> ForecastInfo {
    ForecastInfo {
        group: g.name.to_string(),
        policies: g.controller.predictive_policies().map(policy).collect(),
    }
}
