//! One series: a ring buffer with a slot per second.

use crate::time::Time;

use super::histogram::{self, Counts, BUCKETS};
use super::Statistic;

/// One value of a series read at some period: the period's start and its statistic.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Datapoint {
    /// Start of the period (aligned to a multiple of the period).
    pub time: Time,
    /// The statistic over the period.
    pub value: f64,
}

/// What one second (or, merged, one period) holds.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Slot {
    /// The second this slot holds; `u64::MAX` when it never held one.
    second: u64,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        second: u64::MAX,
        sum: 0.0,
        count: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };
}

/// A fixed-size ring buffer of per-second slots (plus histograms for distributions).
///
/// Serialised (for a hot upgrade's hand-over) as its held slots only, each histogram as its
/// non-zero buckets ([`SeriesWire`]): an hour of mostly empty slots and mostly zero buckets
/// would otherwise be megabytes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(into = "SeriesWire", try_from = "SeriesWire")]
pub(crate) struct Series {
    slots: Vec<Slot>,
    hist: Option<Vec<Counts>>,
    latest: Option<u64>,
}

/// A held slot as written: its index, the slot, and its histogram's non-zero buckets
/// (bucket, count).
type HeldSlot = (usize, Slot, Vec<(u8, u32)>);

/// [`Series`] as written: its size, and each held slot with its index and sparse histogram.
#[derive(serde::Serialize, serde::Deserialize)]
struct SeriesWire {
    window: usize,
    distribution: bool,
    latest: Option<u64>,
    held: Vec<HeldSlot>,
}

impl From<Series> for SeriesWire {
    fn from(s: Series) -> Self {
        let held = s
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.second != u64::MAX)
            .map(|(i, slot)| {
                let buckets = s.hist.as_ref().map_or_else(Vec::new, |h| {
                    h[i].iter()
                        .enumerate()
                        .filter(|(_, n)| **n != 0)
                        .map(|(b, n)| (u8::try_from(b).unwrap_or(u8::MAX), *n))
                        .collect()
                });
                (i, *slot, buckets)
            })
            .collect();
        SeriesWire {
            window: s.slots.len(),
            distribution: s.hist.is_some(),
            latest: s.latest,
            held,
        }
    }
}

impl TryFrom<SeriesWire> for Series {
    type Error = String;

    fn try_from(w: SeriesWire) -> Result<Self, String> {
        let mut s = Series::new(w.window as u64, w.distribution);
        s.latest = w.latest;
        for (i, slot, buckets) in w.held {
            let Some(target) = s.slots.get_mut(i) else {
                return Err(format!("slot {i} outside a window of {}", w.window));
            };
            *target = slot;
            if let Some(h) = s.hist.as_mut() {
                for (b, n) in buckets {
                    let Some(count) = h[i].get_mut(usize::from(b)) else {
                        return Err(format!("bucket {b} outside the histogram"));
                    };
                    *count = n;
                }
            }
        }
        Ok(s)
    }
}

impl Series {
    pub(crate) fn new(window: u64, distribution: bool) -> Self {
        let n = usize::try_from(window).unwrap_or(usize::MAX).max(1);
        Series {
            slots: vec![Slot::EMPTY; n],
            hist: distribution.then(|| vec![[0; BUCKETS]; n]),
            latest: None,
        }
    }

    pub(crate) fn is_distribution(&self) -> bool {
        self.hist.is_some()
    }

    fn window(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, second: u64) -> usize {
        // The remainder is below slots.len(), which is a usize.
        (second % self.window()) as usize
    }

    /// The oldest second still held.
    fn oldest(&self) -> u64 {
        self.latest
            .map_or(0, |l| l.saturating_sub(self.window() - 1))
    }

    pub(crate) fn record(&mut self, second: u64, value: f64) {
        self.record_n(second, value, 1);
    }

    /// Adds `n` samples of the same `value` at once (a bucket of another histogram).
    pub(crate) fn record_n(&mut self, second: u64, value: f64, n: u64) {
        if n == 0 || !value.is_finite() || second < self.oldest() {
            return;
        }
        let i = self.index(second);
        let slot = &mut self.slots[i];
        if slot.second != second {
            if slot.second != u64::MAX && slot.second > second {
                return;
            }
            *slot = Slot {
                second,
                ..Slot::EMPTY
            };
            if let Some(h) = &mut self.hist {
                h[i] = [0; BUCKETS];
            }
        }
        slot.sum += value * n as f64;
        slot.count += n;
        slot.min = slot.min.min(value);
        slot.max = slot.max.max(value);
        if let Some(h) = &mut self.hist {
            let b = &mut h[i][histogram::bucket_of(value)];
            *b = b.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
        self.latest = Some(self.latest.map_or(second, |l| l.max(second)));
    }

    /// The statistic over seconds `start..=end`; `None` without samples.
    pub(crate) fn aggregate(&self, start: u64, end: u64, stat: Statistic) -> Option<f64> {
        let latest = self.latest?;
        let start = start.max(self.oldest());
        let end = end.min(latest);
        let mut acc = Slot::EMPTY;
        let mut counts = [0u32; BUCKETS];
        for s in start..=end {
            let i = self.index(s);
            let slot = &self.slots[i];
            if slot.second != s {
                continue;
            }
            acc.sum += slot.sum;
            acc.count += slot.count;
            acc.min = acc.min.min(slot.min);
            acc.max = acc.max.max(slot.max);
            if let Some(h) = &self.hist {
                for (c, x) in counts.iter_mut().zip(h[i].iter()) {
                    *c = c.saturating_add(*x);
                }
            }
        }
        if acc.count == 0 {
            return None;
        }
        Some(match stat {
            Statistic::Average => acc.sum / acc.count as f64,
            Statistic::Sum => acc.sum,
            Statistic::Minimum => acc.min,
            Statistic::Maximum => acc.max,
            Statistic::SampleCount => acc.count as f64,
            Statistic::P50 => histogram::quantile(&counts, 0.50, acc.min, acc.max)?,
            Statistic::P90 => histogram::quantile(&counts, 0.90, acc.min, acc.max)?,
            Statistic::P99 => histogram::quantile(&counts, 0.99, acc.min, acc.max)?,
        })
    }

    pub(crate) fn read(
        &self,
        period: u64,
        stat: Statistic,
        since: u64,
        until: u64,
    ) -> Vec<Datapoint> {
        let Some(latest) = self.latest else {
            return Vec::new();
        };
        let since = since.max(self.oldest());
        let until = until.min(latest);
        let mut out = Vec::new();
        if since > until {
            return out;
        }
        let mut start = since - since % period;
        while start <= until {
            let end = start.saturating_add(period - 1);
            if let Some(value) = self.aggregate(start.max(since), end.min(until), stat) {
                out.push(Datapoint {
                    time: Time::from_millis(start.saturating_mul(1000)),
                    value,
                });
            }
            start = match start.checked_add(period) {
                Some(s) => s,
                None => break,
            };
        }
        out
    }
}
