//! `[target_groups.NAME]` with its health check and stickiness.

use std::time::Duration;

use super::{Ctx, Val};
use crate::matching::Matcher;
use crate::model::{
    Algorithm, CrossZone, HealthCheck, Protocol, ProtocolVersion, Stickiness, TargetGroup,
};

pub(crate) const PROTOCOLS: &[(&str, Protocol)] =
    &[("http", Protocol::Http), ("tcp", Protocol::Tcp)];

pub(crate) fn decode_target_group(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<TargetGroup> {
    let keys = [
        "protocol",
        "protocol_version",
        "algorithm",
        "deregistration_delay",
        "slow_start",
        "targets",
        "health_check",
        "stickiness",
        "proxy_protocol_v2",
        "cross_zone",
        "connect_timeout",
        "per_try_timeout",
    ];
    let t = ctx.table(v, path, &keys)?;
    let d = TargetGroup::default();
    let protocol = t
        .opt(ctx, "protocol", |c, v| c.choice(v, "protocol", PROTOCOLS))
        .unwrap_or(d.protocol);
    let versions = [
        ("http1", ProtocolVersion::Http1),
        ("http2", ProtocolVersion::Http2),
        ("grpc", ProtocolVersion::Grpc),
    ];
    let protocol_version = t
        .opt(ctx, "protocol_version", |c, v| {
            let pv = c.choice(v, "protocol version", &versions)?;
            if protocol != Protocol::Http {
                c.err(
                    v.span(),
                    "protocol_version only applies to http target groups",
                );
            }
            Some(pv)
        })
        .unwrap_or(d.protocol_version);
    let algorithms = [
        ("round_robin", Algorithm::RoundRobin),
        (
            "least_outstanding_requests",
            Algorithm::LeastOutstandingRequests,
        ),
        ("weighted_random", Algorithm::WeightedRandom),
    ];
    let algorithm = t
        .opt(ctx, "algorithm", |c, v| {
            c.choice(v, "algorithm", &algorithms)
        })
        .unwrap_or(d.algorithm);
    let deregistration_delay = t
        .opt(ctx, "deregistration_delay", Ctx::duration)
        .unwrap_or(d.deregistration_delay);
    let slow_start = t
        .opt(ctx, "slow_start", Ctx::duration)
        .unwrap_or(d.slow_start);
    // AWS: slow start mode is not supported with the least outstanding requests algorithm.
    if algorithm == Algorithm::LeastOutstandingRequests && !slow_start.is_zero() {
        if let Some(v) = t.get("slow_start") {
            ctx.err(
                v.span(),
                "slow_start cannot be used with algorithm = \"least_outstanding_requests\" (set it to \"0s\" or use round_robin)",
            );
        }
    }
    let targets = t
        .opt(ctx, "targets", |ctx, v| {
            let items = ctx.array(v)?;
            let mut out = Vec::new();
            for item in items {
                if let Some(a) = ctx.socket_addr(item) {
                    if out.contains(&a) {
                        ctx.err(item.span(), format!("duplicate target `{a}`"));
                    }
                    out.push(a);
                }
            }
            Some(out)
        })
        .unwrap_or_default();
    let hc_path = t.child("health_check");
    let health_check = t
        .opt(ctx, "health_check", |ctx, v| {
            decode_health_check(ctx, v, hc_path, protocol)
        })
        .unwrap_or(HealthCheck {
            protocol,
            ..HealthCheck::default()
        });
    let st_path = t.child("stickiness");
    let stickiness = t
        .opt(ctx, "stickiness", |ctx, v| {
            decode_stickiness(ctx, v, st_path)
        })
        .unwrap_or_default();
    let proxy_protocol_v2 = t
        .opt(ctx, "proxy_protocol_v2", Ctx::boolean)
        .unwrap_or(d.proxy_protocol_v2);
    if proxy_protocol_v2 && protocol != Protocol::Tcp {
        if let Some(v) = t.get("proxy_protocol_v2") {
            ctx.err(
                v.span(),
                "proxy_protocol_v2 is only used by tcp target groups (network load balancers)",
            );
        }
    }
    let cross_zone = t
        .opt(ctx, "cross_zone", decode_cross_zone)
        .unwrap_or_default();
    let (connect_timeout, per_try_timeout) = decode_timeouts(ctx, &t, protocol);
    Some(TargetGroup {
        connect_timeout,
        per_try_timeout,
        protocol,
        proxy_protocol_v2,
        cross_zone,
        protocol_version,
        algorithm,
        deregistration_delay,
        slow_start,
        targets,
        health_check,
        stickiness,
    })
}

/// `connect_timeout` (any protocol) and `per_try_timeout` (http only: a TCP flow has no
/// response to wait for).
fn decode_timeouts(
    ctx: &mut Ctx,
    t: &super::Tbl<'_, '_>,
    protocol: Protocol,
) -> (Duration, Option<Duration>) {
    let d = TargetGroup::default();
    let connect = t
        .opt(ctx, "connect_timeout", |c, v| {
            c.positive_duration(v, "connect_timeout")
        })
        .unwrap_or(d.connect_timeout);
    let per_try = t.opt(ctx, "per_try_timeout", |c, v| {
        let d = c.positive_duration(v, "per_try_timeout")?;
        if protocol != Protocol::Http {
            c.err(
                v.span(),
                "per_try_timeout only applies to http target groups (a tcp flow has no response to wait for)",
            );
        }
        Some(d)
    });
    (connect, per_try)
}

fn decode_health_check(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    tg: Protocol,
) -> Option<HealthCheck> {
    let keys = [
        "protocol",
        "path",
        "interval",
        "timeout",
        "healthy_threshold",
        "unhealthy_threshold",
        "matcher",
    ];
    let t = ctx.table(v, path, &keys)?;
    let d = HealthCheck::default();
    let protocol = t
        .opt(ctx, "protocol", |c, v| c.choice(v, "protocol", PROTOCOLS))
        .unwrap_or(tg);
    let hc_path = t
        .opt(ctx, "path", |ctx, v| {
            let p = ctx.string(v)?;
            if !p.starts_with('/') {
                ctx.err(
                    v.span(),
                    format!("health check path `{p}` must start with `/`"),
                );
                return None;
            }
            Some(p)
        })
        .unwrap_or(d.path);
    let interval = t.opt(ctx, "interval", |c, v| c.positive_duration(v, "interval"));
    let timeout = t.opt(ctx, "timeout", |c, v| c.positive_duration(v, "timeout"));
    let (iv, tv) = (interval.unwrap_or(d.interval), timeout.unwrap_or(d.timeout));
    let interval_ok = interval.is_some() || t.get("interval").is_none();
    let timeout_ok = timeout.is_some() || t.get("timeout").is_none();
    if interval_ok && timeout_ok && tv >= iv {
        let at = t
            .get("timeout")
            .or_else(|| t.get("interval"))
            .map_or(t.span.clone(), |v| v.span());
        ctx.err(
            at,
            format!(
                "health check interval must be greater than the timeout (interval {}, timeout {})",
                humantime::format_duration(iv),
                humantime::format_duration(tv)
            ),
        );
    }
    let threshold = |ctx: &mut Ctx, v: &Val<'_>, what: &str| {
        ctx.int_in(v, what, 1..=10)
            .and_then(|n| u32::try_from(n).ok())
    };
    let healthy_threshold = t
        .opt(ctx, "healthy_threshold", |c, v| {
            threshold(c, v, "healthy_threshold")
        })
        .unwrap_or(d.healthy_threshold);
    let unhealthy_threshold = t
        .opt(ctx, "unhealthy_threshold", |c, v| {
            threshold(c, v, "unhealthy_threshold")
        })
        .unwrap_or(d.unhealthy_threshold);
    let matcher = t
        .opt(ctx, "matcher", |ctx, v| {
            let s = match v.get_ref() {
                toml::de::DeValue::Integer(i) => i.as_str().to_string(),
                _ => ctx.string(v)?,
            };
            Matcher::parse(&s).map_err(|e| ctx.err(v.span(), e)).ok()
        })
        .unwrap_or(d.matcher);
    Some(HealthCheck {
        protocol,
        path: hc_path,
        interval: iv,
        timeout: tv,
        healthy_threshold,
        unhealthy_threshold,
        matcher,
    })
}

/// `cross_zone = true | false | "use_load_balancer_configuration"` (AWS
/// `load_balancing.cross_zone.enabled`).
fn decode_cross_zone(ctx: &mut Ctx, v: &Val<'_>) -> Option<CrossZone> {
    match v.get_ref() {
        toml::de::DeValue::Boolean(true) => Some(CrossZone::Enabled),
        toml::de::DeValue::Boolean(false) => Some(CrossZone::Disabled),
        toml::de::DeValue::String(s) if s == "use_load_balancer_configuration" => {
            Some(CrossZone::UseLoadBalancerConfiguration)
        }
        _ => {
            ctx.err(
                v.span(),
                "cross_zone must be true, false or \"use_load_balancer_configuration\"",
            );
            None
        }
    }
}

fn decode_stickiness(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<Stickiness> {
    let t = ctx.table(v, path, &["enabled", "duration"])?;
    let d = Stickiness::default();
    let enabled = t.opt(ctx, "enabled", Ctx::boolean).unwrap_or(d.enabled);
    let duration = t
        .opt(ctx, "duration", |ctx, v| {
            let dur = ctx.duration(v)?;
            if dur < Duration::from_secs(1) || dur > Duration::from_secs(604_800) {
                ctx.err(
                    v.span(),
                    "stickiness duration must be between 1s and 7 days",
                );
                return None;
            }
            Some(dur)
        })
        .unwrap_or(d.duration);
    Some(Stickiness { enabled, duration })
}
