//! Five-field cron expressions (`minute hour day-of-month month day-of-week`) for scheduled
//! actions, with `*`, lists, ranges, steps and month/weekday names.

use std::fmt;
use std::str::FromStr;

/// A parsed cron expression: one bit set per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Both day fields restricted: cron then matches a day if either matches.
    dom_restricted: bool,
    dow_restricted: bool,
    source: String,
}

/// Why a cron expression was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("invalid cron expression {expr:?}: {reason}")]
pub struct CronError {
    /// The expression.
    pub expr: String,
    /// What is wrong with it.
    pub reason: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn parse_value(s: &str, names: &[&str], offset: u32) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let lower = s.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + offset)
}

/// Parses one field into a bit set over `min..=max`.
fn parse_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    offset: u32,
) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step {s:?}"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(a, names, offset).ok_or_else(|| format!("bad value {a:?}"))?;
            let b = parse_value(b, names, offset).ok_or_else(|| format!("bad value {b:?}"))?;
            (a, b)
        } else {
            let v =
                parse_value(range, names, offset).ok_or_else(|| format!("bad value {range:?}"))?;
            // `5/15` means from 5 to the end in steps of 15.
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{range:?} is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CronError {
            expr: expr.to_string(),
            reason,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [mi, h, dom, mon, dow] = fields[..] else {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let minutes = parse_field(mi, 0, 59, &[], 0).map_err(|e| err(format!("minute: {e}")))?;
        let hours = parse_field(h, 0, 23, &[], 0).map_err(|e| err(format!("hour: {e}")))?;
        let days_of_month =
            parse_field(dom, 1, 31, &[], 0).map_err(|e| err(format!("day of month: {e}")))?;
        let months = parse_field(mon, 1, 12, &MONTHS, 1).map_err(|e| err(format!("month: {e}")))?;
        let mut days_of_week =
            parse_field(dow, 0, 7, &DAYS, 0).map_err(|e| err(format!("day of week: {e}")))?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_restricted: !dom.starts_with('*'),
            dow_restricted: !dow.starts_with('*'),
            source: expr.to_string(),
        })
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Cron {
    pub(crate) fn month_matches(&self, month: u32) -> bool {
        self.months & (1 << month) != 0
    }

    /// Day matching with cron's rule: when both day fields are restricted, either may match.
    pub(crate) fn day_matches(&self, dom: u32, dow_sunday_zero: u32) -> bool {
        let d = self.days_of_month & (1 << dom) != 0;
        let w = self.days_of_week & (1 << dow_sunday_zero) != 0;
        if self.dom_restricted && self.dow_restricted {
            d || w
        } else {
            d && w
        }
    }

    pub(crate) fn hour_matches(&self, hour: u32) -> bool {
        self.hours & (1 << hour) != 0
    }

    pub(crate) fn minute_matches(&self, minute: u32) -> bool {
        self.minutes & (1 << minute) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let c: Cron = "*/15 8-10,20 * jan-mar mon-fri".parse().unwrap();
        assert!(c.minute_matches(0) && c.minute_matches(45) && !c.minute_matches(10));
        assert!(c.hour_matches(9) && c.hour_matches(20) && !c.hour_matches(11));
        assert!(c.month_matches(2) && !c.month_matches(4));
        assert!(c.day_matches(17, 1) && !c.day_matches(17, 0));
        let c: Cron = "0 0 1 * 0".parse().unwrap();
        assert!(c.day_matches(1, 3), "either day field matches");
        assert!(c.day_matches(9, 0));
        assert!(!c.day_matches(9, 3));
        let c: Cron = "5/20 * * * 7".parse().unwrap();
        assert!(c.minute_matches(25) && !c.minute_matches(0));
        assert!(c.day_matches(3, 0), "7 is Sunday");
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "x * * * *",
            "5-3 * * * *",
        ] {
            assert!(bad.parse::<Cron>().is_err(), "{bad}");
        }
    }
}
