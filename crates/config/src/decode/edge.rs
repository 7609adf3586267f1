//! `[distributions.NAME]`: listeners, origins (and origin groups), cache behaviours.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{named, Bind, Ctx, RefKind, Reference, Tbl, Val};
use crate::edge::{
    AllowedMethods, Behavior, CacheKeyPolicy, Distribution, EdgeListener, KeyList, Origin,
    ViewerProtocolPolicy,
};
use crate::routing::ListenerProtocol;

const DAY: u64 = 86_400;

/// Decodes every distribution; `lbs` are the load balancers' names (for origins).
pub(crate) fn decode_distributions(
    ctx: &mut Ctx,
    v: &Val<'_>,
    lbs: &[&str],
) -> BTreeMap<String, Distribution> {
    let mut out = BTreeMap::new();
    for (name, _, body) in named(ctx, v, "distributions") {
        let path = format!("distributions.{}", super::quote_key(&name));
        if let Some(d) = decode_distribution(ctx, body, path, &name, lbs) {
            out.insert(name, d);
        }
    }
    out
}

fn decode_distribution(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    name: &str,
    lbs: &[&str],
) -> Option<Distribution> {
    let keys = [
        "listeners",
        "origins",
        "default_behavior",
        "behaviors",
        "cache_size",
        "max_object_size",
        "origin_timeout",
    ];
    let t = ctx.table(v, path, &keys)?;
    let listeners = t.req(ctx, "listeners", |ctx, v| {
        decode_listeners(ctx, v, &t, name)
    })?;
    let origins = t.req(ctx, "origins", |ctx, v| decode_origins(ctx, v, &t, lbs))?;
    let ids: Vec<&str> = origins.keys().map(String::as_str).collect();
    let default_behavior = t.req(ctx, "default_behavior", |ctx, v| {
        decode_behavior(ctx, v, t.child("default_behavior"), false, &ids)
    });
    let mut behaviors = Vec::new();
    if let Some(items) = t.opt(ctx, "behaviors", Ctx::array) {
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", t.child("behaviors"));
            behaviors.extend(decode_behavior(ctx, item, path, true, &ids));
        }
    }
    let cache_size = t
        .opt(ctx, "cache_size", |c, v| c.byte_size(v, "cache_size"))
        .unwrap_or(256 << 20);
    let max_object_size = t
        .opt(ctx, "max_object_size", |c, v| {
            c.byte_size(v, "max_object_size")
        })
        .unwrap_or(16 << 20)
        .min(cache_size);
    let origin_timeout = t
        .opt(ctx, "origin_timeout", |c, v| {
            c.positive_duration(v, "origin_timeout")
        })
        .unwrap_or(Duration::from_secs(30));
    Some(Distribution {
        listeners,
        origins,
        behaviors,
        default_behavior: default_behavior?,
        cache_size,
        max_object_size,
        origin_timeout,
    })
}

fn decode_listeners(
    ctx: &mut Ctx,
    v: &Val<'_>,
    t: &Tbl<'_, '_>,
    name: &str,
) -> Option<Vec<EdgeListener>> {
    let items = ctx.array(v)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", t.child("listeners"));
        let Some(l) = ctx.table(item, path, &["bind", "protocol", "certificates"]) else {
            continue;
        };
        let protocols = [
            ("http", ListenerProtocol::Http),
            ("https", ListenerProtocol::Https),
        ];
        let protocol = l
            .opt(ctx, "protocol", |c, v| {
                c.choice(v, "distribution listener protocol", &protocols)
            })
            .unwrap_or(ListenerProtocol::Http);
        let certificates = l
            .opt(ctx, "certificates", |c, v| {
                super::listeners::decode_certificates(c, v, &l)
            })
            .unwrap_or_default();
        if protocol == ListenerProtocol::Https && certificates.is_empty() {
            ctx.err(l.span.clone(), "an https listener needs `certificates`");
        }
        let Some(bind) = l.req(ctx, "bind", Ctx::socket_addr) else {
            continue;
        };
        let span = l.get("bind").map_or(l.span.clone(), |b| b.span());
        ctx.binds.push(Bind {
            addr: bind,
            span,
            owner: format!("distribution {name}"),
        });
        out.push(EdgeListener {
            bind,
            protocol,
            certificates,
        });
    }
    if out.is_empty() && !items.is_empty() {
        return None;
    }
    if items.is_empty() {
        ctx.err(v.span(), "a distribution needs at least one listener");
    }
    Some(out)
}

fn decode_origins(
    ctx: &mut Ctx,
    v: &Val<'_>,
    t: &Tbl<'_, '_>,
    lbs: &[&str],
) -> Option<BTreeMap<String, Origin>> {
    let mut out = BTreeMap::new();
    let entries = named(ctx, v, "origins");
    for (id, _, body) in &entries {
        let path = format!("{}.{}", t.child("origins"), super::quote_key(id));
        if let Some(o) = decode_origin(ctx, body, path, lbs) {
            out.insert(id.clone(), o);
        }
    }
    if entries.is_empty() {
        ctx.err(v.span(), "a distribution needs at least one origin");
    }
    for (id, span, _) in &entries {
        let Some(Origin::Group {
            primary, secondary, ..
        }) = out.get(id)
        else {
            continue;
        };
        for member in [primary, secondary] {
            let msg = match out.get(member) {
                None => format!("origin group `{id}`: unknown origin `{member}`"),
                Some(Origin::Group { .. }) => {
                    format!("origin group `{id}`: `{member}` is itself a group")
                }
                Some(_) => continue,
            };
            ctx.err(span.clone(), msg);
        }
    }
    Some(out)
}

fn decode_origin(ctx: &mut Ctx, v: &Val<'_>, path: String, lbs: &[&str]) -> Option<Origin> {
    let keys = ["load_balancer", "target_group", "address", "failover"];
    let t = ctx.table(v, path, &keys)?;
    let given: Vec<&str> = keys.into_iter().filter(|k| t.get(k).is_some()).collect();
    if given.len() != 1 {
        ctx.err(
            v.span(),
            "an origin names exactly one of `load_balancer`, `target_group`, `address`, `failover`",
        );
        return None;
    }
    let ov = t.get(given[0])?;
    match given[0] {
        "load_balancer" => {
            let name = ctx.nonempty(ov)?;
            if !lbs.contains(&name.as_str()) {
                let hint = crate::suggest::hint(&name, lbs.iter().copied());
                ctx.err(ov.span(), format!("unknown load balancer `{name}`: not defined in [load_balancers.NAME]{hint}"));
                return None;
            }
            Some(Origin::LoadBalancer(name))
        }
        "target_group" => {
            let name = ctx.nonempty(ov)?;
            ctx.refs.push(Reference {
                kind: RefKind::TargetGroup,
                name: name.clone(),
                span: ov.span(),
            });
            Some(Origin::TargetGroup(name))
        }
        "address" => Some(Origin::Address(ctx.socket_addr(ov)?)),
        _ => {
            let g = ctx.table(
                ov,
                t.child("failover"),
                &["primary", "secondary", "status_codes"],
            )?;
            let codes = g.opt(ctx, "status_codes", |ctx, v| {
                let items = ctx.array(v)?;
                items
                    .iter()
                    .map(|i| ctx.int_in(i, "status code", 400..=599).map(|n| n as u16))
                    .collect()
            });
            Some(Origin::Group {
                primary: g.req(ctx, "primary", Ctx::nonempty)?,
                secondary: g.req(ctx, "secondary", Ctx::nonempty)?,
                status_codes: codes.unwrap_or_else(|| vec![500, 502, 503, 504]),
            })
        }
    }
}

fn decode_behavior(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    patterned: bool,
    origins: &[&str],
) -> Option<Behavior> {
    let keys = [
        "path_pattern",
        "origin",
        "viewer_protocol_policy",
        "allowed_methods",
        "min_ttl",
        "default_ttl",
        "max_ttl",
        "compress",
        "cache_key",
    ];
    let t = ctx.table(v, path, &keys)?;
    let path_pattern = if patterned {
        Some(t.req(ctx, "path_pattern", Ctx::nonempty)?)
    } else {
        if let Some(p) = t.get("path_pattern") {
            ctx.err(p.span(), "the default behaviour has no path_pattern");
        }
        None
    };
    let origin = t.req(ctx, "origin", |ctx, v| {
        let s = ctx.nonempty(v)?;
        if !origins.contains(&s.as_str()) {
            let hint = crate::suggest::hint(&s, origins.iter().copied());
            ctx.err(
                v.span(),
                format!("unknown origin `{s}`: not defined in this distribution's origins{hint}"),
            );
        }
        Some(s)
    });
    let policies = [
        ("allow-all", ViewerProtocolPolicy::AllowAll),
        ("redirect-to-https", ViewerProtocolPolicy::RedirectToHttps),
        ("https-only", ViewerProtocolPolicy::HttpsOnly),
    ];
    let methods = [
        ("GET,HEAD", AllowedMethods::GetHead),
        ("GET,HEAD,OPTIONS", AllowedMethods::GetHeadOptions),
        ("all", AllowedMethods::All),
    ];
    let ttl = |ctx: &mut Ctx, key: &str, default: u64| {
        t.opt(ctx, key, Ctx::duration)
            .unwrap_or(Duration::from_secs(default))
    };
    let (min_ttl, default_ttl, max_ttl) = (
        ttl(ctx, "min_ttl", 0),
        ttl(ctx, "default_ttl", DAY),
        ttl(ctx, "max_ttl", 365 * DAY),
    );
    if !(min_ttl <= default_ttl && default_ttl <= max_ttl) {
        ctx.err(
            t.span.clone(),
            "TTLs must satisfy min_ttl ≤ default_ttl ≤ max_ttl",
        );
    }
    Some(Behavior {
        path_pattern,
        origin: origin?,
        viewer_protocol_policy: t
            .opt(ctx, "viewer_protocol_policy", |c, v| {
                c.choice(v, "viewer protocol policy", &policies)
            })
            .unwrap_or_default(),
        allowed_methods: t
            .opt(ctx, "allowed_methods", |c, v| {
                c.choice(v, "allowed methods", &methods)
            })
            .unwrap_or_default(),
        min_ttl,
        default_ttl,
        max_ttl,
        compress: t.opt(ctx, "compress", Ctx::boolean).unwrap_or(false),
        cache_key: t
            .opt(ctx, "cache_key", |ctx, v| {
                decode_key(ctx, v, t.child("cache_key"))
            })
            .unwrap_or_default(),
    })
}

fn decode_key(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<CacheKeyPolicy> {
    let t = ctx.table(v, path, &["query_strings", "headers", "cookies"])?;
    let headers = t
        .opt(ctx, "headers", |c, v| c.distinct_names(v, "header"))
        .unwrap_or_default()
        .into_iter()
        .map(|(h, _)| h.to_ascii_lowercase())
        .collect();
    Some(CacheKeyPolicy {
        query_strings: t.opt(ctx, "query_strings", key_list).unwrap_or_default(),
        headers,
        cookies: t.opt(ctx, "cookies", key_list).unwrap_or_default(),
    })
}

/// `"none"`, `"all"` or a list of names.
fn key_list(ctx: &mut Ctx, v: &Val<'_>) -> Option<KeyList> {
    match v.get_ref() {
        toml::de::DeValue::String(_) => ctx
            .choice(v, "key list", &[("none", 0u8), ("all", 1)])
            .map(|c| if c == 0 { KeyList::None } else { KeyList::All }),
        _ => {
            let names = ctx.distinct_names(v, "name")?;
            Some(KeyList::Only(names.into_iter().map(|(s, _)| s).collect()))
        }
    }
}
