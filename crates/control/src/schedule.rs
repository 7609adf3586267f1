//! Scheduled actions (AWS §6.6): set min/max/desired at a time or on a cron recurrence in an
//! IANA time zone.
//!
//! Scheduled actions need wall-clock time (and the zone's rules, from jiff's bundled tz
//! database so no system tzdata is needed). The controller still never reads a clock: the
//! driver passes the wall time in, tests pass any instant they like.

use jiff::civil::{date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::cron::Cron;

/// A scheduled action's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScheduledActionSpec {
    /// Unique within the group; shown in the cause.
    pub name: String,
    /// Recurrence; `None` for a one-off at `start_time`.
    pub recurrence: Option<Cron>,
    /// Zone the recurrence is read in.
    #[serde(with = "jiff::fmt::serde::tz::required")]
    pub time_zone: TimeZone,
    /// First (or only) run.
    pub start_time: Option<Timestamp>,
    /// No runs after this.
    pub end_time: Option<Timestamp>,
    /// New min size, if set.
    pub min_size: Option<u32>,
    /// New max size, if set.
    pub max_size: Option<u32>,
    /// New desired capacity, if set.
    pub desired_capacity: Option<u32>,
}

/// Why a scheduled action could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Unknown IANA zone.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// Bad RFC 3339 timestamp.
    #[error("invalid time {0:?} (expected RFC 3339, e.g. 2026-01-31T08:00:00Z)")]
    Time(String),
    /// Bad cron expression.
    #[error(transparent)]
    Cron(#[from] crate::cron::CronError),
    /// Neither a recurrence nor a start time.
    #[error("scheduled action {0:?} needs a recurrence or a start_time")]
    NeverRuns(String),
}

impl ScheduledActionSpec {
    /// Builds a spec from config strings: cron, IANA zone, RFC 3339 times.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: &str,
        recurrence: Option<&str>,
        time_zone: &str,
        start_time: Option<&str>,
        end_time: Option<&str>,
        min_size: Option<u32>,
        max_size: Option<u32>,
        desired_capacity: Option<u32>,
    ) -> Result<Self, ScheduleError> {
        let spec = ScheduledActionSpec {
            name: name.to_string(),
            recurrence: recurrence.map(str::parse).transpose()?,
            time_zone: parse_time_zone(time_zone)?,
            start_time: start_time.map(parse_time).transpose()?,
            end_time: end_time.map(parse_time).transpose()?,
            min_size,
            max_size,
            desired_capacity,
        };
        if spec.recurrence.is_none() && spec.start_time.is_none() {
            return Err(ScheduleError::NeverRuns(name.into()));
        }
        Ok(spec)
    }

    /// The first run strictly after `after`, or `None` if there is none (one-off passed, or
    /// past `end_time`).
    pub fn next_run_after(&self, after: Timestamp) -> Option<Timestamp> {
        let next = match (&self.recurrence, self.start_time) {
            (None, Some(start)) => (start > after).then_some(start),
            (None, None) => None,
            (Some(cron), start) => {
                // The first run is at start_time (if given), then per cron.
                match start {
                    Some(s) if s > after => Some(s),
                    Some(s) => next_cron(cron, &self.time_zone, after.max(s)),
                    None => next_cron(cron, &self.time_zone, after),
                }
            }
        }?;
        match self.end_time {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// What the action does, for causes: "min 4, desired 4".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.min_size {
            parts.push(format!("min {v}"));
        }
        if let Some(v) = self.max_size {
            parts.push(format!("max {v}"));
        }
        if let Some(v) = self.desired_capacity {
            parts.push(format!("desired {v}"));
        }
        parts.join(", ")
    }
}

/// An IANA time zone by name (from jiff's bundled database), as scheduled actions read their
/// recurrence in; public so config validation refuses exactly what would not run.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.into()))
}

/// An RFC 3339 instant with its UTC offset (`start_time`, `end_time`); public for config
/// validation, like [`parse_time_zone`].
pub fn parse_time(s: &str) -> Result<Timestamp, ScheduleError> {
    s.parse::<Timestamp>()
        .map_err(|_| ScheduleError::Time(s.into()))
}

/// Searches forward at most this many days for a cron match (covers Feb 29 on a weekday).
const MAX_SEARCH_DAYS: i32 = 366 * 8;

/// The next instant strictly after `after` whose local time in `tz` matches `cron`.
fn next_cron(cron: &Cron, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let local = after.to_zoned(tz.clone()).datetime();
    // Start at the next whole minute.
    let mut dt = local
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?
        .checked_add(1.minute())
        .ok()?;
    let mut days = 0;
    loop {
        let month = u32::try_from(dt.month()).ok()?;
        let dom = u32::try_from(dt.day()).ok()?;
        let dow = u32::try_from(dt.weekday().to_sunday_zero_offset()).ok()?;
        if !cron.month_matches(month) || !cron.day_matches(dom, dow) {
            days += 1;
            if days > MAX_SEARCH_DAYS {
                return None;
            }
            dt = next_day(dt)?;
            continue;
        }
        let hour = u32::try_from(dt.hour()).ok()?;
        if !cron.hour_matches(hour) {
            dt = dt
                .with()
                .minute(0)
                .build()
                .ok()?
                .checked_add(1.hour())
                .ok()?;
            continue;
        }
        let minute = u32::try_from(dt.minute()).ok()?;
        if !cron.minute_matches(minute) {
            dt = dt.checked_add(1.minute()).ok()?;
            continue;
        }
        // A local time skipped by a DST gap runs at the first instant after the gap.
        let ts = tz.to_ambiguous_zoned(dt).compatible().ok()?.timestamp();
        if ts > after {
            return Some(ts);
        }
        dt = dt.checked_add(1.minute()).ok()?;
    }
}

fn next_day(dt: DateTime) -> Option<DateTime> {
    let d = dt.date().tomorrow().ok()?;
    Some(date(d.year(), d.month(), d.day()).at(0, 0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn cron_in_a_time_zone() {
        // 08:00 in Seoul (UTC+9) is 23:00 UTC the day before.
        let a = ScheduledActionSpec::parse(
            "morning-rush",
            Some("0 8 * * *"),
            "Asia/Seoul",
            None,
            None,
            Some(4),
            None,
            Some(4),
        )
        .unwrap();
        assert_eq!(
            a.next_run_after(ts("2026-03-02T12:00:00Z")),
            Some(ts("2026-03-02T23:00:00Z"))
        );
        assert_eq!(
            a.next_run_after(ts("2026-03-02T23:00:00Z")),
            Some(ts("2026-03-03T23:00:00Z")),
            "strictly after"
        );
        assert_eq!(a.describe(), "min 4, desired 4");
    }

    #[test]
    fn dst_is_followed() {
        // New York: 09:00 is 14:00 UTC in winter, 13:00 UTC after the March 8 2026 change.
        let a = ScheduledActionSpec::parse(
            "weekday",
            Some("0 9 * * mon-fri"),
            "America/New_York",
            None,
            None,
            None,
            None,
            Some(3),
        )
        .unwrap();
        assert_eq!(
            a.next_run_after(ts("2026-03-06T15:00:00Z")),
            Some(ts("2026-03-09T13:00:00Z")),
            "skips the weekend, then summer time"
        );
        assert_eq!(
            a.next_run_after(ts("2026-03-05T12:00:00Z")),
            Some(ts("2026-03-05T14:00:00Z"))
        );
    }

    #[test]
    fn one_off_start_and_end() {
        let once = ScheduledActionSpec::parse(
            "launch-day",
            None,
            "UTC",
            Some("2026-05-01T10:00:00Z"),
            None,
            None,
            Some(10),
            Some(8),
        )
        .unwrap();
        assert_eq!(
            once.next_run_after(ts("2026-04-30T00:00:00Z")),
            Some(ts("2026-05-01T10:00:00Z"))
        );
        assert_eq!(once.next_run_after(ts("2026-05-01T10:00:00Z")), None);
        let bounded = ScheduledActionSpec::parse(
            "hourly",
            Some("30 * * * *"),
            "UTC",
            Some("2026-05-01T10:00:00Z"),
            Some("2026-05-01T11:45:00Z"),
            None,
            None,
            Some(2),
        )
        .unwrap();
        let first = bounded.next_run_after(ts("2026-05-01T00:00:00Z"));
        assert_eq!(
            first,
            Some(ts("2026-05-01T10:00:00Z")),
            "first run at start_time"
        );
        assert_eq!(
            bounded.next_run_after(ts("2026-05-01T10:00:00Z")),
            Some(ts("2026-05-01T10:30:00Z"))
        );
        assert_eq!(
            bounded.next_run_after(ts("2026-05-01T11:30:00Z")),
            None,
            "12:30 is past end_time"
        );
    }

    #[test]
    fn bad_specs() {
        assert!(matches!(
            ScheduledActionSpec::parse(
                "x",
                Some("0 8 * * *"),
                "Mars/Olympus",
                None,
                None,
                None,
                None,
                None
            ),
            Err(ScheduleError::TimeZone(_))
        ));
        assert!(matches!(
            ScheduledActionSpec::parse("x", None, "UTC", Some("yesterday"), None, None, None, None),
            Err(ScheduleError::Time(_))
        ));
        assert!(matches!(
            ScheduledActionSpec::parse("x", None, "UTC", None, None, None, None, None),
            Err(ScheduleError::NeverRuns(_))
        ));
        // Feb 30 never happens.
        let never = ScheduledActionSpec::parse(
            "x",
            Some("0 0 30 2 *"),
            "UTC",
            None,
            None,
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(never.next_run_after(ts("2026-01-01T00:00:00Z")), None);
    }
}
