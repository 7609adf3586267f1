//! Requests per second at each second of the run, from the scenario's traffic.

use flotilla_config::scenario::{Change, Traffic};
use flotilla_control::SplitMix64;

/// Seconds in a day and a week.
const DAY: f64 = 86_400.0;

/// The offered rate at second `t` (from the run's start, whose wall time is `start`).
pub(crate) fn rate(tr: &Traffic, start: i64, t: u64, rng: &mut SplitMix64) -> f64 {
    let secs = t as f64;
    let mut level = match &tr.csv {
        Some(values) => {
            let step = tr.csv_interval.as_secs().max(1);
            values[((t / step) as usize) % values.len()]
        }
        None => tr.base,
    };
    let mut factor = 1.0;
    for c in &tr.changes {
        match *c {
            Change::Step { at, to } if secs >= at.as_secs_f64() => level = to,
            Change::Ramp { at, over, to } if secs >= at.as_secs_f64() => {
                let f = ((secs - at.as_secs_f64()) / over.as_secs_f64()).min(1.0);
                level += (to - level) * f;
            }
            Change::Spike {
                at,
                duration,
                factor: k,
            } if secs >= at.as_secs_f64() && secs < (at + duration).as_secs_f64() => factor *= k,
            _ => {}
        }
    }
    let wall = start as f64 + secs;
    if tr.daily_amplitude > 0.0 {
        let hour = wall.rem_euclid(DAY) / 3600.0;
        let phase = (hour - tr.peak_hour) / 24.0 * std::f64::consts::TAU;
        factor *= 1.0 + tr.daily_amplitude * phase.cos();
    }
    if tr.weekend_factor != 1.0 {
        // 1970-01-01 was a Thursday: day 2 of the week is Saturday.
        let weekday = (wall / DAY).floor().rem_euclid(7.0) as u32;
        if weekday == 2 || weekday == 3 {
            factor *= tr.weekend_factor;
        }
    }
    if tr.noise > 0.0 {
        factor *= 1.0 + tr.noise * (2.0 * rng.unit() - 1.0);
    }
    (level * factor).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn traffic(changes: Vec<Change>) -> Traffic {
        Traffic {
            base: 100.0,
            csv: None,
            csv_interval: Duration::from_secs(1),
            daily_amplitude: 0.0,
            peak_hour: 14.0,
            weekend_factor: 1.0,
            noise: 0.0,
            changes,
        }
    }

    #[test]
    fn steps_ramps_and_spikes() {
        let mut rng = SplitMix64::new(1);
        let s = Duration::from_secs;
        let tr = traffic(vec![
            Change::Step {
                at: s(10),
                to: 200.0,
            },
            Change::Ramp {
                at: s(20),
                over: s(10),
                to: 400.0,
            },
            Change::Spike {
                at: s(40),
                duration: s(5),
                factor: 100.0,
            },
        ]);
        let r = |t| rate(&tr, 0, t, &mut SplitMix64::new(1));
        assert_eq!(r(9), 100.0);
        assert_eq!(r(10), 200.0);
        assert_eq!(r(25), 300.0);
        assert_eq!(r(35), 400.0);
        assert_eq!(r(40), 40_000.0);
        assert_eq!(r(45), 400.0);
        let daily = Traffic {
            daily_amplitude: 0.5,
            ..traffic(Vec::new())
        };
        assert!((rate(&daily, 0, 14 * 3600, &mut rng) - 150.0).abs() < 1e-9);
        assert!((rate(&daily, 0, 2 * 3600, &mut rng) - 50.0).abs() < 1e-9);
    }
}
