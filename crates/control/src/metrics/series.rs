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

/// Seconds per page: a series takes its memory a page at a time, as seconds arrive, so a
/// short-lived one (an instance that lived a minute) never holds an hour.
const PAGE: usize = 64;

/// `PAGE` consecutive slots of the ring and, for a distribution, their histograms.
#[derive(Clone, Debug)]
struct Page {
    slots: [Slot; PAGE],
    hist: Option<Box<[Counts; PAGE]>>,
}

impl Page {
    fn new(distribution: bool) -> Box<Page> {
        Box::new(Page {
            slots: [Slot::EMPTY; PAGE],
            hist: distribution.then(|| Box::new([[0; BUCKETS]; PAGE])),
        })
    }
}

/// A fixed-size ring buffer of per-second slots (plus histograms for distributions), in
/// pages allocated on first use.
///
/// Serialised (for a hot upgrade's hand-over) as its held slots only, each histogram as its
/// non-zero buckets ([`SeriesWire`]): an hour of mostly empty slots and mostly zero buckets
/// would otherwise be megabytes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(into = "SeriesWire", try_from = "SeriesWire")]
pub(crate) struct Series {
    window: usize,
    distribution: bool,
    pages: Vec<Option<Box<Page>>>,
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
        let held = (0..s.window)
            .filter_map(|i| {
                let (slot, hist) = s.slot(i)?;
                let buckets = hist.map_or_else(Vec::new, |h| {
                    h.iter()
                        .enumerate()
                        .filter(|(_, n)| **n != 0)
                        .map(|(b, n)| (u8::try_from(b).unwrap_or(u8::MAX), *n))
                        .collect()
                });
                Some((i, *slot, buckets))
            })
            .collect();
        SeriesWire {
            window: s.window,
            distribution: s.distribution,
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
            if i >= s.window {
                return Err(format!("slot {i} outside a window of {}", w.window));
            }
            let (target, hist) = s.slot_mut(i);
            *target = slot;
            if let Some(h) = hist {
                for (b, n) in buckets {
                    let Some(count) = h.get_mut(usize::from(b)) else {
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
        let window = usize::try_from(window).unwrap_or(usize::MAX).max(1);
        Series {
            window,
            distribution,
            pages: vec![None; window.div_ceil(PAGE)],
            latest: None,
        }
    }

    pub(crate) fn is_distribution(&self) -> bool {
        self.distribution
    }

    fn window(&self) -> u64 {
        self.window as u64
    }

    /// Ring slot `i` and its histogram, when its page was ever written.
    fn slot(&self, i: usize) -> Option<(&Slot, Option<&Counts>)> {
        let page = self.pages.get(i / PAGE)?.as_deref()?;
        let k = i % PAGE;
        let slot = &page.slots[k];
        (slot.second != u64::MAX).then(|| (slot, page.hist.as_ref().map(|h| &h[k])))
    }

    /// Ring slot `i` (below the window) and its histogram, its page allocated if need be.
    fn slot_mut(&mut self, i: usize) -> (&mut Slot, Option<&mut Counts>) {
        let distribution = self.distribution;
        let page = self.pages[i / PAGE].get_or_insert_with(|| Page::new(distribution));
        let k = i % PAGE;
        (&mut page.slots[k], page.hist.as_mut().map(|h| &mut h[k]))
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
        let (slot, mut hist) = self.slot_mut(i);
        if slot.second != second {
            if slot.second != u64::MAX && slot.second > second {
                return;
            }
            *slot = Slot {
                second,
                ..Slot::EMPTY
            };
            if let Some(h) = hist.as_deref_mut() {
                *h = [0; BUCKETS];
            }
        }
        slot.sum += value * n as f64;
        slot.count += n;
        slot.min = slot.min.min(value);
        slot.max = slot.max.max(value);
        if let Some(h) = hist {
            let b = &mut h[histogram::bucket_of(value)];
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
            let Some((slot, hist)) = self.slot(self.index(s)) else {
                continue;
            };
            if slot.second != s {
                continue;
            }
            acc.sum += slot.sum;
            acc.count += slot.count;
            acc.min = acc.min.min(slot.min);
            acc.max = acc.max.max(slot.max);
            if let Some(h) = hist {
                for (c, x) in counts.iter_mut().zip(h.iter()) {
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
