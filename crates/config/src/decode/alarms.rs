//! Pieces shared by scaling policies: metrics, periods, alarms and step ranges.

use std::time::Duration;

use super::policies::check_adjustment;
use super::{Ctx, Tbl, Val};
use crate::scaling::{AdjustmentType, AlarmSpec, Comparison, MissingData, StepAdjustment};
use flotilla_control::metrics::{Metric, Statistic};

/// The optional `statistic` key of a policy or alarm on `metric` (when that is known), or
/// `default`. Percentiles exist only for distribution metrics: asked of another metric
/// they would never have data, so the policy would never act.
pub(crate) fn statistic(
    ctx: &mut Ctx,
    t: &Tbl<'_, '_>,
    metric: Option<Metric>,
    default: Statistic,
) -> Statistic {
    let Some(v) = t.get("statistic") else {
        return default;
    };
    let opts: Vec<(&str, Statistic)> = Statistic::ALL.iter().map(|s| (s.as_str(), *s)).collect();
    let Some(stat) = ctx.choice(v, "statistic", &opts) else {
        return default;
    };
    if let Some(m) = metric.filter(|m| stat.quantile().is_some() && !m.is_distribution()) {
        let distributions: Vec<&str> = Metric::SCALING
            .iter()
            .filter(|m| m.is_distribution())
            .map(|m| m.as_str())
            .collect();
        ctx.err(
            v.span(),
            format!(
                "statistic `{stat}` needs a distribution metric ({}); `{m}` has none of its \
                 percentiles",
                distributions.join(", ")
            ),
        );
    }
    stat
}

pub(crate) fn metric(ctx: &mut Ctx, v: &Val<'_>) -> Option<Metric> {
    metric_of(ctx, v, &Metric::SCALING)
}

/// A metric name that must be one of `known`.
fn metric_of(ctx: &mut Ctx, v: &Val<'_>, known: &[Metric]) -> Option<Metric> {
    let m = ctx.nonempty(v)?;
    match known.iter().find(|k| k.as_str() == m) {
        Some(k) => Some(*k),
        None => {
            let hint = crate::suggest::hint(&m, known.iter().map(|k| k.as_str()));
            ctx.err(v.span(), format!("unknown metric `{m}`{hint}"));
            None
        }
    }
}

/// A metric period: at least one second and a whole number of seconds.
pub(crate) fn period(ctx: &mut Ctx, v: &Val<'_>) -> Option<Duration> {
    let d = ctx.duration(v)?;
    if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
        ctx.err(
            v.span(),
            "period must be a whole number of seconds, at least 1s",
        );
        return None;
    }
    Some(d)
}

pub(crate) fn decode_steps(
    ctx: &mut Ctx,
    v: &Val<'_>,
    policy: &Tbl<'_, '_>,
    ty: AdjustmentType,
) -> Option<Vec<StepAdjustment>> {
    let items = ctx.array(v)?;
    if items.is_empty() {
        ctx.err(v.span(), "a step policy needs at least one step");
        return None;
    }
    let mut steps: Vec<(StepAdjustment, super::Span)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", policy.child("steps"));
        let Some(s) = ctx.table(item, path, &["lower", "upper", "adjustment"]) else {
            continue;
        };
        let lower = s.opt(ctx, "lower", Ctx::number);
        let upper = s.opt(ctx, "upper", Ctx::number);
        let adjustment = s.req(ctx, "adjustment", |ctx, v| {
            let n = ctx.integer(v)?;
            check_adjustment(ctx, v, n, ty);
            Some(n)
        });
        if let (Some(l), Some(u)) = (lower, upper) {
            if l >= u {
                ctx.err(
                    item.span(),
                    format!("step lower bound ({l}) must be below its upper bound ({u})"),
                );
                continue;
            }
        }
        if let Some(adjustment) = adjustment {
            steps.push((
                StepAdjustment {
                    lower,
                    upper,
                    adjustment,
                },
                item.span(),
            ));
        }
    }
    // AWS: the ranges may neither overlap nor leave gaps.
    let mut sorted: Vec<&(StepAdjustment, super::Span)> = steps.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |s: &StepAdjustment| s.lower.unwrap_or(f64::NEG_INFINITY);
        key(&a.0).total_cmp(&key(&b.0))
    });
    for pair in sorted.windows(2) {
        let (prev, next) = (&pair[0].0, &pair[1]);
        if prev.upper != next.0.lower {
            let fmt = |x: Option<f64>| x.map_or("unbounded".to_string(), |x| x.to_string());
            ctx.err(
                next.1.clone(),
                format!(
                    "step ranges must not overlap or leave gaps: a step ends at {} but the next starts at {}",
                    fmt(prev.upper),
                    fmt(next.0.lower)
                ),
            );
        }
    }
    Some(steps.into_iter().map(|(s, _)| s).collect())
}

pub(crate) fn decode_alarm(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<AlarmSpec> {
    decode_alarm_of(ctx, v, path, &Metric::SCALING)
}

/// An alarm whose metric must be one of `metrics` (a canary rollback watches fewer).
pub(crate) fn decode_alarm_of(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    metrics: &[Metric],
) -> Option<AlarmSpec> {
    let keys = [
        "metric",
        "statistic",
        "period",
        "evaluation_periods",
        "datapoints_to_alarm",
        "comparison",
        "threshold",
        "treat_missing_data",
    ];
    let t = ctx.table(v, path, &keys)?;
    let metric = t.req(ctx, "metric", |c, v| metric_of(c, v, metrics));
    let statistic = statistic(ctx, &t, metric, Statistic::Average);
    let period = t
        .opt(ctx, "period", period)
        .unwrap_or(Duration::from_secs(60));
    let evaluation_periods = t
        .opt(ctx, "evaluation_periods", |c, v| {
            c.int_in(v, "evaluation_periods", 1..=i64::from(u32::MAX))
                .and_then(|n| u32::try_from(n).ok())
        })
        .unwrap_or(1);
    let datapoints_to_alarm = t
        .opt(ctx, "datapoints_to_alarm", |ctx, v| {
            let n = ctx.int_in(v, "datapoints_to_alarm", 1..=i64::from(u32::MAX))?;
            if n > i64::from(evaluation_periods) {
                ctx.err(
                    v.span(),
                    format!("datapoints_to_alarm ({n}) must not exceed evaluation_periods ({evaluation_periods})"),
                );
                return None;
            }
            u32::try_from(n).ok()
        })
        .unwrap_or(evaluation_periods);
    let comparisons = [
        (">", Comparison::GreaterThan),
        (">=", Comparison::GreaterThanOrEqual),
        ("<", Comparison::LessThan),
        ("<=", Comparison::LessThanOrEqual),
    ];
    let comparison = t.req(ctx, "comparison", |c, v| {
        c.choice(v, "comparison", &comparisons)
    });
    let threshold = t.req(ctx, "threshold", Ctx::number);
    let missing = [
        ("missing", MissingData::Missing),
        ("not_breaching", MissingData::NotBreaching),
        ("breaching", MissingData::Breaching),
        ("ignore", MissingData::Ignore),
    ];
    let treat_missing_data = t
        .opt(ctx, "treat_missing_data", |c, v| {
            c.choice(v, "treat_missing_data", &missing)
        })
        .unwrap_or_default();
    Some(AlarmSpec {
        metric: metric?,
        statistic,
        period,
        evaluation_periods,
        datapoints_to_alarm,
        comparison: comparison?,
        threshold: threshold?,
        treat_missing_data,
    })
}
