//! `type = "predictive"` scaling policies (AWS `PredictiveScalingConfiguration`).

use std::time::Duration;

use flotilla_control::metrics::Metric;
use flotilla_control::policy::predictive::{MaxCapacityBreach, PredictiveMode};
use flotilla_control::policy::PredictiveSpec;

use super::{Ctx, Tbl};

/// The keys of a predictive policy besides `name` and `type`.
pub(crate) const KEYS: &[&str] = &[
    "metric",
    "target_value",
    "mode",
    "scheduling_buffer_time",
    "max_capacity_breach_behavior",
    "max_capacity_buffer",
];

/// Longest scheduling buffer (AWS: 3600 s).
const MAX_BUFFER: Duration = Duration::from_secs(3600);

pub(crate) fn decode(
    ctx: &mut Ctx,
    t: &Tbl<'_, '_>,
    name: Option<String>,
) -> Option<PredictiveSpec> {
    let metrics = [
        ("request_count", Metric::RequestCount),
        ("cpu_utilization", Metric::CpuUtilization),
    ];
    let metric = t.req(ctx, "metric", |c, v| {
        c.choice(v, "predictive scaling load metric", &metrics)
    });
    let target_value = t.req(ctx, "target_value", |ctx, v| {
        let x = ctx.number(v)?;
        if !(x > 0.0 && x.is_finite()) {
            ctx.err(
                v.span(),
                "target_value (the load one instance carries) must be greater than zero",
            );
            return None;
        }
        Some(x)
    });
    let modes = [
        ("forecast_only", PredictiveMode::ForecastOnly),
        ("forecast_and_scale", PredictiveMode::ForecastAndScale),
    ];
    let mode = t
        .opt(ctx, "mode", |c, v| c.choice(v, "mode", &modes))
        .unwrap_or_default();
    let scheduling_buffer_time = t
        .opt(ctx, "scheduling_buffer_time", |ctx, v| {
            let d = ctx.duration(v)?;
            if d > MAX_BUFFER {
                ctx.err(v.span(), "scheduling_buffer_time must be at most 1h");
                return None;
            }
            Some(d)
        })
        .unwrap_or(Duration::from_secs(300));
    let behaviors = [
        ("honor_max_capacity", MaxCapacityBreach::HonorMaxCapacity),
        (
            "increase_max_capacity",
            MaxCapacityBreach::IncreaseMaxCapacity,
        ),
    ];
    let max_capacity_breach_behavior = t
        .opt(ctx, "max_capacity_breach_behavior", |c, v| {
            c.choice(v, "max_capacity_breach_behavior", &behaviors)
        })
        .unwrap_or_default();
    let max_capacity_buffer = t
        .opt(ctx, "max_capacity_buffer", |c, v| {
            c.int_in(v, "max_capacity_buffer", 0..=100)
                .and_then(|n| u32::try_from(n).ok())
        })
        .unwrap_or(0);
    if let Some(v) = t.get("max_capacity_buffer") {
        if max_capacity_breach_behavior != MaxCapacityBreach::IncreaseMaxCapacity {
            ctx.err(
                v.span(),
                "max_capacity_buffer only applies with max_capacity_breach_behavior = \
                 \"increase_max_capacity\"",
            );
        }
    }
    Some(PredictiveSpec {
        name: name?,
        metric: metric?,
        target_value: target_value?,
        mode,
        scheduling_buffer_time,
        max_capacity_breach_behavior,
        max_capacity_buffer,
    })
}
