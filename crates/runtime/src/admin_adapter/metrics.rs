//! `GET /v1/metrics/{metric}`: a read of the cluster's metrics store, with the API's
//! parameters parsed into typed ones.

use std::time::{Duration, SystemTime};

use flotilla_admin::api::{DatapointInfo, MetricDatapoints, MetricParams};
use flotilla_admin::AdminError;
use flotilla_control::metrics::{Metric, MetricsError, Scope, Statistic};
use flotilla_control::{Cluster, Time};

use crate::clock::Clock;

fn bad(e: MetricsError) -> AdminError {
    AdminError::BadRequest(e.to_string())
}

/// Datapoints of `metric` as `p` asks: scope (default: the only group's), period (default
/// 1 s), statistic (default average), since (default 5 minutes ago).
pub(crate) fn read(
    clock: &Clock,
    c: &Cluster,
    metric: &str,
    p: &MetricParams,
) -> Result<MetricDatapoints, AdminError> {
    let metric: Metric = metric
        .parse()
        .map_err(|e| AdminError::NotFound(format!("{e}")))?;
    let groups: Vec<&str> = c.groups().map(|g| g.name).collect();
    let scope: Scope = match (&p.scope, groups.as_slice()) {
        (Some(s), _) => s.parse().map_err(bad)?,
        (None, [only]) => Scope::Group((*only).to_string()),
        (None, _) => {
            return Err(AdminError::BadRequest(
                "scope is required, e.g. scope=group/web".into(),
            ))
        }
    };
    let period = match &p.period {
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| AdminError::BadRequest(format!("period {s:?}: {e}")))?,
        None => Duration::from_secs(1),
    };
    if period.as_secs() == 0 || period.subsec_nanos() != 0 {
        return Err(AdminError::BadRequest(
            "period must be a whole number of seconds, at least 1s".into(),
        ));
    }
    let statistic: Statistic = p
        .statistic
        .as_deref()
        .unwrap_or("average")
        .parse()
        .map_err(bad)?;
    let now = clock.now();
    let since = match &p.since {
        None => Time::from_duration(now.as_duration().saturating_sub(Duration::from_secs(300))),
        Some(s) => since_time(now, s)?,
    };
    let points = c
        .metrics()
        .read(metric, &scope, period.as_secs(), statistic, since, now)
        .map_err(|e| match e {
            MetricsError::NoSuchSeries { .. } => AdminError::NotFound(e.to_string()),
            _ => bad(e),
        })?;
    Ok(MetricDatapoints {
        datapoints: points
            .into_iter()
            .map(|d| DatapointInfo {
                time: clock.rfc3339(d.time),
                value: d.value,
            })
            .collect(),
    })
}

/// `since` as a control-plane time: a duration ago, or an RFC 3339 wall time.
fn since_time(now: Time, s: &str) -> Result<Time, AdminError> {
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(Time::from_duration(now.as_duration().saturating_sub(ago)));
    }
    let wall = humantime::parse_rfc3339_weak(s).map_err(|_| {
        AdminError::BadRequest(format!(
            "since {s:?}: expected a duration (5m) or an RFC 3339 time"
        ))
    })?;
    let ago = SystemTime::now()
        .duration_since(wall)
        .unwrap_or(Duration::ZERO);
    Ok(Time::from_duration(now.as_duration().saturating_sub(ago)))
}
