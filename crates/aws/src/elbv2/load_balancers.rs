//! Load balancers: create (idempotent for identical settings), describe, attributes, delete.
//! A load balancer is `active` at once; its `DNSName` is the address its listeners bind.

use std::collections::BTreeMap;

use crate::call::{iso, now_ms, Call};
use crate::model::LoadBalancerRes;
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult};
use crate::views::{self, read_only};

use super::tags::parse_tags;

fn not_found() -> AwsError {
    AwsError::new(
        "LoadBalancerNotFound",
        "One or more load balancers not found",
    )
}

/// The load balancer an ARN names: (resource, from the file).
pub(crate) fn by_arn(call: &Call<'_>, arn: &str) -> AwsResult<(LoadBalancerRes, bool)> {
    views::load_balancers(call)
        .into_iter()
        .find(|(l, _)| l.arn == arn)
        .ok_or_else(not_found)
}

/// The host name clients reach the listeners at.
pub(crate) fn dns_name(call: &Call<'_>) -> String {
    if call.listen_ip.is_unspecified() {
        "127.0.0.1".into()
    } else {
        call.listen_ip.to_string()
    }
}

fn write(call: &Call<'_>, x: &mut Xml, lb: &LoadBalancerRes) {
    x.leaf("LoadBalancerArn", &lb.arn)
        .leaf("DNSName", dns_name(call))
        .leaf("CanonicalHostedZoneId", "Z35SXDOTRQ7X7K")
        .leaf("CreatedTime", iso(lb.created_ms))
        .leaf("LoadBalancerName", &lb.name)
        .leaf("Scheme", &lb.scheme)
        .leaf("VpcId", call.ids.vpc_id())
        .node("State", |x| {
            x.leaf("Code", "active");
        })
        .leaf("Type", &lb.kind)
        .list("AvailabilityZones", "member", &lb.zones, |x, z| {
            x.leaf("ZoneName", call.zones.api(z))
                .leaf("SubnetId", call.ids.subnet_id(z))
                .list(
                    "LoadBalancerAddresses",
                    "member",
                    Vec::<()>::new(),
                    |_, _| {},
                );
        })
        .strings("SecurityGroups", "member", &lb.security_groups)
        .leaf("IpAddressType", "ipv4");
}

fn answer(call: &Call<'_>, lbs: &[LoadBalancerRes], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.list("LoadBalancers", "member", lbs, |x, lb| write(call, x, lb));
    x.opt("NextMarker", next);
    x.finish()
}

/// The cluster zones of `Subnets`/`SubnetMappings` (all zones when neither is given).
fn zones_of(call: &Call<'_>, network: bool) -> AwsResult<Vec<String>> {
    let p = call.p;
    let mut subnets = p.strings("Subnets", true)?.unwrap_or_default();
    for m in p.list_entries("SubnetMappings", true)?.unwrap_or_default() {
        subnets.push(m.required("SubnetId")?.to_string());
    }
    if subnets.is_empty() {
        return Ok(call.file.cluster.zones.clone());
    }
    let mut zones = Vec::new();
    for s in &subnets {
        let zone = call
            .file
            .cluster
            .zones
            .iter()
            .find(|z| &call.ids.subnet_id(z) == s)
            .ok_or_else(|| {
                AwsError::new(
                    "SubnetNotFound",
                    format!("The subnet ID '{s}' is not valid"),
                )
            })?;
        if zones.contains(zone) {
            return Err(AwsError::validation(
                "You cannot specify multiple subnets in the same Availability Zone",
            ));
        }
        zones.push(zone.clone());
    }
    if !network && zones.len() < 2 && call.file.cluster.zones.len() >= 2 {
        return Err(AwsError::validation(
            "At least two subnets in two different Availability Zones must be specified",
        ));
    }
    Ok(zones)
}

pub(crate) fn create(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let name = p.required("Name")?.to_string();
    super::check_name(&name, "load balancer")?;
    let kind = p.get("Type").unwrap_or("application");
    if !matches!(kind, "application" | "network") {
        return Err(AwsError::validation(format!(
            "Load balancer type '{kind}' is not supported by Flotilla (application, network)"
        )));
    }
    let scheme = p.get("Scheme").unwrap_or("internet-facing");
    if !matches!(scheme, "internet-facing" | "internal") {
        return Err(AwsError::validation(format!(
            "Scheme '{scheme}' is not valid"
        )));
    }
    if p.get("IpAddressType").is_some_and(|t| t != "ipv4") {
        return Err(AwsError::validation(
            "Only the ipv4 IpAddressType is supported by Flotilla",
        ));
    }
    let zones = zones_of(call, kind == "network")?;
    let lb = LoadBalancerRes {
        arn: call.ids.load_balancer_arn(
            if kind == "network" { "net" } else { "app" },
            &name,
            &call.ids.hex16(),
        ),
        name: name.clone(),
        kind: kind.to_string(),
        scheme: scheme.to_string(),
        zones,
        security_groups: p.strings("SecurityGroups", true)?.unwrap_or_default(),
        attributes: BTreeMap::new(),
        tags: parse_tags(p)?,
        created_ms: now_ms(),
    };
    if let Some(old) = call.reg.load_balancers.get(&name) {
        let same = (&old.kind, &old.scheme, &old.zones) == (&lb.kind, &lb.scheme, &lb.zones);
        if same {
            return Ok(answer(call, std::slice::from_ref(old), None));
        }
        return Err(duplicate(&name));
    }
    if call.file.load_balancers.contains_key(&name) {
        return Err(duplicate(&name));
    }
    call.reg.load_balancers.insert(name, lb.clone());
    Ok(answer(call, &[lb], None))
}

fn duplicate(name: &str) -> AwsError {
    AwsError::new(
        "DuplicateLoadBalancerName",
        format!("A load balancer with the same name '{name}' exists, but with different settings"),
    )
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arns = p.strings("LoadBalancerArns", true)?.unwrap_or_default();
    let names = p.strings("Names", true)?.unwrap_or_default();
    let all: Vec<LoadBalancerRes> = views::load_balancers(call)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let picked = super::pick(
        all,
        &arns,
        &names,
        |r: &LoadBalancerRes| (r.arn.as_str(), r.name.as_str()),
        not_found,
    )?;
    let (page, next) = super::page(call, picked)?;
    Ok(answer(call, &page, next))
}

pub(crate) fn delete(call: &mut Call<'_>) -> AwsResult<String> {
    let arn = call.p.required("LoadBalancerArn")?;
    let Ok((lb, file)) = by_arn(call, arn) else {
        return Ok(String::new());
    };
    if file {
        return Err(read_only("load balancer", &lb.name));
    }
    if lb
        .attributes
        .get("deletion_protection.enabled")
        .map(String::as_str)
        == Some("true")
    {
        return Err(AwsError::new(
            "OperationNotPermitted",
            format!(
                "Load balancer '{arn}' cannot be deleted because deletion protection is enabled"
            ),
        ));
    }
    let listeners: Vec<String> = call
        .reg
        .listeners
        .values()
        .filter(|l| l.load_balancer == lb.name)
        .map(|l| l.arn.clone())
        .collect();
    call.reg
        .rules
        .retain(|_, r| !listeners.contains(&r.listener_arn));
    call.reg.listeners.retain(|a, _| !listeners.contains(a));
    call.reg.load_balancers.remove(&lb.name);
    Ok(String::new())
}

fn attributes(lb: &LoadBalancerRes) -> BTreeMap<String, String> {
    let defaults: &[(&str, &str)] = if lb.kind == "network" {
        &[
            ("deletion_protection.enabled", "false"),
            ("load_balancing.cross_zone.enabled", "false"),
        ]
    } else {
        &[
            ("deletion_protection.enabled", "false"),
            ("idle_timeout.timeout_seconds", "60"),
            ("routing.http2.enabled", "true"),
            ("access_logs.s3.enabled", "false"),
        ]
    };
    let mut all: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(lb.attributes.clone());
    all
}

fn write_attributes(attrs: &BTreeMap<String, String>) -> String {
    let mut x = Xml::new();
    x.list("Attributes", "member", attrs, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    });
    x.finish()
}

pub(crate) fn describe_attributes(call: &mut Call<'_>) -> AwsResult<String> {
    let (lb, _) = by_arn(call, call.p.required("LoadBalancerArn")?)?;
    Ok(write_attributes(&attributes(&lb)))
}

pub(crate) fn modify_attributes(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let (lb, file) = by_arn(call, p.required("LoadBalancerArn")?)?;
    if file {
        return Err(read_only("load balancer", &lb.name));
    }
    let entries = p
        .list_entries("Attributes", true)?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| AwsError::missing("Attributes"))?;
    let known = attributes(&lb);
    let mut attrs = lb.attributes.clone();
    for e in &entries {
        let key = e.required("Key")?;
        let value = e.get("Value").unwrap_or("");
        let ok = match key {
            "idle_timeout.timeout_seconds" => value.parse::<u32>().is_ok_and(|n| (1..=4000).contains(&n)),
            "access_logs.s3.enabled" => value == "false",
            k if known.contains_key(k) => matches!(value, "true" | "false"),
            _ => {
                return Err(AwsError::validation(format!(
                    "Load balancer attribute key '{key}' is not recognized (or not supported by Flotilla)"
                )))
            }
        };
        if !ok {
            return Err(AwsError::validation(format!(
                "Load balancer attribute '{key}' has an invalid value '{value}'"
            )));
        }
        attrs.insert(key.to_string(), value.to_string());
    }
    let entry = call
        .reg
        .load_balancers
        .get_mut(&lb.name)
        .ok_or_else(not_found)?;
    entry.attributes = attrs;
    let all = attributes(entry);
    Ok(write_attributes(&all))
}
