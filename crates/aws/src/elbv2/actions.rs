//! Listener and rule actions: `forward` (one target group or a weighted `ForwardConfig` with
//! target group stickiness), `redirect` and `fixed-response`, read with AWS's validation and
//! written back in AWS's shape.

use crate::call::Call;
use crate::model::{ActionRes, RedirectRes};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};
use crate::views;

const CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

fn forward(call: &Call<'_>, a: &Params, tg_protocol: &str) -> AwsResult<ActionRes> {
    let mut groups: Vec<(String, u32)> = Vec::new();
    let config = a.sub("ForwardConfig");
    for t in config
        .list_entries("TargetGroups", true)?
        .unwrap_or_default()
    {
        let arn = t.required("TargetGroupArn")?.to_string();
        let weight = t.u32("Weight", 0, 999)?.unwrap_or(1);
        groups.push((arn, weight));
    }
    let forward_config = !groups.is_empty();
    if let Some(arn) = a.get("TargetGroupArn") {
        match groups.as_slice() {
            [] => groups.push((arn.to_string(), 1)),
            [(only, _)] if only == arn => {}
            _ => {
                return Err(AwsError::validation(
                    "TargetGroupArn and ForwardConfig name different target groups",
                ))
            }
        }
    }
    if groups.is_empty() {
        return Err(AwsError::validation(
            "A forward action needs a TargetGroupArn or a ForwardConfig with target groups",
        ));
    }
    if groups.len() > 5 {
        return Err(AwsError::validation(
            "A forward action can have at most 5 target groups",
        ));
    }
    let all = views::target_groups(call);
    for (arn, _) in &groups {
        let (tg, _) = all.iter().find(|(t, _)| &t.arn == arn).ok_or_else(|| {
            AwsError::new("TargetGroupNotFound", "One or more target groups not found")
        })?;
        if tg.protocol != tg_protocol {
            return Err(AwsError::new(
                "IncompatibleProtocols",
                format!(
                    "The target group {} uses {} and the listener needs {tg_protocol}",
                    tg.name, tg.protocol
                ),
            ));
        }
    }
    if groups
        .iter()
        .map(|(a, _)| a)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        != groups.len()
    {
        return Err(AwsError::validation("A target group is listed twice"));
    }
    let sticky = config.sub("TargetGroupStickinessConfig");
    let stickiness = match sticky.boolean("Enabled")? {
        Some(enabled) => Some((
            enabled,
            sticky.u32("DurationSeconds", 1, 604_800)?.unwrap_or(3600),
        )),
        None => None,
    };
    Ok(ActionRes {
        kind: "forward".into(),
        order: a.u32("Order", 1, 50_000)?,
        forward: groups,
        forward_config,
        stickiness,
        redirect: None,
        fixed: None,
    })
}

fn redirect(a: &Params) -> AwsResult<ActionRes> {
    let r = a.sub("RedirectConfig");
    let status = r.required("StatusCode")?.to_string();
    if !matches!(status.as_str(), "HTTP_301" | "HTTP_302") {
        return Err(AwsError::validation(format!(
            "Redirect status code '{status}' must be HTTP_301 or HTTP_302"
        )));
    }
    let get = |k: &str| r.get(k).map(str::to_string);
    if let Some(p) = r.get("Protocol") {
        if !matches!(p, "HTTP" | "HTTPS" | "#{protocol}") {
            return Err(AwsError::validation(format!(
                "Redirect protocol '{p}' is not valid"
            )));
        }
    }
    if r.get("Path").is_some_and(|p| !p.starts_with('/')) {
        return Err(AwsError::validation("A redirect path must begin with '/'"));
    }
    Ok(ActionRes {
        kind: "redirect".into(),
        order: a.u32("Order", 1, 50_000)?,
        forward: Vec::new(),
        forward_config: false,
        stickiness: None,
        redirect: Some(RedirectRes {
            protocol: get("Protocol"),
            host: get("Host"),
            port: get("Port"),
            path: get("Path"),
            query: get("Query"),
            status,
        }),
        fixed: None,
    })
}

fn fixed(a: &Params) -> AwsResult<ActionRes> {
    let f = a.sub("FixedResponseConfig");
    let status = f.required("StatusCode")?.to_string();
    let ok = status.len() == 3
        && status.bytes().all(|b| b.is_ascii_digit())
        && matches!(status.as_bytes()[0], b'2' | b'4' | b'5');
    if !ok {
        return Err(AwsError::validation(format!(
            "Fixed response status code '{status}' must match ^(2|4|5)\\d\\d$"
        )));
    }
    let content_type = f.get("ContentType").map(str::to_string);
    if content_type
        .as_deref()
        .is_some_and(|c| !CONTENT_TYPES.contains(&c))
    {
        return Err(AwsError::validation(format!(
            "Content type must be one of {}",
            CONTENT_TYPES.join(", ")
        )));
    }
    let body = f.get("MessageBody").map(str::to_string);
    if body.as_ref().is_some_and(|b| b.chars().count() > 1024) {
        return Err(AwsError::validation(
            "A fixed response body is at most 1024 characters",
        ));
    }
    Ok(ActionRes {
        kind: "fixed-response".into(),
        order: a.u32("Order", 1, 50_000)?,
        forward: Vec::new(),
        forward_config: false,
        stickiness: None,
        redirect: None,
        fixed: Some((status, content_type, body)),
    })
}

/// Reads `prefix.member.N` actions for a listener speaking `protocol` (`HTTP` or `TCP`).
pub(crate) fn parse_actions(
    call: &Call<'_>,
    prefix: &str,
    protocol: &str,
) -> AwsResult<Vec<ActionRes>> {
    let entries = call
        .p
        .list_entries(prefix, true)?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| AwsError::missing(prefix))?;
    let tg_protocol = if protocol == "TCP" { "TCP" } else { "HTTP" };
    let mut actions = Vec::new();
    for a in &entries {
        let kind = a.required("Type")?;
        let action = match kind {
            "forward" => forward(call, a, tg_protocol)?,
            "redirect" | "fixed-response" if protocol == "TCP" => {
                return Err(AwsError::validation(format!(
                    "A {kind} action is not valid on a TCP listener"
                )))
            }
            "redirect" => redirect(a)?,
            "fixed-response" => fixed(a)?,
            other => {
                return Err(AwsError::validation(format!(
                    "Action type '{other}' is not supported by Flotilla (forward, redirect, \
                     fixed-response)"
                )))
            }
        };
        actions.push(action);
    }
    if actions.len() != 1 {
        return Err(AwsError::validation(
            "Exactly one forward, redirect or fixed-response action is allowed",
        ));
    }
    Ok(actions)
}

/// Writes `actions` as `tag` (`Actions` or `DefaultActions`).
pub(crate) fn write_actions(x: &mut Xml, tag: &str, actions: &[ActionRes]) {
    x.list(tag, "member", actions, |x, a| {
        x.leaf("Type", &a.kind);
        if let Some(o) = a.order {
            x.leaf("Order", o.to_string());
        }
        if a.kind == "forward" {
            if let [(arn, _)] = a.forward.as_slice() {
                x.leaf("TargetGroupArn", arn);
            }
            x.node("ForwardConfig", |x| {
                x.list("TargetGroups", "member", &a.forward, |x, (arn, w)| {
                    x.leaf("TargetGroupArn", arn).leaf("Weight", w.to_string());
                });
                let (enabled, secs) = a.stickiness.unwrap_or((false, 0));
                x.node("TargetGroupStickinessConfig", |x| {
                    x.boolean("Enabled", enabled);
                    if enabled {
                        x.leaf("DurationSeconds", secs.to_string());
                    }
                });
            });
        }
        if let Some(r) = &a.redirect {
            x.node("RedirectConfig", |x| {
                x.opt("Protocol", r.protocol.as_ref())
                    .opt("Port", r.port.as_ref())
                    .opt("Host", r.host.as_ref())
                    .opt("Path", r.path.as_ref())
                    .opt("Query", r.query.as_ref())
                    .leaf("StatusCode", &r.status);
            });
        }
        if let Some((status, ct, body)) = &a.fixed {
            x.node("FixedResponseConfig", |x| {
                x.opt("MessageBody", body.as_ref())
                    .leaf("StatusCode", status)
                    .opt("ContentType", ct.as_ref());
            });
        }
    });
}
