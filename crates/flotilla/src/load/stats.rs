//! What `flotilla load` counts: per-second windows for the live line, the whole run for the
//! summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::histogram::Histogram;

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer with this status (any status; 5xx and 4xx count as errors).
    Status(u16),
    /// No answer within `--timeout`.
    Timeout,
    /// Connecting, sending or reading failed.
    Connection,
    /// Not sent: `--max-in-flight` requests were already waiting (open loop only).
    Skipped,
}

impl Outcome {
    /// The error class, or `None` for a success (1xx-3xx).
    pub(crate) fn error(self) -> Option<&'static str> {
        match self {
            Outcome::Status(s) if s >= 500 => Some("5xx"),
            Outcome::Status(s) if s >= 400 => Some("4xx"),
            Outcome::Status(_) => None,
            Outcome::Timeout => Some("timeout"),
            Outcome::Connection => Some("connection"),
            Outcome::Skipped => Some("skipped (max in flight)"),
        }
    }
}

/// The counts of one window.
#[derive(Clone)]
pub(crate) struct Tally {
    pub(crate) requests: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Latencies of answered requests (errors included, skipped and failed ones not).
    pub(crate) latency: Histogram,
}

impl Tally {
    fn new() -> Self {
        Tally {
            requests: 0,
            errors: BTreeMap::new(),
            statuses: BTreeMap::new(),
            latency: Histogram::new(),
        }
    }

    fn record(&mut self, outcome: Outcome, latency: Option<Duration>) {
        self.requests += 1;
        if let Some(e) = outcome.error() {
            *self.errors.entry(e).or_default() += 1;
        }
        if let Outcome::Status(s) = outcome {
            *self.statuses.entry(s).or_default() += 1;
        }
        if let Some(l) = latency {
            self.latency.record(l);
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        self.latency.merge(&other.latency);
    }

    /// Every error, of any class.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The current second and the run so far, shared by the request tasks and the reporter.
pub(crate) struct Stats {
    inner: Mutex<(Tally, Tally)>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            inner: Mutex::new((Tally::new(), Tally::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Tally, Tally)> {
        // A panicking request task cannot leave the counts half-written in a way that
        // matters for a report: keep counting.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a finished (or skipped) request in the current second.
    pub(crate) fn record(&self, outcome: Outcome, latency: Option<Duration>) {
        self.lock().0.record(outcome, latency);
    }

    /// Ends the current second: returns it and adds it to the run's total.
    pub(crate) fn take_second(&self) -> Tally {
        let mut g = self.lock();
        let second = std::mem::replace(&mut g.0, Tally::new());
        g.1.merge(&second);
        second
    }

    /// The run so far (the current second not yet included).
    pub(crate) fn total(&self) -> Tally {
        self.lock().1.clone()
    }
}

/// `12.3 ms`, or `-` for no data.
pub(crate) fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.2} ms"),
        Some(v) => format!("{v:.1} ms"),
        None => "-".into(),
    }
}

/// One live line: the second's rate, p50/p99 and errors.
pub(crate) fn line(at: u64, t: &Tally, in_flight: usize) -> String {
    let errors = if t.errors.is_empty() {
        "0".to_string()
    } else {
        t.errors
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{at:>5}s {:>7} req/s   p50 {:>9}   p99 {:>9}   in flight {in_flight:>4}   errors {errors}",
        t.requests,
        ms(t.latency.quantile_ms(0.5)),
        ms(t.latency.quantile_ms(0.99)),
    )
}

/// The summary as JSON (`--json`).
pub(crate) fn json(t: &Tally, elapsed: Duration) -> serde_json::Value {
    let secs = elapsed.as_secs_f64();
    serde_json::json!({
        "requests": t.requests,
        "ok": t.requests - t.error_count(),
        "errors": t.errors,
        "statuses": t.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "seconds": secs,
        "rate": if secs > 0.0 { t.requests as f64 / secs } else { 0.0 },
        "latency_ms": {
            "p50": t.latency.quantile_ms(0.5),
            "p90": t.latency.quantile_ms(0.9),
            "p99": t.latency.quantile_ms(0.99),
            "max": t.latency.max_ms(),
        },
    })
}

/// The summary as lines.
pub(crate) fn summary(t: &Tally, elapsed: Duration) -> Vec<String> {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        t.requests as f64 / secs
    } else {
        0.0
    };
    let statuses: Vec<String> = t
        .statuses
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let errors: Vec<String> = t.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    vec![
        format!(
            "{} requests in {secs:.1} s ({rate:.1}/s): {} ok, {} errors{}",
            t.requests,
            t.requests - t.error_count(),
            t.error_count(),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join(", "))
            }
        ),
        format!(
            "latency p50 {}  p90 {}  p99 {}  max {}",
            ms(t.latency.quantile_ms(0.5)),
            ms(t.latency.quantile_ms(0.9)),
            ms(t.latency.quantile_ms(0.99)),
            ms(t.latency.max_ms())
        ),
        format!("statuses {}", statuses.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_add_up_to_the_run() {
        let s = Stats::new();
        s.record(Outcome::Status(200), Some(Duration::from_millis(2)));
        s.record(Outcome::Status(503), Some(Duration::from_millis(1)));
        let first = s.take_second();
        assert_eq!((first.requests, first.error_count()), (2, 1));
        s.record(Outcome::Skipped, None);
        s.record(Outcome::Timeout, None);
        let second = s.take_second();
        assert_eq!(second.error_count(), 2);
        assert_eq!(second.latency.count(), 0);
        let total = s.total();
        assert_eq!((total.requests, total.error_count()), (4, 3));
        assert_eq!(total.statuses.get(&200), Some(&1));
        let l = line(1, &first, 0);
        assert!(l.contains("2 req/s") && l.contains("1 5xx"), "{l}");
        let sum = summary(&total, Duration::from_secs(2));
        assert!(
            sum[0].starts_with("4 requests in 2.0 s (2.0/s): 1 ok, 3 errors"),
            "{sum:?}"
        );
        assert_eq!(json(&total, Duration::from_secs(2))["ok"], 1);
    }
}
