//! `[dns]`: the bind address, resolver networks, hosted zones and health checks. Record sets
//! are in `dns_records.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{named, Bind, Ctx, Span, Val};
use crate::dns::{Dns, DnsHealthCheck, DnsHealthCheckKind, HostedZone};
use crate::matching::Cidr;

/// What record sets are checked against once everything is decoded.
pub struct Known<'a> {
    /// Load balancer names.
    pub load_balancers: Vec<&'a str>,
    /// Distribution names.
    pub distributions: Vec<&'a str>,
}

/// Decodes `[dns]`; `None` when it is absent or broken (problems are in `ctx`).
pub(crate) fn decode_dns(ctx: &mut Ctx, v: &Val<'_>, known: &Known<'_>) -> Option<Dns> {
    let keys = ["bind", "networks", "zones", "health_checks"];
    let t = ctx.table(v, "dns".into(), &keys)?;
    let bind = t.req(ctx, "bind", Ctx::socket_addr);
    if let (Some(addr), Some(bv)) = (bind, t.get("bind")) {
        ctx.binds.push(Bind {
            addr,
            span: bv.span(),
            owner: "[dns] bind".into(),
        });
    }
    let networks = t.opt(ctx, "networks", decode_networks).unwrap_or_default();
    let mut health_checks = BTreeMap::new();
    let mut check_spans = Vec::new();
    if let Some(hv) = t.get("health_checks") {
        for (name, span, body) in named(ctx, hv, "health checks") {
            let path = format!("dns.health_checks.{}", super::quote_key(&name));
            if let Some(hc) = decode_health_check(ctx, body, path) {
                check_spans.push((name.clone(), span));
                health_checks.insert(name, hc);
            }
        }
    }
    check_children(ctx, &health_checks, &check_spans);
    let mut zones = BTreeMap::new();
    if let Some(zv) = t.get("zones") {
        for (name, span, body) in named(ctx, zv, "hosted zones") {
            let Some(zone_name) = super::dns_records::dns_name(ctx, &name, span) else {
                continue;
            };
            let path = format!("dns.zones.{}", super::quote_key(&name));
            let checks = &health_checks;
            if let Some(z) = decode_zone(ctx, body, path, zone_name, checks, known) {
                zones.insert(z.name.clone(), z);
            }
        }
    }
    Some(Dns {
        bind: bind?,
        networks,
        zones,
        health_checks,
    })
}

/// `networks = { "az-a" = ["10.1.0.0/16"], … }`, kept in file order.
fn decode_networks(ctx: &mut Ctx, v: &Val<'_>) -> Option<Vec<(Cidr, String)>> {
    let t = ctx.free_table(v, "dns.networks".into())?;
    let mut out = Vec::new();
    for (k, list) in t.map.iter() {
        let location = k.get_ref().to_string();
        for (s, span) in ctx.strings(list).unwrap_or_default() {
            match s.parse::<Cidr>() {
                Ok(c) => out.push((c, location.clone())),
                Err(e) => ctx.err(span, e),
            }
        }
    }
    Some(out)
}

fn decode_zone(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    name: String,
    checks: &BTreeMap<String, DnsHealthCheck>,
    known: &Known<'_>,
) -> Option<HostedZone> {
    let keys = ["name_servers", "hostmaster", "serial", "ttl", "records"];
    let t = ctx.table(v, path, &keys)?;
    let name_servers = match t.get("name_servers") {
        Some(nv) => {
            let items = ctx.strings(nv).unwrap_or_default();
            let mut out = Vec::new();
            for (s, span) in items {
                out.extend(super::dns_records::dns_name(ctx, &s, span));
            }
            if out.is_empty() {
                ctx.err(nv.span(), "a hosted zone needs at least one name server");
            }
            out
        }
        None => vec![format!("ns1.{name}")],
    };
    let hostmaster = t
        .opt(ctx, "hostmaster", |ctx, v| {
            let s = ctx.nonempty(v)?;
            super::dns_records::dns_name(ctx, &s.replacen('@', ".", 1), v.span())
        })
        .unwrap_or_else(|| format!("hostmaster.{name}"));
    let serial = t.opt(ctx, "serial", |c, v| c.u32(v, "serial")).unwrap_or(1);
    let ttl = t.opt(ctx, "ttl", ttl_secs).unwrap_or(300);
    let records = t
        .opt(ctx, "records", |ctx, v| {
            super::dns_records::decode_records(ctx, v, &t, &name, checks, known)
        })
        .unwrap_or_default();
    Some(HostedZone {
        name,
        name_servers,
        hostmaster,
        serial,
        ttl,
        records,
    })
}

/// A TTL: whole seconds as an integer (DNS's own unit) or a duration string.
pub(crate) fn ttl_secs(ctx: &mut Ctx, v: &Val<'_>) -> Option<u32> {
    let secs = match v.get_ref() {
        toml::de::DeValue::Integer(_) => ctx.integer(v)?,
        _ => i64::try_from(ctx.duration(v)?.as_secs()).unwrap_or(i64::MAX),
    };
    // RFC 2181 §8: at most 2^31 − 1.
    match u32::try_from(secs) {
        Ok(n) if n <= i32::MAX as u32 => Some(n),
        _ => {
            ctx.err(v.span(), "ttl must be between 0 and 2147483647 seconds");
            None
        }
    }
}

fn decode_health_check(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<DnsHealthCheck> {
    let keys = [
        "type",
        "target",
        "host",
        "path",
        "interval",
        "timeout",
        "failure_threshold",
        "search_string",
        "inverted",
        "children",
        "healthy_threshold",
    ];
    let t = ctx.table(v, path, &keys)?;
    let kinds = [
        ("http", DnsHealthCheckKind::Http),
        ("https", DnsHealthCheckKind::Https),
        ("tcp", DnsHealthCheckKind::Tcp),
        ("calculated", DnsHealthCheckKind::Calculated),
    ];
    let kind = t.req(ctx, "type", |c, v| c.choice(v, "health check type", &kinds))?;
    let calculated = kind == DnsHealthCheckKind::Calculated;
    let target: Option<SocketAddr> = t.opt(ctx, "target", Ctx::socket_addr);
    if !calculated && target.is_none() && t.get("target").is_none() {
        ctx.err(
            t.span.clone(),
            format!("missing required key `target` in {}", t.label()),
        );
    }
    let children = t
        .opt(ctx, "children", |c, v| {
            c.distinct_names(v, "child health check")
        })
        .unwrap_or_default();
    misplaced(
        ctx,
        &t,
        calculated,
        &["children", "healthy_threshold"],
        &["target", "host", "path", "search_string"],
    );
    if calculated && children.is_empty() {
        ctx.err(t.span.clone(), "a calculated health check needs `children`");
    }
    let interval = t
        .opt(ctx, "interval", |c, v| c.positive_duration(v, "interval"))
        .unwrap_or(Duration::from_secs(30));
    let timeout = t
        .opt(ctx, "timeout", |c, v| c.positive_duration(v, "timeout"))
        .unwrap_or_else(|| interval.min(Duration::from_secs(4)));
    let search_string = t.opt(ctx, "search_string", Ctx::nonempty);
    if let (Some(s), Some(sv)) = (&search_string, t.get("search_string")) {
        if s.len() > 255 {
            ctx.err(
                sv.span(),
                "search_string may be at most 255 characters (Route 53)",
            );
        }
    }
    let n = children.len() as i64;
    let healthy_threshold = t
        .opt(ctx, "healthy_threshold", |c, v| {
            c.int_in(v, "healthy_threshold", 0..=n.max(0))
        })
        .map_or(n as u32, |x| x as u32);
    Some(DnsHealthCheck {
        kind,
        target,
        host: t.opt(ctx, "host", Ctx::nonempty),
        path: t.opt(ctx, "path", path_value).unwrap_or_else(|| "/".into()),
        interval,
        timeout,
        failure_threshold: t
            .opt(ctx, "failure_threshold", |c, v| {
                c.int_in(v, "failure_threshold", 1..=10)
            })
            .map_or(3, |x| x as u32),
        search_string,
        inverted: t.opt(ctx, "inverted", Ctx::boolean).unwrap_or(false),
        children: children.into_iter().map(|(s, _)| s).collect(),
        healthy_threshold,
    })
}

/// Keys that only one side (calculated or probing) uses are reported on the other.
fn misplaced(
    ctx: &mut Ctx,
    t: &super::Tbl<'_, '_>,
    calculated: bool,
    calc_only: &[&str],
    probe_only: &[&str],
) {
    let wrong = if calculated { probe_only } else { calc_only };
    for k in wrong {
        if let Some(v) = t.get(k) {
            let what = if calculated {
                "a probing"
            } else {
                "a calculated"
            };
            ctx.err(
                v.span(),
                format!("`{k}` is only used by {what} health check"),
            );
        }
    }
}

fn path_value(ctx: &mut Ctx, v: &Val<'_>) -> Option<String> {
    let s = ctx.nonempty(v)?;
    if !s.starts_with('/') || s.chars().any(|c| c.is_ascii_control() || c == ' ') {
        ctx.err(
            v.span(),
            "path must start with `/` and contain no spaces or control characters",
        );
        return None;
    }
    Some(s)
}

/// Children must exist and must not themselves be calculated (as Route 53).
fn check_children(
    ctx: &mut Ctx,
    checks: &BTreeMap<String, DnsHealthCheck>,
    spans: &[(String, Span)],
) {
    for (name, span) in spans {
        let Some(hc) = checks.get(name) else { continue };
        for child in &hc.children {
            let msg = match checks.get(child) {
                None => format!(
                    "health check `{name}`: unknown child `{child}`{}",
                    crate::suggest::hint(child, checks.keys().map(String::as_str))
                ),
                Some(c) if c.kind == DnsHealthCheckKind::Calculated => format!(
                    "health check `{name}`: child `{child}` is calculated; children must probe"
                ),
                Some(_) => continue,
            };
            ctx.err(span.clone(), msg);
        }
    }
}

/// The admin API's record sets, written as TOML (`records = [{…}, …]`), decoded and checked
/// exactly as the config file's for `zone`; errors are messages without locations.
pub fn decode_api_records(
    text: &str,
    zone: &str,
    checks: &BTreeMap<String, DnsHealthCheck>,
    known: &Known<'_>,
) -> Result<Vec<crate::dns::RecordSet>, Vec<String>> {
    api_decode(text, &["records"], |ctx, root| {
        let v = root.get("records")?;
        super::dns_records::decode_records(ctx, v, root, zone, checks, known)
    })
}

/// The admin API's health check, written as TOML, decoded as the config file's.
pub fn decode_api_health_check(text: &str, name: &str) -> Result<DnsHealthCheck, Vec<String>> {
    let keys = ["check"];
    api_decode(text, &keys, |ctx, root| {
        decode_health_check(
            ctx,
            root.get("check")?,
            format!("dns.health_checks.{}", super::quote_key(name)),
        )
    })
}

fn api_decode<T>(
    text: &str,
    keys: &[&str],
    f: impl FnOnce(&mut Ctx, &super::Tbl<'_, '_>) -> Option<T>,
) -> Result<T, Vec<String>> {
    let root = toml::de::DeTable::parse(text).map_err(|e| vec![e.message().to_string()])?;
    let span = root.span();
    let root = toml::Spanned::new(span, toml::de::DeValue::Table(root.into_inner()));
    let mut ctx = Ctx::default();
    let out = ctx
        .table(&root, String::new(), keys)
        .and_then(|t| f(&mut ctx, &t));
    match (out, ctx.diags.is_empty()) {
        (Some(v), true) => Ok(v),
        (_, false) => Err(ctx.diags.into_iter().map(|(_, m)| m).collect()),
        (None, true) => Err(vec!["missing value".to_string()]),
    }
}
