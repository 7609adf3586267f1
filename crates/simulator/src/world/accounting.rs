//! The run's books: a row per second, and what the summary adds up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla_control::Cluster;

use crate::latency::{mixture_quantile, Part};
use crate::summary::{Second, Summary};

pub(super) struct Books {
    rows: Vec<Second>,
    slo: Duration,
    /// Every second's response time parts, for the run's quantiles.
    parts: Vec<Part>,
    /// Instances and dollars per hour by billing rate, recomputed when instances change.
    rates: BTreeMap<String, (u32, f64)>,
    dirty: bool,
    hours: BTreeMap<String, f64>,
    cost: BTreeMap<String, f64>,
    scaling: BTreeMap<String, u32>,
    /// Activities counted (each is reported when it starts and when it ends).
    seen: BTreeSet<u64>,
}

impl Books {
    pub(super) fn new(slo: Duration) -> Self {
        Books {
            rows: Vec::new(),
            slo,
            parts: Vec::new(),
            rates: BTreeMap::new(),
            dirty: true,
            hours: BTreeMap::new(),
            cost: BTreeMap::new(),
            scaling: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }

    /// Instances launched, stopped or died: bills are recomputed at the next second.
    pub(super) fn instances_changed(&mut self) {
        self.dirty = true;
    }

    /// A desired capacity change (activity `id`) by `kind`.
    pub(super) fn scaled(&mut self, id: u64, kind: String) {
        if self.seen.insert(id) {
            *self.scaling.entry(kind).or_default() += 1;
        }
    }

    /// Seconds booked so far.
    pub(super) fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Forgets what the prelude counted (the run starts now).
    pub(super) fn reset_counters(&mut self) {
        self.scaling.clear();
        self.dirty = true;
    }

    /// Dollars per hour the group's instances cost now.
    pub(super) fn cost_now(&mut self, cluster: &Cluster, group: &str) -> f64 {
        if self.dirty {
            self.dirty = false;
            self.rates.clear();
            let bills = cluster.bills();
            if let Some(g) = cluster.group(group) {
                for i in g.asg.instances() {
                    if let Some(b) = bills.get(&i.id) {
                        let e = self
                            .rates
                            .entry(b.billing.as_str().to_string())
                            .or_default();
                        e.0 += 1;
                        e.1 += b.hourly.unwrap_or(0.0);
                    }
                }
            }
        }
        self.rates.values().map(|(_, h)| h).sum()
    }

    /// Books one second; `parts` are its served requests' response times.
    pub(super) fn second(&mut self, row: Second, parts: Vec<Part>) {
        self.parts.extend(parts);
        for (billing, (n, hourly)) in &self.rates {
            *self.hours.entry(billing.clone()).or_default() += f64::from(*n) / 3600.0;
            *self.cost.entry(billing.clone()).or_default() += hourly / 3600.0;
        }
        self.rows.push(row);
    }

    pub(super) fn finish(self, seconds: u64) -> (Summary, Vec<Second>) {
        let rows = self.rows;
        let sum = |f: fn(&Second) -> f64| rows.iter().map(f).sum::<f64>();
        let offered = sum(|r| r.offered);
        let served = sum(|r| r.served);
        let slo_ms = self.slo.as_secs_f64() * 1e3;
        let over = rows
            .iter()
            .filter(|r| r.p99_ms > slo_ms || (r.offered > 0.0 && r.served == 0.0))
            .count() as u64;
        let cost_total: f64 = self.cost.values().sum();
        let days = seconds as f64 / 86_400.0;
        let summary = Summary {
            seconds,
            requests_offered: offered,
            requests_served: served,
            requests_dropped: sum(|r| r.dropped),
            availability_percent: if offered > 0.0 {
                100.0 * served / offered
            } else {
                100.0
            },
            seconds_over_slo: over,
            slo_p99_ms: slo_ms,
            p50_ms: mixture_quantile(&self.parts, 0.5).map(|s| s * 1e3),
            p99_ms: mixture_quantile(&self.parts, 0.99).map(|s| s * 1e3),
            peak_instances: rows.iter().map(|r| r.serving).max().unwrap_or(0),
            mean_instances: if rows.is_empty() {
                0.0
            } else {
                sum(|r| f64::from(r.serving)) / rows.len() as f64
            },
            instance_hours: self.hours,
            cost: self.cost,
            cost_total,
            cost_per_day: if days > 0.0 { cost_total / days } else { 0.0 },
            scaling_actions: self.scaling,
        };
        (summary, rows)
    }
}
