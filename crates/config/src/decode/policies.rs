//! `[auto_scaling_groups.NAME]` with its scaling policies and scheduled actions.

use std::time::Duration;

use flotilla_control::metrics::{Metric, Statistic};

use super::alarms::{decode_alarm, decode_steps, metric, period, statistic};
use super::{Ctx, RefKind, Reference, Tbl, Val};
use crate::scaling::{
    AdjustmentType, AutoScalingGroupConfig, HealthCheckType, InstanceRefreshSettings,
    ScalingPolicy, ScheduledActionSpec, SimpleSpec, StepSpec, TargetTrackingSpec,
    TerminationPolicy,
};

pub(crate) fn decode_group(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    cluster_zones: &[String],
) -> Option<AutoScalingGroupConfig> {
    let keys = [
        "launch_template",
        "target_groups",
        "zones",
        "min_size",
        "max_size",
        "desired_capacity",
        "health_check_type",
        "health_check_grace_period",
        "default_instance_warmup",
        "default_cooldown",
        "termination_policies",
        "new_instances_protected_from_scale_in",
        "scaling_policies",
        "scheduled_actions",
        "lifecycle_hooks",
        "warm_pool",
        "instance_refresh",
        "instances_distribution",
    ];
    let t = ctx.table(v, path, &keys)?;
    let launch_template = t.req(ctx, "launch_template", |ctx, v| {
        let name = ctx.nonempty(v)?;
        ctx.refs.push(Reference {
            kind: RefKind::LaunchTemplate,
            name: name.clone(),
            span: v.span(),
        });
        Some(name)
    });
    let target_groups = t
        .opt(ctx, "target_groups", |ctx, v| {
            let names = ctx.distinct_names(v, "target group")?;
            for (name, span) in &names {
                ctx.refs.push(Reference {
                    kind: RefKind::TargetGroup,
                    name: name.clone(),
                    span: span.clone(),
                });
            }
            Some(names.into_iter().map(|(s, _)| s).collect())
        })
        .unwrap_or_default();
    let zones = t
        .opt(ctx, "zones", |ctx, v| {
            let names = ctx.distinct_names(v, "zone")?;
            if names.is_empty() {
                ctx.err(v.span(), "zones must list at least one zone");
                return None;
            }
            for (name, span) in &names {
                ctx.refs.push(Reference {
                    kind: RefKind::Zone,
                    name: name.clone(),
                    span: span.clone(),
                });
            }
            Some(names.into_iter().map(|(s, _)| s).collect())
        })
        .unwrap_or_else(|| cluster_zones.to_vec());
    let min_size = t.req(ctx, "min_size", |c, v| c.u32(v, "min_size"));
    let max_size = t.req(ctx, "max_size", |c, v| c.u32(v, "max_size"));
    let desired = t.opt(ctx, "desired_capacity", |c, v| c.u32(v, "desired_capacity"));
    if let (Some(min), Some(max)) = (min_size, max_size) {
        if min > max {
            let at = t.get("min_size").map_or(t.span.clone(), |v| v.span());
            ctx.err(
                at,
                format!("min_size ({min}) must not be greater than max_size ({max})"),
            );
        } else if let (Some(d), Some(dv)) = (desired, t.get("desired_capacity")) {
            if d < min || d > max {
                ctx.err(
                    dv.span(),
                    format!("desired_capacity ({d}) must be between min_size ({min}) and max_size ({max})"),
                );
            }
        }
    }
    let hc_types = [
        ("process", HealthCheckType::Process),
        ("elb", HealthCheckType::Elb),
    ];
    let health_check_type = t
        .opt(ctx, "health_check_type", |c, v| {
            c.choice(v, "health_check_type", &hc_types)
        })
        .unwrap_or_default();
    let health_check_grace_period = t
        .opt(ctx, "health_check_grace_period", Ctx::duration)
        .unwrap_or(Duration::from_secs(30));
    let default_instance_warmup = t.opt(ctx, "default_instance_warmup", Ctx::duration);
    let default_cooldown = t
        .opt(ctx, "default_cooldown", Ctx::duration)
        .unwrap_or(Duration::from_secs(300));
    let termination_policies = t
        .opt(ctx, "termination_policies", decode_termination)
        .unwrap_or_else(|| vec![TerminationPolicy::Default]);
    let new_instances_protected_from_scale_in = t
        .opt(ctx, "new_instances_protected_from_scale_in", Ctx::boolean)
        .unwrap_or(false);
    let scaling_policies = decode_list(ctx, &t, "scaling_policies", decode_policy);
    let scheduled_actions = decode_list(ctx, &t, "scheduled_actions", decode_scheduled);
    let lifecycle_hooks = decode_list(ctx, &t, "lifecycle_hooks", super::lifecycle::decode_hook);
    let wp_path = t.child("warm_pool");
    let warm_pool = t.opt(ctx, "warm_pool", |ctx, v| {
        super::lifecycle::decode_warm_pool(ctx, v, wp_path)
    });
    let ir_path = t.child("instance_refresh");
    let instance_refresh = t
        .opt(ctx, "instance_refresh", |ctx, v| {
            decode_instance_refresh(ctx, v, ir_path)
        })
        .unwrap_or_default();
    let id_path = t.child("instances_distribution");
    let instances_distribution = t.opt(ctx, "instances_distribution", |ctx, v| {
        super::purchase::decode_distribution(ctx, v, id_path)
    });
    if let (Some(_), Some(_), Some(v)) = (
        &instances_distribution,
        &warm_pool,
        t.get("instances_distribution"),
    ) {
        ctx.err(
            v.span(),
            "a group with a warm_pool cannot have instances_distribution (as in AWS: warm \
             pools do not support mixed instances or Spot)",
        );
    }
    let min_size = min_size?;
    Some(AutoScalingGroupConfig {
        launch_template: launch_template?,
        target_groups,
        zones,
        min_size,
        max_size: max_size?,
        desired_capacity: desired.unwrap_or(min_size),
        health_check_type,
        health_check_grace_period,
        default_instance_warmup,
        default_cooldown,
        termination_policies,
        new_instances_protected_from_scale_in,
        scaling_policies,
        scheduled_actions,
        instance_refresh,
        lifecycle_hooks,
        warm_pool,
        instances_distribution,
    })
}

fn decode_instance_refresh(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
) -> Option<InstanceRefreshSettings> {
    let keys = [
        "on_launch_template_change",
        "min_healthy_percentage",
        "instance_warmup",
        "checkpoint_percentages",
        "checkpoint_delay",
        "auto_rollback",
    ];
    let t = ctx.table(v, path, &keys)?;
    let d = InstanceRefreshSettings::default();
    let checkpoint_percentages = t
        .opt(ctx, "checkpoint_percentages", |ctx, v| {
            let mut out: Vec<u32> = Vec::new();
            for item in ctx.array(v)? {
                let p = ctx.int_in(item, "a checkpoint percentage", 1..=100)?;
                let p = u32::try_from(p).ok()?;
                if out.last().is_some_and(|&last| last >= p) {
                    ctx.err(
                        item.span(),
                        "checkpoint_percentages must be in ascending order, without repeats",
                    );
                }
                out.push(p);
            }
            Some(out)
        })
        .unwrap_or_default();
    Some(InstanceRefreshSettings {
        on_launch_template_change: t
            .opt(ctx, "on_launch_template_change", Ctx::boolean)
            .unwrap_or(d.on_launch_template_change),
        min_healthy_percentage: t
            .opt(ctx, "min_healthy_percentage", |ctx, v| {
                ctx.int_in(v, "min_healthy_percentage", 0..=100)
                    .and_then(|n| u32::try_from(n).ok())
            })
            .unwrap_or(d.min_healthy_percentage),
        instance_warmup: t.opt(ctx, "instance_warmup", Ctx::duration),
        checkpoint_percentages,
        checkpoint_delay: t
            .opt(ctx, "checkpoint_delay", Ctx::duration)
            .unwrap_or(d.checkpoint_delay),
        auto_rollback: t
            .opt(ctx, "auto_rollback", Ctx::boolean)
            .unwrap_or(d.auto_rollback),
    })
}

fn decode_termination(ctx: &mut Ctx, v: &Val<'_>) -> Option<Vec<TerminationPolicy>> {
    let opts = [
        ("default", TerminationPolicy::Default),
        ("oldest_instance", TerminationPolicy::OldestInstance),
        ("newest_instance", TerminationPolicy::NewestInstance),
        (
            "oldest_launch_template",
            TerminationPolicy::OldestLaunchTemplate,
        ),
    ];
    let items = ctx.array(v)?;
    if items.is_empty() {
        ctx.err(
            v.span(),
            "termination_policies must list at least one policy",
        );
        return None;
    }
    let mut out = Vec::new();
    for item in items {
        if let Some(p) = ctx.choice(item, "termination policy", &opts) {
            if out.contains(&p) {
                ctx.err(
                    item.span(),
                    format!("duplicate termination policy `{}`", p.as_str()),
                );
            }
            out.push(p);
        }
    }
    Some(out)
}

/// Decodes an array of named tables, reporting duplicate names at the later one.
pub(crate) fn decode_list<T>(
    ctx: &mut Ctx,
    t: &Tbl<'_, '_>,
    key: &str,
    f: fn(&mut Ctx, &Val<'_>, String) -> Option<(String, T)>,
) -> Vec<T> {
    let Some(items) = t.opt(ctx, key, Ctx::array) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", t.child(key));
        if let Some((name, x)) = f(ctx, item, path) {
            if names.contains(&name) {
                let at = item.get_ref().get("name").map_or(item.span(), |v| v.span());
                ctx.err(at, format!("duplicate name `{name}` in {key}"));
            }
            names.push(name);
            out.push(x);
        }
    }
    out
}

fn decode_policy(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<(String, ScalingPolicy)> {
    const COMMON: &[&str] = &["name", "type"];
    const TT: &[&str] = &[
        "metric",
        "statistic",
        "target_value",
        "period",
        "scale_in_stabilization",
        "disable_scale_in",
    ];
    const STEP: &[&str] = &[
        "adjustment_type",
        "alarm",
        "steps",
        "min_adjustment_magnitude",
    ];
    const SIMPLE: &[&str] = &["adjustment_type", "alarm", "adjustment", "cooldown"];
    #[derive(Clone, Copy)]
    enum K {
        Tt,
        Step,
        Simple,
        Predictive,
    }
    let kinds = [
        ("target_tracking", K::Tt),
        ("step", K::Step),
        ("simple", K::Simple),
        ("predictive", K::Predictive),
    ];
    let kind = v
        .get_ref()
        .get("type")
        .and_then(|tv| ctx.choice(tv, "scaling policy type", &kinds));
    let keys = match kind {
        Some(K::Tt) => [COMMON, TT].concat(),
        Some(K::Step) => [COMMON, STEP].concat(),
        Some(K::Simple) => [COMMON, SIMPLE].concat(),
        Some(K::Predictive) => [COMMON, super::predictive::KEYS].concat(),
        None => [COMMON, TT, STEP, SIMPLE, super::predictive::KEYS].concat(),
    };
    let t = ctx.table(v, path, &keys)?;
    let name = t.req(ctx, "name", Ctx::nonempty);
    if t.get("type").is_none() {
        ctx.err(
            t.span.clone(),
            format!("missing required key `type` in {}", t.label()),
        );
    }
    let kind = match kind? {
        K::Predictive => {
            ScalingPolicy::Predictive(super::predictive::decode(ctx, &t, name.clone())?)
        }
        K::Tt => {
            let metric = t.req(ctx, "metric", metric);
            let default = metric.map_or(Statistic::Average, Metric::default_statistic);
            let statistic = statistic(ctx, &t, metric, default);
            let target_value = t.req(ctx, "target_value", |ctx, v| {
                let x = ctx.number(v)?;
                if x <= 0.0 {
                    ctx.err(v.span(), "target_value must be greater than zero");
                    return None;
                }
                Some(x)
            });
            let period = t
                .opt(ctx, "period", period)
                .unwrap_or(Duration::from_secs(10));
            let scale_in_stabilization = t
                .opt(ctx, "scale_in_stabilization", Ctx::duration)
                .unwrap_or(Duration::from_secs(300));
            let disable_scale_in = t
                .opt(ctx, "disable_scale_in", Ctx::boolean)
                .unwrap_or(false);
            ScalingPolicy::TargetTracking(TargetTrackingSpec {
                name: name.clone()?,
                metric: metric?,
                statistic,
                target_value: target_value?,
                period,
                scale_in_stabilization,
                disable_scale_in,
            })
        }
        K::Step => {
            let adjustment_type = adjustment_type(ctx, &t);
            let alarm = t.req(ctx, "alarm", |c, v| decode_alarm(c, v, t.child("alarm")));
            let steps = t.req(ctx, "steps", |c, v| decode_steps(c, v, &t, adjustment_type));
            let mam = t.opt(ctx, "min_adjustment_magnitude", |ctx, v| {
                let n = ctx.int_in(v, "min_adjustment_magnitude", 1..=i64::from(u32::MAX))?;
                if adjustment_type != AdjustmentType::PercentChangeInCapacity {
                    ctx.err(
                        v.span(),
                        "min_adjustment_magnitude only applies to percent_change_in_capacity",
                    );
                }
                u32::try_from(n).ok()
            });
            ScalingPolicy::Step(StepSpec {
                name: name.clone()?,
                adjustment_type,
                alarm: alarm?,
                steps: steps?,
                min_adjustment_magnitude: mam,
            })
        }
        K::Simple => {
            let adjustment_type = adjustment_type(ctx, &t);
            let alarm = t.req(ctx, "alarm", |c, v| decode_alarm(c, v, t.child("alarm")));
            let adjustment = t.req(ctx, "adjustment", |ctx, v| {
                let n = ctx.integer(v)?;
                check_adjustment(ctx, v, n, adjustment_type);
                Some(n)
            });
            let cooldown = t.opt(ctx, "cooldown", Ctx::duration);
            ScalingPolicy::Simple(SimpleSpec {
                name: name.clone()?,
                adjustment_type,
                alarm: alarm?,
                adjustment: adjustment?,
                cooldown,
                min_adjustment_magnitude: None,
            })
        }
    };
    Some((name?, kind))
}

fn adjustment_type(ctx: &mut Ctx, t: &Tbl<'_, '_>) -> AdjustmentType {
    let opts = [
        ("change_in_capacity", AdjustmentType::ChangeInCapacity),
        ("exact_capacity", AdjustmentType::ExactCapacity),
        (
            "percent_change_in_capacity",
            AdjustmentType::PercentChangeInCapacity,
        ),
    ];
    t.opt(ctx, "adjustment_type", |c, v| {
        c.choice(v, "adjustment_type", &opts)
    })
    .unwrap_or_default()
}

pub(crate) fn check_adjustment(ctx: &mut Ctx, v: &Val<'_>, n: i64, ty: AdjustmentType) {
    if ty == AdjustmentType::ExactCapacity && n < 0 {
        ctx.err(
            v.span(),
            "an exact_capacity adjustment must not be negative",
        );
    }
}

/// A scheduled action, parsed once here into what runs: a config that validates can always be
/// scheduled.
fn decode_scheduled(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
) -> Option<(String, ScheduledActionSpec)> {
    let keys = [
        "name",
        "recurrence",
        "time_zone",
        "start_time",
        "end_time",
        "min_size",
        "max_size",
        "desired_capacity",
    ];
    let t = ctx.table(v, path, &keys)?;
    let name = t.req(ctx, "name", Ctx::nonempty);
    let recurrence = t.opt(ctx, "recurrence", |ctx, v| {
        let s = ctx.string(v)?;
        let fields = s.split_whitespace().count();
        if fields != 5 {
            ctx.err(
                v.span(),
                format!("recurrence `{s}` must be a cron expression with 5 fields (minute hour day month weekday), found {fields}"),
            );
            return None;
        }
        if let Err(e) = s.parse::<flotilla_control::Cron>() {
            ctx.err(v.span(), format!("recurrence `{s}`: {}", e.reason));
            return None;
        }
        Some(s)
    });
    let time_zone = t
        .opt(ctx, "time_zone", |ctx, v| {
            let tz = ctx.nonempty(v)?;
            if flotilla_control::schedule::parse_time_zone(&tz).is_err() {
                ctx.err(
                    v.span(),
                    format!("unknown time zone `{tz}`; expected an IANA name like \"Asia/Seoul\" or \"UTC\""),
                );
                return None;
            }
            Some(tz)
        })
        .unwrap_or_else(|| "UTC".into());
    let start_time = t.opt(ctx, "start_time", timestamp);
    let end_time = t.opt(ctx, "end_time", timestamp);
    if let (Some(start), Some(end)) = (&start_time, &end_time) {
        let (s, e) = (
            flotilla_control::schedule::parse_time(start),
            flotilla_control::schedule::parse_time(end),
        );
        if let (Ok(s), Ok(e), Some(v)) = (s, e, t.get("end_time")) {
            if e <= s {
                ctx.err(
                    v.span(),
                    format!("end_time `{end}` must be after start_time `{start}`"),
                );
            }
        }
    }
    if recurrence.is_none()
        && start_time.is_none()
        && t.get("recurrence").is_none()
        && t.get("start_time").is_none()
    {
        ctx.err(
            t.span.clone(),
            format!("{} needs `recurrence` or `start_time`", t.label()),
        );
    }
    let min = t.opt(ctx, "min_size", |c, v| c.u32(v, "min_size"));
    let max = t.opt(ctx, "max_size", |c, v| c.u32(v, "max_size"));
    let desired = t.opt(ctx, "desired_capacity", |c, v| c.u32(v, "desired_capacity"));
    let any_size = ["min_size", "max_size", "desired_capacity"]
        .iter()
        .any(|k| t.get(k).is_some());
    if !any_size {
        ctx.err(
            t.span.clone(),
            format!(
                "{} must set at least one of min_size, max_size, desired_capacity",
                t.label()
            ),
        );
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            let at = t.get("min_size").map_or(t.span.clone(), |v| v.span());
            ctx.err(
                at,
                format!("min_size ({lo}) must not be greater than max_size ({hi})"),
            );
        }
    }
    let name = name?;
    let broken = |key: &str, parsed: bool| t.get(key).is_some() && !parsed;
    if broken("recurrence", recurrence.is_some())
        || broken("start_time", start_time.is_some())
        || broken("end_time", end_time.is_some())
        || (recurrence.is_none() && start_time.is_none())
    {
        return None; // already reported where it is wrong
    }
    // Every part was checked above with the same parsers, so this only fails on a bug; the
    // error is then reported at the action rather than lost.
    match ScheduledActionSpec::parse(
        &name,
        recurrence.as_deref(),
        &time_zone,
        start_time.as_deref(),
        end_time.as_deref(),
        min,
        max,
        desired,
    ) {
        Ok(spec) => Some((name, spec)),
        Err(e) => {
            ctx.err(t.span.clone(), format!("scheduled action `{name}`: {e}"));
            None
        }
    }
}

/// An RFC 3339 time, written either as a TOML datetime or a string.
fn timestamp(ctx: &mut Ctx, v: &Val<'_>) -> Option<String> {
    let s = match v.get_ref() {
        toml::de::DeValue::Datetime(d) => d.to_string(),
        _ => ctx.string(v)?,
    };
    let parsed = s.parse::<toml::value::Datetime>().ok();
    let full = parsed.is_some_and(|d| d.date.is_some() && d.time.is_some());
    if !full {
        ctx.err(
            v.span(),
            format!("invalid time `{s}`; expected RFC 3339 like \"2025-01-31T08:00:00Z\""),
        );
        return None;
    }
    if parsed.is_some_and(|d| d.offset.is_none()) {
        ctx.err(
            v.span(),
            format!("time `{s}` needs a UTC offset (AWS reads start and end times in UTC), e.g. \"{s}Z\""),
        );
        return None;
    }
    if flotilla_control::schedule::parse_time(&s).is_err() {
        ctx.err(
            v.span(),
            format!("invalid time `{s}`; expected RFC 3339 like \"2025-01-31T08:00:00Z\""),
        );
        return None;
    }
    Some(s)
}
