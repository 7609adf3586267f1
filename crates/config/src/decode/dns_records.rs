//! `[[dns.zones.ZONE.records]]`: record sets, their values and Route 53's rules on how record
//! sets of one name may combine.

use std::collections::BTreeMap;

use super::dns::{ttl_secs, Known};
use super::{Ctx, Span, Tbl, Val};
use crate::dns::{
    AliasTarget, DnsHealthCheck, RecordData, RecordSet, RecordType, RecordValue, Routing,
};

/// Route 53's TTL for alias records to load balancers and distributions.
pub const ALIAS_TTL: u32 = 60;

/// A DNS name as the server keeps it: lowercase, no trailing dot, labels of 1–63 letters,
/// digits, `-` or `_` (a leading `*` label is a wildcard), at most 253 characters.
pub(crate) fn dns_name(ctx: &mut Ctx, s: &str, span: Span) -> Option<String> {
    let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        });
    if !ok {
        ctx.err(span, format!("invalid DNS name `{s}`"));
        return None;
    }
    Some(name)
}

/// `www` (relative), `@` (the apex) or a name ending with the zone (absolute).
fn owner_name(ctx: &mut Ctx, s: &str, span: Span, zone: &str) -> Option<String> {
    let trimmed = s.trim();
    if trimmed == "@" {
        return Some(zone.to_string());
    }
    let full = dns_name(ctx, trimmed, span.clone())?;
    let inside = full == zone || full.ends_with(&format!(".{zone}"));
    if inside {
        Some(full)
    } else if trimmed.ends_with('.') {
        ctx.err(span, format!("`{s}` is outside the hosted zone `{zone}`"));
        None
    } else {
        Some(format!("{full}.{zone}"))
    }
}

/// Decodes a zone's `records` array and checks how its record sets combine.
pub(crate) fn decode_records(
    ctx: &mut Ctx,
    v: &Val<'_>,
    zone_tbl: &Tbl<'_, '_>,
    zone: &str,
    checks: &BTreeMap<String, DnsHealthCheck>,
    known: &Known<'_>,
) -> Option<Vec<RecordSet>> {
    let items = ctx.array(v)?;
    let mut out: Vec<(RecordSet, Span)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", zone_tbl.child("records"));
        if let Some(r) = decode_record(ctx, item, path, zone, checks, known) {
            out.push((r, item.span()));
        }
    }
    check_sets(ctx, zone, &out);
    Some(out.into_iter().map(|(r, _)| r).collect())
}

fn decode_record(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    zone: &str,
    checks: &BTreeMap<String, DnsHealthCheck>,
    known: &Known<'_>,
) -> Option<RecordSet> {
    let keys = [
        "name",
        "type",
        "ttl",
        "values",
        "alias",
        "routing",
        "set_identifier",
        "weight",
        "failover",
        "region",
        "location",
        "bias",
        "health_check",
    ];
    let t = ctx.table(v, path, &keys)?;
    let name = t.req(ctx, "name", |ctx, v| {
        let s = ctx.nonempty(v)?;
        owner_name(ctx, &s, v.span(), zone)
    });
    let rtype = t.req(ctx, "type", |c, v| {
        c.choice(v, "record type", &RecordType::ALL)
    })?;
    let routing = decode_routing(ctx, &t)?;
    let health_check = t.opt(ctx, "health_check", |ctx, v| {
        let s = ctx.nonempty(v)?;
        if !checks.contains_key(&s) {
            let hint = crate::suggest::hint(&s, checks.keys().map(String::as_str));
            ctx.err(
                v.span(),
                format!("unknown health check `{s}`: not defined in [dns.health_checks]{hint}"),
            );
        }
        Some(s)
    });
    let data = match (t.get("values"), t.get("alias")) {
        (Some(_), Some(a)) => {
            ctx.err(
                a.span(),
                "a record set has either `values` or `alias`, not both",
            );
            return None;
        }
        (None, None) => {
            ctx.err(
                t.span.clone(),
                format!("{} needs `values` or `alias`", t.label()),
            );
            return None;
        }
        (Some(vals), None) => RecordData::Values(decode_values(ctx, vals, rtype, zone)?),
        (None, Some(a)) => decode_alias(ctx, a, &t, rtype, zone, known)?,
    };
    let alias_to_resource = matches!(
        data,
        RecordData::Alias {
            target: AliasTarget::LoadBalancer(_) | AliasTarget::Distribution(_),
            ..
        }
    );
    let ttl = match t.get("ttl") {
        Some(tv) if alias_to_resource => {
            ctx.err(
                tv.span(),
                "alias records take their target's TTL (60 s); remove `ttl`",
            );
            None
        }
        Some(tv) => ttl_secs(ctx, tv),
        None if alias_to_resource => Some(ALIAS_TTL),
        None => Some(300),
    };
    if matches!(routing, Routing::MultiValue) && matches!(data, RecordData::Alias { .. }) {
        ctx.err(
            t.span.clone(),
            "multivalue answer record sets cannot be aliases (Route 53)",
        );
    }
    Some(RecordSet {
        name: name?,
        rtype,
        ttl: ttl?,
        set_identifier: t.opt(ctx, "set_identifier", Ctx::nonempty),
        routing,
        health_check,
        data,
    })
}

fn decode_routing(ctx: &mut Ctx, t: &Tbl<'_, '_>) -> Option<Routing> {
    let names = [
        ("simple", 0u8),
        ("weighted", 1),
        ("failover", 2),
        ("multivalue", 3),
        ("latency", 4),
        ("geoproximity", 5),
    ];
    let which = t
        .opt(ctx, "routing", |c, v| c.choice(v, "routing policy", &names))
        .unwrap_or(0);
    let uses: &[&str] = match which {
        1 => &["weight"],
        2 => &["failover"],
        4 => &["region"],
        5 => &["location", "bias"],
        _ => &[],
    };
    for k in ["weight", "failover", "region", "location", "bias"] {
        if let (false, Some(v)) = (uses.contains(&k), t.get(k)) {
            ctx.err(
                v.span(),
                format!("`{k}` does not apply to this record set's routing policy"),
            );
        }
    }
    Some(match which {
        1 => Routing::Weighted {
            weight: t.req(ctx, "weight", |c, v| c.int_in(v, "weight", 0..=255))? as u8,
        },
        2 => Routing::Failover {
            primary: t.req(ctx, "failover", |c, v| {
                c.choice(
                    v,
                    "failover role",
                    &[("primary", true), ("secondary", false)],
                )
            })?,
        },
        3 => Routing::MultiValue,
        4 => Routing::Latency {
            region: t.req(ctx, "region", Ctx::nonempty)?,
        },
        5 => Routing::Geoproximity {
            location: t.req(ctx, "location", Ctx::nonempty)?,
            bias: t
                .opt(ctx, "bias", |c, v| c.int_in(v, "bias", -99..=99))
                .unwrap_or(0) as i8,
        },
        _ => Routing::Simple,
    })
}

fn decode_values(
    ctx: &mut Ctx,
    v: &Val<'_>,
    rtype: RecordType,
    zone: &str,
) -> Option<Vec<RecordValue>> {
    let items = ctx.strings(v)?;
    if items.is_empty() {
        ctx.err(v.span(), "values must list at least one value");
        return None;
    }
    if rtype == RecordType::Cname && items.len() > 1 {
        ctx.err(v.span(), "a CNAME record set has exactly one value");
    }
    let mut out = Vec::new();
    for (s, span) in items {
        match parse_value(rtype, &s, zone) {
            Ok(val) => out.push(val),
            Err(e) => ctx.err(span, e),
        }
    }
    Some(out)
}

/// A value in Route 53's notation for its type (`"10 mail.example.test"` for MX,
/// `"10 5 5060 sip.example.test"` for SRV).
pub fn parse_value(rtype: RecordType, s: &str, _zone: &str) -> Result<RecordValue, String> {
    let bad = |what: &str| format!("invalid {} value `{s}`: expected {what}", rtype.as_str());
    let host = |h: &str| -> Result<String, String> {
        let mut probe = Ctx::default();
        dns_name(&mut probe, h, 0..0).ok_or_else(|| bad("a host name"))
    };
    let num = |n: &str| n.parse::<u16>().map_err(|_| bad("numbers 0–65535 first"));
    Ok(match rtype {
        RecordType::A => RecordValue::A(s.trim().parse().map_err(|_| bad("an IPv4 address"))?),
        RecordType::Aaaa => {
            RecordValue::Aaaa(s.trim().parse().map_err(|_| bad("an IPv6 address"))?)
        }
        RecordType::Cname => RecordValue::Cname(host(s)?),
        RecordType::Txt if s.len() > 255 => return Err(bad("at most 255 bytes")),
        RecordType::Txt => RecordValue::Txt(s.to_string()),
        RecordType::Mx => match s.split_whitespace().collect::<Vec<_>>()[..] {
            [p, h] => RecordValue::Mx {
                preference: num(p)?,
                exchange: host(h)?,
            },
            _ => return Err(bad("`PREFERENCE HOST`")),
        },
        RecordType::Srv => match s.split_whitespace().collect::<Vec<_>>()[..] {
            [p, w, port, h] => RecordValue::Srv {
                priority: num(p)?,
                weight: num(w)?,
                port: num(port)?,
                target: host(h)?,
            },
            _ => return Err(bad("`PRIORITY WEIGHT PORT HOST`")),
        },
    })
}

fn decode_alias(
    ctx: &mut Ctx,
    v: &Val<'_>,
    record: &Tbl<'_, '_>,
    rtype: RecordType,
    zone: &str,
    known: &Known<'_>,
) -> Option<RecordData> {
    let keys = [
        "load_balancer",
        "distribution",
        "record",
        "evaluate_target_health",
    ];
    let t = ctx.table(v, record.child("alias"), &keys)?;
    let given: Vec<&str> = ["load_balancer", "distribution", "record"]
        .into_iter()
        .filter(|k| t.get(k).is_some())
        .collect();
    if given.len() != 1 {
        ctx.err(
            v.span(),
            "an alias names exactly one of `load_balancer`, `distribution`, `record`",
        );
        return None;
    }
    let key = given[0];
    let tv = t.get(key)?;
    let name = ctx.nonempty(tv)?;
    let (list, section) = match key {
        "load_balancer" => (&known.load_balancers, "[load_balancers.NAME]"),
        "distribution" => (&known.distributions, "[distributions.NAME]"),
        _ => (&Vec::new(), ""),
    };
    let target = match key {
        "record" => AliasTarget::Record(owner_name(ctx, &name, tv.span(), zone)?),
        _ if !list.contains(&name.as_str()) => {
            let hint = crate::suggest::hint(&name, list.iter().copied());
            ctx.err(
                tv.span(),
                format!(
                    "unknown {} `{name}`: not defined in {section}{hint}",
                    key.replace('_', " ")
                ),
            );
            return None;
        }
        "load_balancer" => AliasTarget::LoadBalancer(name),
        _ => AliasTarget::Distribution(name),
    };
    if !matches!(target, AliasTarget::Record(_))
        && !matches!(rtype, RecordType::A | RecordType::Aaaa)
    {
        ctx.err(
            v.span(),
            "an alias to a load balancer or distribution is an A or AAAA record set",
        );
    }
    Some(RecordData::Alias {
        target,
        evaluate_target_health: t
            .opt(ctx, "evaluate_target_health", Ctx::boolean)
            .unwrap_or(false),
    })
}

/// Route 53's rules for record sets of one name: one policy per name and type, identifiers
/// where the policy needs them and unique, one primary and one secondary, and a CNAME alone
/// (and never at the apex).
fn check_sets(ctx: &mut Ctx, zone: &str, sets: &[(RecordSet, Span)]) {
    let mut by_key: BTreeMap<(&str, RecordType), Vec<&(RecordSet, Span)>> = BTreeMap::new();
    for s in sets {
        by_key
            .entry((s.0.name.as_str(), s.0.rtype))
            .or_default()
            .push(s);
    }
    for ((name, rtype), group) in &by_key {
        let first = &group[0].0;
        for (r, span) in group.iter().skip(1) {
            if r.routing.as_str() != first.routing.as_str() {
                ctx.err(span.clone(), format!("{name} {}: every record set of a name and type has the same routing policy (the first is {})", rtype.as_str(), first.routing.as_str()));
            } else if matches!(r.routing, Routing::Simple) {
                ctx.err(
                    span.clone(),
                    format!(
                        "{name} {}: a simple record set is the only one of its name and type",
                        rtype.as_str()
                    ),
                );
            }
        }
        check_identifiers(ctx, name, *rtype, group);
        if *rtype == RecordType::Cname {
            if *name == zone {
                ctx.err(
                    group[0].1.clone(),
                    "a CNAME cannot be at the zone apex; use an alias",
                );
            }
            if by_key
                .keys()
                .any(|(n, t)| n == name && *t != RecordType::Cname)
            {
                ctx.err(
                    group[0].1.clone(),
                    format!("{name} has a CNAME and other records; a CNAME must be alone"),
                );
            }
        }
    }
}

fn check_identifiers(ctx: &mut Ctx, name: &str, rtype: RecordType, group: &[&(RecordSet, Span)]) {
    let mut seen: Vec<&str> = Vec::new();
    let (mut primaries, mut secondaries) = (0, 0);
    for (r, span) in group {
        match (&r.routing, &r.set_identifier) {
            (Routing::Simple, Some(_)) => ctx.err(
                span.clone(),
                "set_identifier applies only to routing policies other than simple",
            ),
            (Routing::Simple, None) => {}
            (_, None) => ctx.err(
                span.clone(),
                format!(
                    "{name} {}: a {} record set needs a set_identifier",
                    rtype.as_str(),
                    r.routing.as_str()
                ),
            ),
            (_, Some(id)) if seen.contains(&id.as_str()) => ctx.err(
                span.clone(),
                format!(
                    "duplicate set_identifier `{id}` for {name} {}",
                    rtype.as_str()
                ),
            ),
            (_, Some(id)) => seen.push(id),
        }
        if let Routing::Failover { primary } = r.routing {
            let n = if primary {
                &mut primaries
            } else {
                &mut secondaries
            };
            *n += 1;
            if *n > 1 {
                ctx.err(
                    span.clone(),
                    format!(
                        "{name} {}: at most one primary and one secondary failover record set",
                        rtype.as_str()
                    ),
                );
            }
        }
    }
}
