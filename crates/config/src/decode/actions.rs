//! Listener and rule actions: forward, redirect, fixed-response.

use super::alarms::decode_alarm_of;
use super::{Ctx, ForwardUse, RefKind, Reference, Tbl, Val};
use crate::routing::{
    Action, CanaryRollback, LoadBalancerType, Redirect, WeightedTargetGroup, ROLLBACK_METRICS,
};

/// The content types an ALB fixed response may declare.
const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

pub(crate) fn decode_action(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    kind: LoadBalancerType,
) -> Option<Action> {
    const FORWARD: &[&str] = &["type", "target_group", "target_groups", "rollback"];
    const REDIRECT: &[&str] = &[
        "type", "status", "protocol", "host", "port", "path", "query",
    ];
    const FIXED: &[&str] = &["type", "status", "content_type", "body"];
    #[derive(Clone, Copy, PartialEq)]
    enum K {
        Forward,
        Redirect,
        Fixed,
    }
    let kinds = [
        ("forward", K::Forward),
        ("redirect", K::Redirect),
        ("fixed-response", K::Fixed),
    ];
    // Learn the type first so unknown keys are judged against the right key set.
    let action_kind = match v.get_ref().get("type") {
        Some(tv) => ctx.choice(tv, "action type", &kinds),
        None => None,
    };
    let keys: Vec<&str> = match action_kind {
        Some(K::Forward) => FORWARD.to_vec(),
        Some(K::Redirect) => REDIRECT.to_vec(),
        Some(K::Fixed) => FIXED.to_vec(),
        None => [FORWARD, REDIRECT, FIXED].concat(),
    };
    let t = ctx.table(v, path, &keys)?;
    if t.get("type").is_none() {
        ctx.err(
            t.span.clone(),
            format!("missing required key `type` in {}", t.label()),
        );
    }
    let action_kind = action_kind?;
    if kind == LoadBalancerType::Network && action_kind != K::Forward {
        ctx.err(t.span.clone(), "network load balancers can only forward");
        return None;
    }
    match action_kind {
        K::Forward => decode_forward(ctx, &t, kind),
        K::Redirect => decode_redirect(ctx, &t).map(Action::Redirect),
        K::Fixed => {
            let status = t
                .opt(ctx, "status", |ctx, v| {
                    let n = ctx.integer(v)?;
                    let ok = (200..600).contains(&n) && n / 100 != 3;
                    if !ok {
                        ctx.err(
                            v.span(),
                            format!("fixed-response status must be 2xx, 4xx or 5xx, found {n}"),
                        );
                    }
                    u16::try_from(n).ok().filter(|_| ok)
                })
                .unwrap_or(200);
            let content_type = t
                .opt(ctx, "content_type", |ctx, v| {
                    let s = ctx.string(v)?;
                    if !CONTENT_TYPES.contains(&s.as_str()) {
                        let hint = crate::suggest::hint(&s, CONTENT_TYPES.iter().copied());
                        ctx.err(
                            v.span(),
                            format!(
                                "content_type `{s}` is not one of {}{hint}",
                                CONTENT_TYPES.join(", ")
                            ),
                        );
                    }
                    Some(s)
                })
                .unwrap_or_else(|| "text/plain".into());
            let body = t
                .opt(ctx, "body", |ctx, v| {
                    let s = ctx.string(v)?;
                    let n = s.chars().count();
                    if n > 1024 {
                        ctx.err(
                            v.span(),
                            format!(
                                "fixed-response body is {n} characters; at most 1024 are allowed"
                            ),
                        );
                    }
                    Some(s)
                })
                .unwrap_or_default();
            Some(Action::FixedResponse {
                status,
                content_type,
                body,
            })
        }
    }
}

fn decode_forward(ctx: &mut Ctx, t: &Tbl<'_, '_>, kind: LoadBalancerType) -> Option<Action> {
    let mut groups: Vec<(WeightedTargetGroup, super::Span)> = Vec::new();
    match (t.get("target_group"), t.get("target_groups")) {
        (Some(_), Some(v)) => {
            ctx.err(
                v.span(),
                "use either `target_group` or `target_groups`, not both",
            );
            return None;
        }
        (None, None) => {
            ctx.err(
                t.span.clone(),
                format!(
                    "missing required key `target_group` (or `target_groups`) in {}",
                    t.label()
                ),
            );
            return None;
        }
        (Some(v), None) => {
            let name = ctx.nonempty(v)?;
            groups.push((WeightedTargetGroup { name, weight: 1 }, v.span()));
        }
        (None, Some(v)) => {
            let items = ctx.array(v)?;
            if items.is_empty() || items.len() > 5 {
                ctx.err(
                    v.span(),
                    format!(
                        "a forward action needs 1 to 5 target groups, found {}",
                        items.len()
                    ),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let path = format!("{}[{i}]", t.child("target_groups"));
                let Some(g) = ctx.table(item, path, &["name", "weight"]) else {
                    continue;
                };
                let name = g.req(ctx, "name", Ctx::nonempty);
                let weight = g
                    .opt(ctx, "weight", |c, v| {
                        c.int_in(v, "weight", 0..=999)
                            .and_then(|n| u32::try_from(n).ok())
                    })
                    .unwrap_or(1);
                if let (Some(name), Some(nv)) = (name, g.get("name")) {
                    if groups.iter().any(|(o, _)| o.name == name) {
                        ctx.err(
                            nv.span(),
                            format!("target group `{name}` appears twice in this action"),
                        );
                    }
                    groups.push((WeightedTargetGroup { name, weight }, nv.span()));
                }
            }
        }
    }
    if kind == LoadBalancerType::Network && groups.len() > 1 {
        if let Some(v) = t.get("target_groups") {
            ctx.err(
                v.span(),
                "a network load balancer forwards to exactly one target group",
            );
        }
    }
    for (g, span) in &groups {
        ctx.refs.push(Reference {
            kind: RefKind::TargetGroup,
            name: g.name.clone(),
            span: span.clone(),
        });
        ctx.forwards.push(ForwardUse {
            lb_kind: kind,
            lb_cross_zone: true,
            target_group: g.name.clone(),
            span: span.clone(),
        });
    }
    let rollback = t.opt(ctx, "rollback", |ctx, v| {
        decode_rollback(ctx, v, t.child("rollback"), &groups)
    });
    Some(Action::Forward {
        target_groups: groups.into_iter().map(|(g, _)| g).collect(),
        rollback,
    })
}

/// `rollback = { target_group = "canary", alarm = { … } }`: the canary must be one of the
/// action's groups and not the only one (its traffic must have somewhere to go).
fn decode_rollback(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    groups: &[(WeightedTargetGroup, super::Span)],
) -> Option<CanaryRollback> {
    let t = ctx.table(v, path, &["target_group", "alarm"])?;
    let target_group = t.req(ctx, "target_group", Ctx::nonempty);
    if let (Some(name), Some(tv)) = (&target_group, t.get("target_group")) {
        let names: Vec<&str> = groups.iter().map(|(g, _)| g.name.as_str()).collect();
        if !names.contains(&name.as_str()) {
            ctx.err(
                tv.span(),
                format!(
                    "rollback target group `{name}` is not one of this action's target groups ({})",
                    names.join(", ")
                ),
            );
        } else if names.len() < 2 {
            ctx.err(
                tv.span(),
                "a rollback needs another target group in the action to send the canary's traffic to",
            );
        }
    }
    let alarm = t.req(ctx, "alarm", |c, v| {
        decode_alarm_of(c, v, t.child("alarm"), &ROLLBACK_METRICS)
    });
    Some(CanaryRollback {
        target_group: target_group?,
        alarm: alarm?,
    })
}

fn decode_redirect(ctx: &mut Ctx, t: &Tbl<'_, '_>) -> Option<Redirect> {
    let status = t
        .opt(ctx, "status", |ctx, v| {
            let n = ctx.integer(v)?;
            if n != 301 && n != 302 {
                ctx.err(
                    v.span(),
                    format!("redirect status must be 301 or 302, found {n}"),
                );
                return None;
            }
            u16::try_from(n).ok()
        })
        .unwrap_or(301);
    let protocol = t.opt(ctx, "protocol", |ctx, v| {
        let s = ctx.string(v)?;
        let ok = ["HTTP", "HTTPS", "#{protocol}"]
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&s));
        if !ok {
            ctx.err(
                v.span(),
                format!("redirect protocol must be HTTP, HTTPS or #{{protocol}}, found `{s}`"),
            );
        }
        Some(s.to_ascii_uppercase().replace("#{PROTOCOL}", "#{protocol}"))
    });
    let host = t.opt(ctx, "host", Ctx::nonempty);
    let port = t.opt(ctx, "port", |ctx, v| {
        let s = match v.get_ref() {
            toml::de::DeValue::Integer(i) => i.as_str().to_string(),
            _ => ctx.string(v)?,
        };
        let ok = s == "#{port}" || s.parse::<u16>().is_ok_and(|p| p >= 1);
        if !ok {
            ctx.err(
                v.span(),
                format!("redirect port must be 1-65535 or #{{port}}, found `{s}`"),
            );
        }
        Some(s)
    });
    let path = t.opt(ctx, "path", |ctx, v| {
        let s = ctx.string(v)?;
        if !s.starts_with('/') {
            ctx.err(v.span(), format!("redirect path `{s}` must start with `/`"));
        }
        Some(s)
    });
    let query = t.opt(ctx, "query", |ctx, v| {
        let s = ctx.string(v)?;
        if s.starts_with('?') {
            ctx.err(
                v.span(),
                "redirect query must not start with `?` (it is added automatically)",
            );
        }
        Some(s)
    });
    if protocol.is_none() && host.is_none() && port.is_none() && path.is_none() {
        ctx.err(
            t.span.clone(),
            "a redirect must change at least one of protocol, host, port or path (or it would loop)",
        );
    }
    Some(Redirect {
        status,
        protocol,
        host,
        port,
        path,
        query,
    })
}
