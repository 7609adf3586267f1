//! The edge's admin API over the running DNS service and distributions. Record sets and
//! health checks sent as JSON are rewritten as TOML and decoded by `flotilla-config`, so the
//! API accepts exactly what the config file would.

use std::sync::Arc;

use flotilla_admin::edge_api::{
    AliasInfo, DistributionInfo, DnsHealthCheckInfo, DnsZoneInfo, EdgeBackend, InvalidationInfo,
    RecordSetInfo, RecordSetsRequest,
};
use flotilla_admin::AdminError;
use flotilla_config::dns::{AliasTarget, RecordData, RecordSet, RecordType, RecordValue, Routing};
use flotilla_dns::DnsService;

use super::EdgeRuntime;
use crate::shared::{lock, Shared};

/// The edge's admin backend.
pub(crate) struct EdgeAdmin(pub(crate) Arc<Shared>);

impl EdgeAdmin {
    fn with<R>(
        &self,
        f: impl FnOnce(&EdgeRuntime) -> Result<R, AdminError>,
    ) -> Result<R, AdminError> {
        let guard = lock(&self.0.edge);
        let e = guard
            .as_ref()
            .ok_or_else(|| AdminError::NotFound("the edge is not running".into()))?;
        f(e)
    }

    fn dns<R>(
        &self,
        f: impl FnOnce(&DnsService) -> Result<R, AdminError>,
    ) -> Result<R, AdminError> {
        self.with(|e| {
            f(e.dns
                .as_ref()
                .ok_or_else(|| AdminError::NotFound("this config has no [dns]".into()))?)
        })
    }
}

/// A JSON value as TOML text (strings keep JSON's escapes, which TOML's basic strings read).
fn toml_text(v: &serde_json::Value) -> Result<String, AdminError> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => {
            return Err(AdminError::BadRequest(
                "null is not a value here; leave the key out".into(),
            ))
        }
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(toml_text)
                .collect::<Result<Vec<_>, _>>()?
                .join(", ")
        ),
        Value::Object(o) => {
            let items = o
                .iter()
                .map(|(k, v)| Ok(format!("{} = {}", Value::String(k.clone()), toml_text(v)?)))
                .collect::<Result<Vec<_>, AdminError>>()?;
            format!("{{{}}}", items.join(", "))
        }
    })
}

fn invalid(errors: Vec<String>) -> AdminError {
    AdminError::BadRequest(errors.join("; "))
}

fn record_info(r: &RecordSet) -> RecordSetInfo {
    let mut info = RecordSetInfo {
        name: r.name.clone(),
        rtype: r.rtype.as_str().to_string(),
        ttl: Some(r.ttl),
        routing: Some(r.routing.as_str().to_string()),
        set_identifier: r.set_identifier.clone(),
        health_check: r.health_check.clone(),
        ..Default::default()
    };
    match &r.routing {
        Routing::Weighted { weight } => info.weight = Some(u32::from(*weight)),
        Routing::Failover { primary } => {
            info.failover = Some(if *primary { "primary" } else { "secondary" }.into())
        }
        Routing::Latency { region } => info.region = Some(region.clone()),
        Routing::Geoproximity { location, bias } => {
            info.location = Some(location.clone());
            info.bias = Some(i32::from(*bias));
        }
        Routing::Simple | Routing::MultiValue => {}
    }
    match &r.data {
        RecordData::Values(vs) => info.values = vs.iter().map(value_text).collect(),
        RecordData::Alias {
            target,
            evaluate_target_health,
        } => {
            info.ttl = None;
            let mut a = AliasInfo {
                evaluate_target_health: Some(*evaluate_target_health),
                ..Default::default()
            };
            match target {
                AliasTarget::LoadBalancer(n) => a.load_balancer = Some(n.clone()),
                AliasTarget::Distribution(n) => a.distribution = Some(n.clone()),
                AliasTarget::Record(n) => a.record = Some(n.clone()),
            }
            info.alias = Some(a);
        }
    }
    info
}

fn value_text(v: &RecordValue) -> String {
    match v {
        RecordValue::A(ip) => ip.to_string(),
        RecordValue::Aaaa(ip) => ip.to_string(),
        RecordValue::Cname(n) => n.clone(),
        RecordValue::Txt(t) => t.clone(),
        RecordValue::Mx {
            preference,
            exchange,
        } => format!("{preference} {exchange}"),
        RecordValue::Srv {
            priority,
            weight,
            port,
            target,
        } => format!("{priority} {weight} {port} {target}"),
    }
}

pub(crate) fn check_info(dns: &DnsService, name: &str) -> Option<DnsHealthCheckInfo> {
    let specs = dns.health_check_specs();
    dns.health_checks()
        .into_iter()
        .find(|(s, _)| s.name == name)
        .map(|(s, ago)| {
            let spec = specs.get(&s.name);
            DnsHealthCheckInfo {
                kind: s.kind.as_str().to_string(),
                target: spec.and_then(|c| c.target).map(|t| t.to_string()),
                healthy: s.healthy,
                reason: s.reason,
                pending_flips: s.pending_flips,
                failure_threshold: spec.map_or(0, |c| c.failure_threshold),
                interval_seconds: spec.map_or(0.0, |c| c.interval.as_secs_f64()),
                last_checked_seconds_ago: ago.map(|d| d.as_secs_f64()),
                name: s.name,
            }
        })
}

/// The hosted zones as the API shows them.
pub(crate) fn zones_info(d: &DnsService) -> Vec<DnsZoneInfo> {
    d.zones()
        .zones()
        .map(|z| DnsZoneInfo {
            name: z.config.name.clone(),
            serial: z.config.serial,
            name_servers: z.config.name_servers.clone(),
            record_sets: z.config.records.len(),
        })
        .collect()
}

/// A zone's record sets as the API shows them.
pub(crate) fn records_info(d: &DnsService, zone: &str) -> Result<Vec<RecordSetInfo>, AdminError> {
    let zones = d.zones();
    let z = zones
        .zone(zone)
        .ok_or_else(|| AdminError::NotFound(format!("no hosted zone `{zone}`")))?;
    Ok(z.config.records.iter().map(record_info).collect())
}

/// Every health check with its state as this server sees it.
pub(crate) fn checks_info(d: &DnsService) -> Vec<DnsHealthCheckInfo> {
    d.health_checks()
        .into_iter()
        .filter_map(|(s, _)| check_info(d, &s.name))
        .collect()
}

/// A `PUT …/records` request decoded exactly as the config file would be, against `config`'s
/// load balancers and distributions and the health checks in force: the name, the type and
/// the record sets.
pub(crate) fn decode_records(
    config: &flotilla_config::Config,
    checks: &std::collections::BTreeMap<String, flotilla_config::dns::DnsHealthCheck>,
    zone: &str,
    request: &RecordSetsRequest,
) -> Result<(String, RecordType, Vec<RecordSet>), AdminError> {
    let rtype = RecordType::ALL
        .iter()
        .find(|(n, _)| *n == request.rtype)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            AdminError::BadRequest(format!("unknown record type `{}`", request.rtype))
        })?;
    let sets = serde_json::to_value(&request.record_sets)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let text = format!("records = {}", toml_text(&sets)?);
    let known = flotilla_config::Known {
        load_balancers: config.load_balancers.keys().map(String::as_str).collect(),
        distributions: config.distributions.keys().map(String::as_str).collect(),
    };
    let decoded =
        flotilla_config::decode_api_records(&text, zone, checks, &known).map_err(invalid)?;
    let name = decoded
        .first()
        .map_or_else(|| qualify(&request.name, zone), |r| r.name.clone());
    if decoded.iter().any(|r| r.name != name || r.rtype != rtype) {
        return Err(AdminError::BadRequest(
            "every record set must have the request's name and type".into(),
        ));
    }
    Ok((name, rtype, decoded))
}

/// A `PUT /v1/dns/health-checks/{name}` body decoded exactly as the config file would be.
pub(crate) fn decode_health_check(
    name: &str,
    spec: &serde_json::Value,
) -> Result<flotilla_config::dns::DnsHealthCheck, AdminError> {
    let text = format!("check = {}", toml_text(spec)?);
    flotilla_config::decode_api_health_check(&text, name).map_err(invalid)
}

/// Every distribution with its counters (this process's cache).
pub(crate) fn distributions_info(edges: &flotilla_edge::EdgeService) -> Vec<DistributionInfo> {
    edges
        .all()
        .map(|(name, edge)| {
            let s = edge.stats.snapshot();
            let (bytes, objects) = edge.cached();
            DistributionInfo {
                name: name.clone(),
                listeners: edges
                    .addresses(name)
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                requests: s.requests,
                hits: s.hits,
                refresh_hits: s.refresh_hits,
                misses: s.misses,
                errors: s.errors,
                hit_ratio: s.hit_ratio(),
                origin_requests: s.origin_requests,
                bytes_saved: s.bytes_saved,
                cached_bytes: bytes,
                cached_objects: objects,
                cache_size: edge.config().cache_size,
            }
        })
        .collect()
}

impl EdgeBackend for EdgeAdmin {
    fn dns_zones(&self) -> Result<Vec<DnsZoneInfo>, AdminError> {
        self.dns(|d| Ok(zones_info(d)))
    }

    fn dns_records(&self, zone: &str) -> Result<Vec<RecordSetInfo>, AdminError> {
        self.dns(|d| records_info(d, zone))
    }

    fn put_dns_records(
        &self,
        zone: &str,
        request: RecordSetsRequest,
    ) -> Result<Vec<RecordSetInfo>, AdminError> {
        let config = self.0.config().clone();
        self.dns(|d| {
            let (name, rtype, decoded) =
                decode_records(&config, &d.health_check_specs(), zone, &request)?;
            d.set_records(zone, &name, rtype, decoded)
                .map_err(|e| AdminError::NotFound(e.to_string()))?;
            records_info(d, zone)
        })
    }

    fn dns_health_checks(&self) -> Result<Vec<DnsHealthCheckInfo>, AdminError> {
        self.dns(|d| Ok(checks_info(d)))
    }

    fn put_dns_health_check(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<DnsHealthCheckInfo, AdminError> {
        let check = decode_health_check(name, &spec)?;
        self.dns(|d| {
            d.put_health_check(name, check)
                .map_err(|e| AdminError::BadRequest(e.to_string()))?;
            check_info(d, name).ok_or_else(|| AdminError::Internal("health check vanished".into()))
        })
    }

    fn delete_dns_health_check(&self, name: &str) -> Result<(), AdminError> {
        self.dns(|d| {
            d.delete_health_check(name).map_err(|e| match e {
                flotilla_dns::ChangeError::NoHealthCheck(_) => AdminError::NotFound(e.to_string()),
                _ => AdminError::Conflict(e.to_string()),
            })
        })
    }

    fn distributions(&self) -> Vec<DistributionInfo> {
        self.with(|e| Ok(distributions_info(&e.edges)))
            .unwrap_or_default()
    }

    fn invalidate(
        &self,
        distribution: &str,
        paths: Vec<String>,
    ) -> Result<InvalidationInfo, AdminError> {
        self.with(|e| {
            let edge = e
                .edges
                .get(distribution)
                .ok_or_else(|| AdminError::NotFound(format!("no distribution `{distribution}`")))?;
            let inv = edge.invalidate(paths).map_err(AdminError::BadRequest)?;
            Ok(invalidation_info(&inv))
        })
    }

    fn invalidations(&self, distribution: &str) -> Result<Vec<InvalidationInfo>, AdminError> {
        self.with(|e| {
            let edge = e
                .edges
                .get(distribution)
                .ok_or_else(|| AdminError::NotFound(format!("no distribution `{distribution}`")))?;
            Ok(edge.invalidations().iter().map(invalidation_info).collect())
        })
    }
}

fn invalidation_info(inv: &flotilla_edge::invalidate::Invalidation) -> InvalidationInfo {
    InvalidationInfo {
        id: inv.id.clone(),
        status: inv.status.to_string(),
        paths: inv.paths.clone(),
        create_time: humantime::format_rfc3339_seconds(inv.create_time).to_string(),
        objects: inv.objects,
    }
}

/// `www` in `example.test` is `www.example.test` (for an empty list, which decodes nothing).
fn qualify(name: &str, zone: &str) -> String {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if n == "@" {
        zone.to_string()
    } else if n == zone || n.ends_with(&format!(".{zone}")) {
        n
    } else {
        format!("{n}.{zone}")
    }
}
