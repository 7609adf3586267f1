//! The scenario file's schema, with the config's decoding helpers (every problem at its
//! FILE:LINE:COL).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{Change, Event, EventKind, InstanceModel, Scenario, Traffic};
use crate::decode::{Ctx, Tbl, Val};

/// Longest run: a month of seconds.
const MAX_DURATION: Duration = Duration::from_secs(31 * 86_400);
/// Monday 2024-01-01 00:00 UTC.
const DEFAULT_START: i64 = 1_704_067_200;

pub(super) fn decode(ctx: &mut Ctx, root: &Val<'_>, path: &Path) -> Option<Scenario> {
    let keys = [
        "config", "group", "duration", "seed", "slo_p99", "start", "warm", "traffic", "instance",
        "events",
    ];
    let t = ctx.table(root, String::new(), &keys)?;
    let config = t.opt(ctx, "config", Ctx::path);
    let group = t.opt(ctx, "group", Ctx::nonempty);
    let duration = t.req(ctx, "duration", |ctx, v| {
        let d = ctx.positive_duration(v, "duration")?;
        if d > MAX_DURATION {
            ctx.err(v.span(), "duration must be at most 31 days");
            return None;
        }
        Some(d)
    });
    let seed = t
        .opt(ctx, "seed", |c, v| c.int_in(v, "seed", 0..=i64::MAX))
        .map_or(1, |s| s as u64);
    let slo_p99 = t
        .opt(ctx, "slo_p99", |c, v| c.positive_duration(v, "slo_p99"))
        .unwrap_or(Duration::from_millis(250));
    let start = t
        .opt(ctx, "start", |ctx, v| {
            let s = ctx.string(v)?;
            match s.parse::<jiff::Timestamp>() {
                Ok(ts) => Some(ts.as_second()),
                Err(e) => {
                    ctx.err(v.span(), format!("start must be an RFC 3339 time: {e}"));
                    None
                }
            }
        })
        .unwrap_or(DEFAULT_START);
    let warm = t.opt(ctx, "warm", Ctx::boolean).unwrap_or(true);
    let traffic = t.req(ctx, "traffic", |c, v| traffic(c, v, t.child("traffic")));
    let instance = t.req(ctx, "instance", |c, v| instance(c, v, t.child("instance")));
    let events = events(ctx, &t);
    let duration = duration?;
    check_times(ctx, &t, duration, instance.as_ref(), &events);
    Some(Scenario {
        path: path.to_path_buf(),
        config,
        group,
        duration,
        seed,
        slo_p99,
        warm,
        start,
        traffic: traffic?,
        instance: instance?,
        events: events.into_iter().map(|(e, _)| e).collect(),
    })
}

/// A number ≥ 0 (rates, levels, shares).
fn non_negative(ctx: &mut Ctx, v: &Val<'_>, what: &str) -> Option<f64> {
    let x = ctx.number(v)?;
    if !(x.is_finite() && x >= 0.0) {
        ctx.err(v.span(), format!("{what} must be 0 or more, found {x}"));
        return None;
    }
    Some(x)
}

fn traffic(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<Traffic> {
    let keys = [
        "base",
        "csv",
        "csv_interval",
        "daily_amplitude",
        "peak_hour",
        "weekend_factor",
        "noise",
        "changes",
    ];
    let t = ctx.table(v, path, &keys)?;
    let base = t.opt(ctx, "base", |c, v| {
        non_negative(c, v, "base (requests per second)")
    });
    let csv = t.opt(ctx, "csv", |ctx, v| {
        let p = ctx.path(v)?;
        read_csv(ctx, v, &p)
    });
    if base.is_none() && csv.is_none() && t.get("base").is_none() && t.get("csv").is_none() {
        ctx.err(
            t.span.clone(),
            "[traffic] needs `base` (requests per second) or `csv`",
        );
    }
    let share = |name: &'static str, max: f64| {
        move |ctx: &mut Ctx, v: &Val<'_>| {
            let x = non_negative(ctx, v, name)?;
            if x > max {
                ctx.err(v.span(), format!("{name} must be at most {max}, found {x}"));
                return None;
            }
            Some(x)
        }
    };
    let changes = changes(ctx, &t);
    Some(Traffic {
        base: base.unwrap_or(0.0),
        csv,
        csv_interval: t
            .opt(ctx, "csv_interval", |c, v| {
                c.positive_duration(v, "csv_interval")
            })
            .unwrap_or(Duration::from_secs(1)),
        daily_amplitude: t
            .opt(ctx, "daily_amplitude", share("daily_amplitude", 1.0))
            .unwrap_or(0.0),
        peak_hour: t
            .opt(ctx, "peak_hour", share("peak_hour", 24.0))
            .unwrap_or(14.0),
        weekend_factor: t
            .opt(ctx, "weekend_factor", share("weekend_factor", 10.0))
            .unwrap_or(1.0),
        noise: t.opt(ctx, "noise", share("noise", 1.0)).unwrap_or(0.0),
        changes,
    })
}

/// One requests-per-second value per line; a bad line is reported with its line number.
fn read_csv(ctx: &mut Ctx, v: &Val<'_>, p: &Path) -> Option<Vec<f64>> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) => {
            ctx.err(v.span(), format!("cannot read {}: {e}", p.display()));
            return None;
        }
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let cell = line.split(',').next_back().unwrap_or("").trim();
        if cell.is_empty() || (i == 0 && cell.parse::<f64>().is_err()) {
            continue; // blank line or header
        }
        match cell.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => out.push(x),
            _ => {
                let msg = format!(
                    "{}:{}: `{cell}` is not a rate of 0 or more requests per second",
                    p.display(),
                    i + 1
                );
                ctx.err(v.span(), msg);
                return None;
            }
        }
    }
    if out.is_empty() {
        ctx.err(v.span(), format!("{} holds no rates", p.display()));
        return None;
    }
    Some(out)
}

fn changes(ctx: &mut Ctx, t: &Tbl<'_, '_>) -> Vec<Change> {
    let Some(items) = t.opt(ctx, "changes", Ctx::array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", t.child("changes"));
        let keys = ["type", "at", "to", "over", "for", "factor"];
        let Some(c) = ctx.table(item, path, &keys) else {
            continue;
        };
        let kinds = [("step", 0), ("ramp", 1), ("spike", 2)];
        let kind = c.req(ctx, "type", |x, v| x.choice(v, "change type", &kinds));
        let at = c.req(ctx, "at", Ctx::duration);
        let change = match kind {
            Some(0) => c
                .req(ctx, "to", |x, v| non_negative(x, v, "to"))
                .zip(at)
                .map(|(to, at)| Change::Step { at, to }),
            Some(1) => {
                let over = c.req(ctx, "over", |x, v| x.positive_duration(v, "over"));
                let to = c.req(ctx, "to", |x, v| non_negative(x, v, "to"));
                match (at, over, to) {
                    (Some(at), Some(over), Some(to)) => Some(Change::Ramp { at, over, to }),
                    _ => None,
                }
            }
            Some(_) => {
                let duration = c.req(ctx, "for", |x, v| x.positive_duration(v, "for"));
                let factor = c.req(ctx, "factor", |x, v| non_negative(x, v, "factor"));
                match (at, duration, factor) {
                    (Some(at), Some(duration), Some(factor)) => Some(Change::Spike {
                        at,
                        duration,
                        factor,
                    }),
                    _ => None,
                }
            }
            None => None,
        };
        out.extend(change);
    }
    out
}

fn instance(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<InstanceModel> {
    let keys = [
        "boot_time",
        "boot_jitter",
        "capacity",
        "capacity_by_type",
        "base_latency",
        "crash_rate",
    ];
    let t = ctx.table(v, path, &keys)?;
    let capacity = t.req(ctx, "capacity", positive_capacity);
    let mut capacity_by_type = BTreeMap::new();
    if let Some(v) = t.get("capacity_by_type") {
        if let Some(types) = ctx.free_table(v, t.child("capacity_by_type")) {
            for (name, value) in types.map.iter() {
                if let Some(x) = positive_capacity(ctx, value) {
                    capacity_by_type.insert(name.get_ref().to_string(), x);
                }
            }
        }
    }
    Some(InstanceModel {
        boot_time: t
            .opt(ctx, "boot_time", Ctx::duration)
            .unwrap_or(Duration::from_secs(30)),
        boot_jitter: t.opt(ctx, "boot_jitter", Ctx::duration).unwrap_or_default(),
        capacity: capacity?,
        capacity_by_type,
        base_latency: t
            .opt(ctx, "base_latency", Ctx::duration)
            .unwrap_or(Duration::from_millis(20)),
        crash_rate: t
            .opt(ctx, "crash_rate", |c, v| {
                non_negative(c, v, "crash_rate (per instance-hour)")
            })
            .unwrap_or(0.0),
    })
}

/// Requests per second at 100 % CPU: above 0.
fn positive_capacity(ctx: &mut Ctx, v: &Val<'_>) -> Option<f64> {
    let x = ctx.number(v)?;
    if !(x.is_finite() && x > 0.0) {
        let msg = format!("capacity (requests per second at 100 % CPU) must be above 0, found {x}");
        ctx.err(v.span(), msg);
        return None;
    }
    Some(x)
}

fn events(ctx: &mut Ctx, t: &Tbl<'_, '_>) -> Vec<(Event, crate::decode::Span)> {
    let Some(items) = t.opt(ctx, "events", Ctx::array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", t.child("events"));
        let keys = ["type", "at", "zone", "for", "count"];
        let Some(e) = ctx.table(item, path, &keys) else {
            continue;
        };
        let types = [("zone_outage", 0), ("spot_interruption", 1), ("refresh", 2)];
        let ty = e.req(ctx, "type", |c, v| c.choice(v, "event type", &types));
        let at = e.req(ctx, "at", Ctx::duration);
        let kind = match ty {
            Some(0) => {
                let zone = e.req(ctx, "zone", Ctx::nonempty);
                let duration = e.req(ctx, "for", |c, v| c.positive_duration(v, "for"));
                zone.zip(duration)
                    .map(|(zone, duration)| EventKind::ZoneOutage { zone, duration })
            }
            Some(1) => {
                let count = e.opt(ctx, "count", |c, v| c.u32(v, "count")).unwrap_or(1);
                Some(EventKind::SpotInterruption { count })
            }
            Some(_) => Some(EventKind::Refresh),
            None => None,
        };
        if let (Some(at), Some(kind)) = (at, kind) {
            out.push((Event { at, kind }, item.span()));
        }
    }
    out
}

/// What cannot happen inside the run: a boot longer than the run, events or changes after it.
fn check_times(
    ctx: &mut Ctx,
    t: &Tbl<'_, '_>,
    duration: Duration,
    instance: Option<&InstanceModel>,
    events: &[(Event, crate::decode::Span)],
) {
    let secs = |d: Duration| humantime::format_duration(d).to_string();
    if let Some(i) = instance {
        if i.boot_time + i.boot_jitter >= duration {
            let at = t
                .get("instance")
                .and_then(|v| v.get_ref().get("boot_time"))
                .map_or(t.span.clone(), |v| v.span());
            ctx.err(
                at,
                format!(
                    "impossible scenario: an instance boots in up to {} but the run lasts {}",
                    secs(i.boot_time + i.boot_jitter),
                    secs(duration)
                ),
            );
        }
        if i.boot_jitter > i.boot_time {
            let at = t.get("instance").map_or(t.span.clone(), |v| v.span());
            ctx.err(
                at,
                "boot_jitter must not exceed boot_time (boot times would be negative)",
            );
        }
    }
    for (e, span) in events {
        if e.at >= duration {
            ctx.err(
                span.clone(),
                format!(
                    "impossible scenario: the event at {} is after the run ends",
                    secs(e.at)
                ),
            );
        }
    }
}
