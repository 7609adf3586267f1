//! A group's load, hour by hour (by the wall clock, in whole UTC hours since the Unix epoch):
//! what predictive scaling learns from. At most two weeks are kept, as AWS uses at most 14
//! days of history.

use std::collections::BTreeMap;

/// Hours of history kept: 14 days.
pub const KEPT_HOURS: i64 = 14 * 24;

/// One hour's mean load, as the state store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadHour {
    /// Whole hours since the Unix epoch (UTC).
    pub hour: i64,
    /// The mean load over the seconds measured in it.
    pub mean: f64,
    /// How many seconds were measured.
    pub samples: u32,
}

/// The hourly means, and the hour being measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct LoadHistory {
    done: BTreeMap<i64, LoadHour>,
    /// The current hour: (hour, sum, samples).
    current: Option<(i64, f64, u32)>,
}

impl LoadHistory {
    /// Adds one second's `load` at `second` (Unix seconds); returns the hour it completed,
    /// if this sample is the first of a new hour.
    pub(crate) fn record(&mut self, second: i64, load: f64) -> Option<LoadHour> {
        let hour = second.div_euclid(3600);
        let mut finished = None;
        match &mut self.current {
            Some((h, sum, n)) if *h == hour => {
                *sum += load;
                *n += 1;
                return None;
            }
            Some((h, sum, n)) if *h < hour && *n > 0 => {
                let done = LoadHour {
                    hour: *h,
                    mean: *sum / f64::from(*n),
                    samples: *n,
                };
                self.insert(done);
                finished = Some(done);
            }
            Some((h, _, _)) if *h > hour => return None, // the wall clock stepped back
            _ => {}
        }
        self.current = Some((hour, load, 1));
        finished
    }

    /// Takes back hours an earlier run measured (a restart).
    pub(crate) fn restore(&mut self, hours: impl IntoIterator<Item = LoadHour>) {
        for h in hours {
            self.insert(h);
        }
    }

    fn insert(&mut self, h: LoadHour) {
        self.done.insert(h.hour, h);
        let newest = self.done.keys().next_back().copied().unwrap_or(h.hour);
        while self
            .done
            .keys()
            .next()
            .is_some_and(|&old| old <= newest - KEPT_HOURS)
        {
            self.done.pop_first();
        }
    }

    /// Complete hours' means, by hour.
    pub(crate) fn means(&self) -> BTreeMap<i64, f64> {
        self.done.iter().map(|(h, l)| (*h, l.mean)).collect()
    }

    /// Every complete hour, oldest first.
    pub(crate) fn hours(&self) -> impl Iterator<Item = &LoadHour> + '_ {
        self.done.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_hourly_means_and_two_weeks_are_kept() {
        let mut h = LoadHistory::default();
        assert_eq!(h.record(0, 10.0), None);
        assert_eq!(h.record(1, 20.0), None);
        let done = h.record(3600, 5.0).expect("hour 0 done");
        assert_eq!((done.hour, done.mean, done.samples), (0, 15.0, 2));
        assert_eq!(h.record(3599, 1.0), None, "a step back is ignored");
        for hour in 1..(KEPT_HOURS + 10) {
            h.record(hour * 3600 + 3600, 1.0);
        }
        assert_eq!(h.hours().count() as i64, KEPT_HOURS);
        assert_eq!(h.means().keys().next(), Some(&10), "hours 10 to 345 kept");
    }
}
