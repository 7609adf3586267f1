//! Target groups: create (idempotent for identical settings), describe, modify, attributes,
//! health, register/deregister, delete.

use std::collections::BTreeMap;

use crate::call::{now_ms, Call};
use crate::model::{HealthCheckRes, TargetGroupRes};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};
use crate::views::{self, read_only};

use super::tags::parse_tags;

fn not_found() -> AwsError {
    AwsError::new("TargetGroupNotFound", "One or more target groups not found")
}

/// The target group an ARN names: (resource, from the file).
pub(crate) fn by_arn(call: &Call<'_>, arn: &str) -> AwsResult<(TargetGroupRes, bool)> {
    views::target_groups(call)
        .into_iter()
        .find(|(t, _)| t.arn == arn)
        .ok_or_else(not_found)
}

/// ARNs of the load balancers whose listeners forward to `name`.
fn load_balancer_arns(call: &Call<'_>, name: &str) -> Vec<String> {
    let lbs = views::load_balancers(call);
    let mut arns: Vec<String> = views::listeners(call)
        .into_iter()
        .filter(|(l, rules, _)| {
            let uses = |actions: &[crate::model::ActionRes]| {
                actions.iter().any(|a| {
                    a.forward
                        .iter()
                        .any(|(arn, _)| crate::model::overlay::target_group_name(arn) == Some(name))
                })
            };
            uses(&l.default_actions) || rules.iter().any(|r| uses(&r.actions))
        })
        .filter_map(|(l, _, _)| {
            lbs.iter()
                .find(|(lb, _)| lb.name == l.load_balancer)
                .map(|(lb, _)| lb.arn.clone())
        })
        .collect();
    arns.sort();
    arns.dedup();
    arns
}

fn write(call: &Call<'_>, x: &mut Xml, tg: &TargetGroupRes) {
    let http = tg.protocol == "HTTP";
    x.leaf("TargetGroupArn", &tg.arn)
        .leaf("TargetGroupName", &tg.name)
        .leaf("Protocol", &tg.protocol)
        .leaf("Port", tg.port.to_string())
        .leaf("VpcId", &tg.vpc_id)
        .leaf("HealthCheckProtocol", &tg.health.protocol)
        .leaf("HealthCheckPort", &tg.health.port)
        .boolean("HealthCheckEnabled", tg.health.enabled)
        .leaf("HealthCheckIntervalSeconds", tg.health.interval.to_string())
        .leaf("HealthCheckTimeoutSeconds", tg.health.timeout.to_string())
        .leaf("HealthyThresholdCount", tg.health.healthy.to_string())
        .leaf("UnhealthyThresholdCount", tg.health.unhealthy.to_string());
    if tg.health.protocol == "HTTP" {
        x.leaf("HealthCheckPath", &tg.health.path);
    }
    x.node("Matcher", |x| {
        x.leaf("HttpCode", &tg.health.matcher);
    })
    .strings(
        "LoadBalancerArns",
        "member",
        load_balancer_arns(call, &tg.name),
    )
    .leaf("TargetType", &tg.target_type);
    if http {
        x.leaf("ProtocolVersion", &tg.protocol_version);
    }
    x.leaf("IpAddressType", "ipv4");
}

fn answer(call: &Call<'_>, tgs: &[TargetGroupRes], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.list("TargetGroups", "member", tgs, |x, tg| write(call, x, tg));
    x.opt("NextMarker", next);
    x.finish()
}

/// Reads the health check parameters over `base` (create: the defaults for the protocol).
fn health(p: &Params, mut h: HealthCheckRes, protocol: &str) -> AwsResult<HealthCheckRes> {
    if let Some(proto) = p.get("HealthCheckProtocol") {
        if !matches!(proto, "HTTP" | "TCP") {
            return Err(AwsError::validation(format!(
                "Health check protocol '{proto}' is not supported by Flotilla (HTTP, TCP)"
            )));
        }
        h.protocol = proto.to_string();
    }
    if let Some(port) = p.get("HealthCheckPort") {
        let ok = port == "traffic-port" || port.parse::<u16>().is_ok_and(|n| n >= 1);
        if !ok {
            return Err(AwsError::validation(format!(
                "Health check port '{port}' must be 'traffic-port' or 1-65535"
            )));
        }
        h.port = port.to_string();
    }
    if let Some(path) = p.get("HealthCheckPath") {
        if !path.starts_with('/') || path.len() > 1024 {
            return Err(AwsError::validation(format!(
                "Health check path '{path}' must begin with '/' and be at most 1024 characters"
            )));
        }
        h.path = path.to_string();
    }
    if p.boolean("HealthCheckEnabled")? == Some(false) {
        return Err(AwsError::validation(
            "Health checks cannot be disabled for target groups with target type instance or ip",
        ));
    }
    if let Some(v) = p.u32("HealthCheckIntervalSeconds", 5, 300)? {
        h.interval = v;
    }
    if let Some(v) = p.u32("HealthCheckTimeoutSeconds", 2, 120)? {
        h.timeout = v;
    }
    if let Some(v) = p.u32("HealthyThresholdCount", 2, 10)? {
        h.healthy = v;
    }
    if let Some(v) = p.u32("UnhealthyThresholdCount", 2, 10)? {
        h.unhealthy = v;
    }
    if let Some(code) = p.get("Matcher.HttpCode") {
        let m = flotilla_config::Matcher::parse(code).map_err(|e| {
            AwsError::validation(format!("Matcher HttpCode '{code}' is not valid: {e}"))
        })?;
        if m.ranges().iter().any(|(lo, hi)| *lo < 200 || *hi > 499) {
            return Err(AwsError::validation(
                "Matcher HttpCode values must be between 200 and 499",
            ));
        }
        h.matcher = code.to_string();
    }
    if p.has("Matcher.GrpcCode") {
        return Err(AwsError::validation(
            "Matcher GrpcCode is not supported by Flotilla",
        ));
    }
    if h.interval <= h.timeout {
        return Err(AwsError::validation(
            "Health check interval must be greater than the timeout.",
        ));
    }
    if protocol == "TCP" && h.protocol == "HTTP" && h.path.is_empty() {
        h.path = "/".into();
    }
    Ok(h)
}

pub(crate) fn create(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let name = p.required("Name")?.to_string();
    super::check_name(&name, "Target group")?;
    let protocol = p
        .get("Protocol")
        .ok_or_else(|| AwsError::validation("A protocol must be specified"))?;
    if !matches!(protocol, "HTTP" | "TCP") {
        return Err(AwsError::validation(format!(
            "Protocol '{protocol}' is not supported by Flotilla's target groups (HTTP, TCP)"
        )));
    }
    let port = p
        .u32("Port", 1, 65535)?
        .ok_or_else(|| AwsError::validation("A port must be specified"))? as u16;
    let vpc = call.ids.vpc_id();
    if let Some(v) = p.get("VpcId") {
        if v != vpc {
            return Err(AwsError::validation(format!(
                "The VPC ID '{v}' is not found (Flotilla has one VPC: {vpc})"
            )));
        }
    }
    let target_type = p.get("TargetType").unwrap_or("instance");
    if !matches!(target_type, "instance" | "ip") {
        return Err(AwsError::validation(format!(
            "Target type '{target_type}' is not supported by Flotilla (instance, ip)"
        )));
    }
    let protocol_version = p.get("ProtocolVersion").unwrap_or("HTTP1");
    if !matches!(protocol_version, "HTTP1" | "HTTP2" | "GRPC")
        || (protocol == "TCP" && p.has("ProtocolVersion"))
    {
        return Err(AwsError::validation(format!(
            "Protocol version '{protocol_version}' is not valid for a {protocol} target group"
        )));
    }
    let defaults = HealthCheckRes {
        protocol: protocol.to_string(),
        port: "traffic-port".into(),
        path: if protocol == "HTTP" {
            "/".into()
        } else {
            String::new()
        },
        enabled: true,
        interval: 30,
        timeout: if protocol == "HTTP" { 5 } else { 10 },
        healthy: 5,
        unhealthy: 2,
        matcher: if protocol == "HTTP" { "200" } else { "200-399" }.into(),
    };
    let tg = TargetGroupRes {
        arn: call.ids.target_group_arn(&name, &call.ids.hex16()),
        name: name.clone(),
        protocol: protocol.to_string(),
        protocol_version: protocol_version.to_string(),
        port,
        vpc_id: vpc,
        target_type: target_type.to_string(),
        health: health(p, defaults, protocol)?,
        attributes: BTreeMap::new(),
        tags: parse_tags(p)?,
        targets: Vec::new(),
        created_ms: now_ms(),
    };
    if let Some(old) = call.reg.target_groups.get(&name) {
        let same = TargetGroupRes {
            arn: old.arn.clone(),
            created_ms: old.created_ms,
            attributes: old.attributes.clone(),
            targets: old.targets.clone(),
            tags: old.tags.clone(),
            ..tg.clone()
        };
        if &same == old {
            return Ok(answer(call, std::slice::from_ref(old), None));
        }
        return Err(duplicate(&name));
    }
    if call.file.target_groups.contains_key(&name) {
        return Err(duplicate(&name));
    }
    call.reg.target_groups.insert(name, tg.clone());
    Ok(answer(call, &[tg], None))
}

fn duplicate(name: &str) -> AwsError {
    AwsError::new(
        "DuplicateTargetGroupName",
        format!("A target group with the same name '{name}' exists, but with different settings"),
    )
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arns = p.strings("TargetGroupArns", true)?.unwrap_or_default();
    let names = p.strings("Names", true)?.unwrap_or_default();
    let lb = p.get("LoadBalancerArn");
    if lb.is_some_and(|a| !views::load_balancers(call).iter().any(|(l, _)| l.arn == a)) {
        return Err(AwsError::new(
            "LoadBalancerNotFound",
            "One or more load balancers not found",
        ));
    }
    let all: Vec<TargetGroupRes> = views::target_groups(call)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let mut picked = super::pick(
        all,
        &arns,
        &names,
        |r: &TargetGroupRes| (r.arn.as_str(), r.name.as_str()),
        not_found,
    )?;
    if let Some(lb) = lb {
        picked.retain(|t| load_balancer_arns(call, &t.name).iter().any(|a| a == lb));
    }
    let (page, next) = super::page(call, picked)?;
    Ok(answer(call, &page, next))
}

/// An API target group by ARN for a change; the file's are read-only.
pub(crate) fn api_tg<'c>(call: &'c mut Call<'_>, arn: &str) -> AwsResult<&'c mut TargetGroupRes> {
    let (tg, file) = by_arn(call, arn)?;
    if file {
        return Err(read_only("target group", &tg.name));
    }
    call.reg
        .target_groups
        .get_mut(&tg.name)
        .ok_or_else(not_found)
}

pub(crate) fn delete(call: &mut Call<'_>) -> AwsResult<String> {
    let arn = call.p.required("TargetGroupArn")?;
    let Ok((tg, file)) = by_arn(call, arn) else {
        return Ok(String::new());
    };
    if file {
        return Err(read_only("target group", &tg.name));
    }
    let in_use = !load_balancer_arns(call, &tg.name).is_empty()
        || call
            .reg
            .groups
            .values()
            .any(|g| g.target_groups.contains(&tg.name));
    if in_use {
        return Err(AwsError::new(
            "ResourceInUse",
            format!("Target group '{arn}' is currently in use by a listener, a rule or an auto scaling group"),
        ));
    }
    call.reg.target_groups.remove(&tg.name);
    Ok(String::new())
}

pub(crate) fn modify(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arn = p.required("TargetGroupArn")?.to_string();
    let tg = api_tg(call, &arn)?;
    let protocol = tg.protocol.clone();
    tg.health = health(p, tg.health.clone(), &protocol)?;
    let tg = tg.clone();
    Ok(answer(call, &[tg], None))
}

/// Every attribute with its value in force (defaults filled in).
fn attributes(tg: &TargetGroupRes) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = [
        ("deregistration_delay.timeout_seconds", "300"),
        ("stickiness.enabled", "false"),
        (
            "load_balancing.cross_zone.enabled",
            "use_load_balancer_configuration",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let extra: &[(&str, &str)] = if tg.protocol == "HTTP" {
        &[
            ("stickiness.type", "lb_cookie"),
            ("stickiness.lb_cookie.duration_seconds", "86400"),
            ("slow_start.duration_seconds", "0"),
            ("load_balancing.algorithm.type", "round_robin"),
        ]
    } else {
        &[
            ("stickiness.type", "source_ip"),
            ("proxy_protocol_v2.enabled", "false"),
        ]
    };
    for (k, v) in extra {
        all.insert(k.to_string(), v.to_string());
    }
    for (k, v) in &tg.attributes {
        all.insert(k.clone(), v.clone());
    }
    all
}

fn write_attributes(attrs: &BTreeMap<String, String>) -> String {
    let mut x = Xml::new();
    x.list("Attributes", "member", attrs, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    });
    x.finish()
}

/// Checks one attribute of a target group speaking `protocol`.
fn check_attribute(protocol: &str, key: &str, value: &str) -> AwsResult<()> {
    let http = protocol == "HTTP";
    let num = |min: u64, max: u64| value.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n));
    let ok = match key {
        "deregistration_delay.timeout_seconds" => num(0, 3600),
        "slow_start.duration_seconds" if http => value == "0" || num(30, 900),
        "stickiness.enabled" => matches!(value, "true" | "false"),
        "stickiness.type" => value == if http { "lb_cookie" } else { "source_ip" },
        "stickiness.lb_cookie.duration_seconds" if http => num(1, 604_800),
        "load_balancing.algorithm.type" if http => matches!(
            value,
            "round_robin" | "least_outstanding_requests" | "weighted_random"
        ),
        "load_balancing.cross_zone.enabled" => {
            matches!(value, "true" | "false" | "use_load_balancer_configuration")
        }
        "proxy_protocol_v2.enabled" if !http => matches!(value, "true" | "false"),
        _ => {
            return Err(AwsError::validation(format!(
                "Target group attribute key '{key}' is not recognized (or not supported by \
                 Flotilla for {protocol} target groups)"
            )))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(AwsError::validation(format!(
            "Target group attribute '{key}' has an invalid value '{value}'"
        )))
    }
}

pub(crate) fn modify_attributes(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arn = p.required("TargetGroupArn")?.to_string();
    let entries = p
        .list_entries("Attributes", true)?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| AwsError::missing("Attributes"))?;
    let tg = api_tg(call, &arn)?;
    let mut attrs = tg.attributes.clone();
    for e in &entries {
        let key = e.required("Key")?;
        let value = e.get("Value").unwrap_or("");
        check_attribute(&tg.protocol, key, value)?;
        attrs.insert(key.to_string(), value.to_string());
    }
    let all = {
        let mut probe = tg.clone();
        probe.attributes = attrs.clone();
        attributes(&probe)
    };
    if all
        .get("slow_start.duration_seconds")
        .is_some_and(|v| v != "0")
        && all.get("load_balancing.algorithm.type").map(String::as_str)
            == Some("least_outstanding_requests")
    {
        return Err(AwsError::validation(
            "Slow start is not supported with the least_outstanding_requests algorithm",
        ));
    }
    tg.attributes = attrs;
    Ok(write_attributes(&all))
}

pub(crate) fn describe_attributes(call: &mut Call<'_>) -> AwsResult<String> {
    let (tg, _) = by_arn(call, call.p.required("TargetGroupArn")?)?;
    Ok(write_attributes(&attributes(&tg)))
}
