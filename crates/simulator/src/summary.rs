//! What a run measured: one row per second, and the summary over the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// One simulated second.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the run's start.
    pub t: u64,
    /// Requests offered.
    pub offered: f64,
    /// Requests served.
    pub served: f64,
    /// Requests dropped (no target, or overloaded targets).
    pub dropped: f64,
    /// Median response time of the second's served requests, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// The group's desired capacity.
    pub desired: u32,
    /// Instances serving (in service and healthy).
    pub serving: u32,
    /// Dollars per hour the group's instances cost this second.
    pub cost_per_hour: f64,
}

/// The run's summary (`--json` prints it as JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Simulated seconds.
    pub seconds: u64,
    /// Requests offered over the run.
    pub requests_offered: f64,
    /// Requests served.
    pub requests_served: f64,
    /// Requests dropped.
    pub requests_dropped: f64,
    /// Served / offered, percent.
    pub availability_percent: f64,
    /// Seconds whose p99 exceeded the scenario's `slo_p99`.
    pub seconds_over_slo: u64,
    /// The p99 objective, milliseconds.
    pub slo_p99_ms: f64,
    /// Median response time over the run (estimate: the exact quantile of the run's mixture
    /// of per-second response time distributions), milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile over the run, milliseconds.
    pub p99_ms: Option<f64>,
    /// Most instances serving at once.
    pub peak_instances: u32,
    /// Mean instances serving.
    pub mean_instances: f64,
    /// Instance-hours by billing rate (`on-demand`, `reserved`, `spot`), every running
    /// instance counted (booting and draining ones too: they are billed).
    pub instance_hours: BTreeMap<String, f64>,
    /// Dollars by billing rate.
    pub cost: BTreeMap<String, f64>,
    /// Dollars over the run.
    pub cost_total: f64,
    /// Dollars per day at the run's average rate.
    pub cost_per_day: f64,
    /// Desired capacity changes, by who made them (`policy NAME`, `scheduled action`, …).
    pub scaling_actions: BTreeMap<String, u32>,
}

impl Summary {
    /// The summary as lines for a terminal.
    pub fn text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "simulated {} s: {:.0} requests offered, {:.0} served, {:.0} dropped — availability {:.4} %",
            self.seconds,
            self.requests_offered,
            self.requests_served,
            self.requests_dropped,
            self.availability_percent
        );
        let _ = writeln!(
            s,
            "latency p50 {}  p99 {}; {} s over the p99 objective of {:.0} ms",
            ms(self.p50_ms),
            ms(self.p99_ms),
            self.seconds_over_slo,
            self.slo_p99_ms
        );
        let _ = writeln!(
            s,
            "instances: peak {}, mean {:.2}",
            self.peak_instances, self.mean_instances
        );
        for (rate, hours) in &self.instance_hours {
            let cost = self.cost.get(rate).copied().unwrap_or(0.0);
            let _ = writeln!(s, "  {rate:<10} {hours:>10.2} instance-hours  ${cost:.4}");
        }
        let _ = writeln!(
            s,
            "cost ${:.4} over the run, ${:.2} per day",
            self.cost_total, self.cost_per_day
        );
        let _ = write!(s, "scaling actions:");
        if self.scaling_actions.is_empty() {
            let _ = write!(s, " none");
        }
        for (cause, n) in &self.scaling_actions {
            let _ = write!(s, " {cause}: {n};");
        }
        s.push('\n');
        s
    }
}

/// The per-second rows as CSV (a header line, then one line per second).
pub fn csv(seconds: &[Second]) -> String {
    let mut out =
        String::from("t,offered,served,dropped,p50_ms,p99_ms,desired,serving,cost_per_hour\n");
    for s in seconds {
        let _ = writeln!(
            out,
            "{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{:.6}",
            s.t,
            s.offered,
            s.served,
            s.dropped,
            s.p50_ms,
            s.p99_ms,
            s.desired,
            s.serving,
            s.cost_per_hour
        );
    }
    out
}

/// Who changed the desired capacity, from an activity's cause.
pub(crate) fn cause_kind(cause: &str) -> String {
    if let Some(rest) = cause.strip_prefix("policy ") {
        let name = rest.split([':', ' ']).next().unwrap_or(rest);
        return format!("policy {name}");
    }
    for (prefix, kind) in [
        ("scheduled action", "scheduled action"),
        ("an operator", "operator"),
        ("a configuration reload", "reload"),
    ] {
        if cause.starts_with(prefix) {
            return kind.to_string();
        }
    }
    if cause.contains("scaling from zero") {
        return "scale from zero".to_string();
    }
    "other".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_grouped_by_who() {
        assert_eq!(
            cause_kind("policy keep-40: request_rate_per_target 83 > target 40"),
            "policy keep-40"
        );
        assert_eq!(
            cause_kind("policy daily (predictive): the forecast …"),
            "policy daily"
        );
        assert_eq!(
            cause_kind("scheduled action rush (due …)"),
            "scheduled action"
        );
        assert_eq!(cause_kind("something else"), "other");
    }
}
