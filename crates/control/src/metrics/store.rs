//! The store: one ring buffer per (metric, scope) series.

use super::series::{Datapoint, Series};
use super::{Metric, MetricsError, Scope, Statistic};
use crate::hashing::FastMap;
use crate::time::Time;

/// Default number of seconds each series remembers (one hour).
pub const DEFAULT_WINDOW_SECS: u64 = 3600;

/// All series of a Flotilla process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MetricsStore {
    window: u64,
    /// Looked up several times per instance a second: hashed fast (see [`FastMap`]).
    series: FastMap<(Metric, Scope), Series>,
}

impl Default for MetricsStore {
    fn default() -> Self {
        MetricsStore::new(DEFAULT_WINDOW_SECS)
    }
}

impl MetricsStore {
    /// A store remembering `window_secs` seconds (at least 1) of every series.
    pub fn new(window_secs: u64) -> Self {
        MetricsStore {
            window: window_secs.max(1),
            series: FastMap::default(),
        }
    }

    /// Seconds each series remembers.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Adds one sample (a count, a rate, a percentage) at second `now` to a plain series,
    /// creating it on first use.
    pub fn record(&mut self, metric: Metric, scope: &Scope, now: Time, value: f64) {
        self.series_mut(metric, scope, false)
            .record(secs(now), value);
    }

    /// Adds one sample to a distribution series (e.g. `target_response_time` in seconds), which
    /// also keeps a histogram so p50/p90/p99 can be read.
    pub fn record_distribution(&mut self, metric: Metric, scope: &Scope, now: Time, value: f64) {
        self.series_mut(metric, scope, true)
            .record(secs(now), value);
    }

    /// Adds a histogram's buckets — `(value, count)` pairs, `count` samples of `value` each —
    /// to a distribution series at once: how a per-second histogram read from the data plane
    /// is taken over without one call per request, and with one lookup of the series.
    pub fn record_distribution_buckets(
        &mut self,
        metric: Metric,
        scope: &Scope,
        now: Time,
        buckets: &[(f64, u64)],
    ) {
        if buckets.is_empty() {
            return;
        }
        let series = self.series_mut(metric, scope, true);
        for (value, count) in buckets {
            series.record_n(secs(now), *value, *count);
        }
    }

    /// Every (metric, scope) pair held, sorted, for listings and the Prometheus export.
    pub fn series_names(&self) -> Vec<(Metric, Scope)> {
        let mut names: Vec<_> = self.series.keys().cloned().collect();
        names.sort();
        names
    }

    /// Drops a series (e.g. an instance that terminated) so memory tracks live scopes.
    pub fn remove(&mut self, metric: Metric, scope: &Scope) {
        self.series.remove(&(metric, scope.clone()));
    }

    /// Drops every series of a scope.
    pub fn remove_scope(&mut self, scope: &Scope) {
        self.series.retain(|(_, s), _| s != scope);
    }

    /// Keeps only the series whose scope `keep` accepts (e.g. drops every instance that is
    /// gone), so memory follows the live fleet.
    pub fn retain_scopes(&mut self, mut keep: impl FnMut(&Scope) -> bool) {
        self.series.retain(|(_, s), _| keep(s));
    }

    /// Datapoints of `metric` in `scope`, one per `period_secs` period (aligned to multiples of
    /// the period) that has samples, between `since` and `until` inclusive, oldest first.
    /// Periods without samples are absent, as in CloudWatch, so alarms can tell missing data.
    pub fn read(
        &self,
        metric: Metric,
        scope: &Scope,
        period_secs: u64,
        statistic: Statistic,
        since: Time,
        until: Time,
    ) -> Result<Vec<Datapoint>, MetricsError> {
        if period_secs == 0 {
            return Err(MetricsError::ZeroPeriod);
        }
        let series = self.series.get(&(metric, scope.clone())).ok_or_else(|| {
            MetricsError::NoSuchSeries {
                metric: metric.as_str().to_string(),
                scope: scope.to_string(),
            }
        })?;
        if statistic.quantile().is_some() && !series.is_distribution() {
            return Err(MetricsError::NotADistribution(metric.as_str().to_string()));
        }
        Ok(series.read(period_secs, statistic, secs(since), secs(until)))
    }

    /// The single value of the period `[end - period_secs + 1, end]`, or `None` when it has no
    /// samples (or the series does not exist) — what an alarm or policy evaluates each period.
    pub fn aggregate(
        &self,
        metric: Metric,
        scope: &Scope,
        period_secs: u64,
        statistic: Statistic,
        end: Time,
    ) -> Option<f64> {
        let series = self.series.get(&(metric, scope.clone()))?;
        if period_secs == 0 || (statistic.quantile().is_some() && !series.is_distribution()) {
            return None;
        }
        let end = secs(end);
        let start = end.saturating_sub(period_secs - 1);
        series.aggregate(start, end, statistic)
    }

    fn series_mut(&mut self, metric: Metric, scope: &Scope, distribution: bool) -> &mut Series {
        let window = self.window;
        self.series
            .entry((metric, scope.clone()))
            .or_insert_with(|| Series::new(window, distribution))
    }
}

/// Whole seconds since the driver's epoch.
fn secs(t: Time) -> u64 {
    t.as_duration().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg(name: &str) -> Scope {
        Scope::TargetGroup(name.to_string())
    }

    fn inst(id: &str) -> Scope {
        Scope::Instance(crate::InstanceId::from(id.to_string()))
    }

    fn lb() -> Scope {
        Scope::LoadBalancer("lb".to_string())
    }

    fn t(s: u64) -> Time {
        Time::from_millis(s * 1000)
    }

    #[test]
    fn statistics_over_periods() {
        let mut m = MetricsStore::new(100);
        for s in 0..10u64 {
            m.record(Metric::RequestCount, &tg("web"), t(s), s as f64);
        }
        // Second 3 has two samples.
        m.record(Metric::RequestCount, &tg("web"), t(3), 7.0);
        let read = |stat| {
            m.read(Metric::RequestCount, &tg("web"), 5, stat, t(0), t(9))
                .unwrap()
                .into_iter()
                .map(|d| (d.time, d.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(read(Statistic::Sum), vec![(t(0), 17.0), (t(5), 35.0)]);
        assert_eq!(read(Statistic::SampleCount), vec![(t(0), 6.0), (t(5), 5.0)]);
        assert_eq!(read(Statistic::Minimum), vec![(t(0), 0.0), (t(5), 5.0)]);
        assert_eq!(read(Statistic::Maximum), vec![(t(0), 7.0), (t(5), 9.0)]);
        let avg = read(Statistic::Average);
        assert!((avg[0].1 - 17.0 / 6.0).abs() < 1e-9);
        assert_eq!(avg[1].1, 7.0);
    }

    #[test]
    fn missing_periods_are_absent_and_ranges_clip() {
        let mut m = MetricsStore::new(100);
        m.record(Metric::CpuUtilization, &inst("i-1"), t(2), 50.0);
        m.record(Metric::CpuUtilization, &inst("i-1"), t(25), 70.0);
        let d = m
            .read(
                Metric::CpuUtilization,
                &inst("i-1"),
                10,
                Statistic::Average,
                t(0),
                t(29),
            )
            .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].time, d[0].value), (t(0), 50.0));
        assert_eq!((d[1].time, d[1].value), (t(20), 70.0));
        let d = m
            .read(
                Metric::CpuUtilization,
                &inst("i-1"),
                1,
                Statistic::Average,
                t(3),
                t(24),
            )
            .unwrap();
        assert!(d.is_empty());
        assert_eq!(
            m.aggregate(
                Metric::CpuUtilization,
                &inst("i-1"),
                5,
                Statistic::Maximum,
                t(26)
            ),
            Some(70.0)
        );
        assert_eq!(
            m.aggregate(
                Metric::CpuUtilization,
                &inst("i-1"),
                5,
                Statistic::Maximum,
                t(20)
            ),
            None
        );
    }

    #[test]
    fn ring_buffer_forgets_beyond_window() {
        let mut m = MetricsStore::new(10);
        for s in 0..25u64 {
            m.record(Metric::RequestCount, &lb(), t(s), 1.0);
        }
        let d = m
            .read(
                Metric::RequestCount,
                &lb(),
                100,
                Statistic::Sum,
                t(0),
                t(24),
            )
            .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].value, 10.0, "only the last 10 seconds remain");
        // A stale slot (same index, older second) is overwritten, not merged.
        m.record(Metric::RequestCount, &lb(), t(40), 5.0);
        assert_eq!(
            m.aggregate(Metric::RequestCount, &lb(), 1, Statistic::Sum, t(40)),
            Some(5.0)
        );
        assert_eq!(
            m.aggregate(Metric::RequestCount, &lb(), 1, Statistic::Sum, t(30)),
            None
        );
    }

    #[test]
    fn percentiles_from_histograms() {
        let mut m = MetricsStore::new(60);
        // 100 samples per second: 1 ms .. 100 ms.
        for s in 0..4u64 {
            for i in 1..=100u32 {
                m.record_distribution(
                    Metric::TargetResponseTime,
                    &tg("tg"),
                    t(s),
                    f64::from(i) / 1000.0,
                );
            }
        }
        let p = |stat| {
            m.aggregate(Metric::TargetResponseTime, &tg("tg"), 4, stat, t(3))
                .unwrap()
        };
        let (p50, p90, p99) = (p(Statistic::P50), p(Statistic::P90), p(Statistic::P99));
        assert!((0.040..=0.060).contains(&p50), "p50 {p50}");
        assert!((0.080..=0.100).contains(&p90), "p90 {p90}");
        assert!((0.090..=0.100).contains(&p99), "p99 {p99}");
        assert!(p50 < p90 && p90 <= p99);
        assert_eq!(p(Statistic::Maximum), 0.1);
    }

    #[test]
    fn weighted_samples_count_as_many() {
        let mut one_by_one = MetricsStore::new(60);
        let mut at_once = MetricsStore::new(60);
        for (value, n) in [(0.002, 90u64), (0.2, 10)] {
            for _ in 0..n {
                one_by_one.record_distribution(Metric::TargetResponseTime, &tg("tg"), t(1), value);
            }
            at_once.record_distribution_buckets(
                Metric::TargetResponseTime,
                &tg("tg"),
                t(1),
                &[(value, n)],
            );
        }
        at_once.record_distribution_buckets(
            Metric::TargetResponseTime,
            &tg("tg"),
            t(1),
            &[(9.0, 0)],
        );
        for stat in [
            Statistic::SampleCount,
            Statistic::Average,
            Statistic::Minimum,
            Statistic::Maximum,
            Statistic::P50,
            Statistic::P90,
            Statistic::P99,
        ] {
            let a = one_by_one.aggregate(Metric::TargetResponseTime, &tg("tg"), 1, stat, t(1));
            let b = at_once.aggregate(Metric::TargetResponseTime, &tg("tg"), 1, stat, t(1));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!((a - b).abs() < 1e-9, "{stat}: {a} vs {b}");
        }
        assert_eq!(
            at_once.aggregate(
                Metric::TargetResponseTime,
                &tg("tg"),
                1,
                Statistic::SampleCount,
                t(1)
            ),
            Some(100.0),
            "a zero count adds nothing"
        );
    }

    #[test]
    fn bad_reads_are_errors() {
        let mut m = MetricsStore::new(60);
        m.record(Metric::RequestCount, &lb(), t(1), 1.0);
        assert_eq!(
            m.read(Metric::RequestCount, &lb(), 1, Statistic::P90, t(0), t(1)),
            Err(MetricsError::NotADistribution("request_count".into()))
        );
        assert!(matches!(
            m.read(
                Metric::RequestCount,
                &tg("nope"),
                1,
                Statistic::Sum,
                t(0),
                t(1)
            ),
            Err(MetricsError::NoSuchSeries { .. })
        ));
        assert_eq!(
            m.read(Metric::RequestCount, &lb(), 0, Statistic::Sum, t(0), t(1)),
            Err(MetricsError::ZeroPeriod)
        );
        assert!("p42".parse::<Statistic>().is_err());
        assert_eq!(
            "sample_count".parse::<Statistic>(),
            Ok(Statistic::SampleCount)
        );
        m.remove_scope(&lb());
        assert!(m.series_names().is_empty());
    }
}
