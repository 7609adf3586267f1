//! `[load_balancers.NAME]`, its listeners, rules, conditions and actions.

use std::time::Duration;

use super::actions::decode_action;
use super::{Bind, Ctx, Tbl, Val};
use crate::matching::{Cidr, QueryPair};
use crate::routing::{
    Certificate, Condition, Listener, ListenerProtocol, LoadBalancer, LoadBalancerType, Rule,
};

pub(crate) fn decode_load_balancer(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
) -> Option<LoadBalancer> {
    let keys = [
        "type",
        "cross_zone",
        "idle_timeout",
        "access_log",
        "header_read_timeout",
        "max_request_body",
        "listeners",
    ];
    let t = ctx.table(v, path, &keys)?;
    let types = [
        ("application", LoadBalancerType::Application),
        ("network", LoadBalancerType::Network),
    ];
    let kind = t
        .opt(ctx, "type", |c, v| {
            c.choice(v, "load balancer type", &types)
        })
        .unwrap_or_default();
    // AWS: always on for application load balancers, off by default for network ones.
    let cross_zone = t
        .opt(ctx, "cross_zone", Ctx::boolean)
        .unwrap_or(kind == LoadBalancerType::Application);
    let idle_timeout = t
        .opt(ctx, "idle_timeout", |c, v| {
            c.positive_duration(v, "idle_timeout")
        })
        .unwrap_or(match kind {
            LoadBalancerType::Application => Duration::from_secs(60),
            LoadBalancerType::Network => Duration::from_secs(350),
        });
    let access_log = t.opt(ctx, "access_log", Ctx::path);
    if let (LoadBalancerType::Network, Some(_), Some(v)) = (kind, &access_log, t.get("access_log"))
    {
        ctx.err(
            v.span(),
            "access logs record HTTP requests; a network load balancer has none",
        );
    }
    let header_read_timeout = t
        .opt(ctx, "header_read_timeout", |c, v| {
            c.positive_duration(v, "header_read_timeout")
        })
        .unwrap_or(Duration::from_secs(10));
    let max_request_body = t.opt(ctx, "max_request_body", |c, v| {
        c.byte_size(v, "max_request_body")
    });
    let mut listeners = Vec::new();
    let first_forward = ctx.forwards.len();
    if let Some(items) = t.opt(ctx, "listeners", Ctx::array) {
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", t.child("listeners"));
            if let Some(l) = decode_listener(ctx, item, path, kind) {
                listeners.push(l);
            }
        }
    }
    for f in &mut ctx.forwards[first_forward..] {
        f.lb_cross_zone = cross_zone;
    }
    Some(LoadBalancer {
        kind,
        cross_zone,
        idle_timeout,
        access_log,
        header_read_timeout,
        max_request_body,
        listeners,
    })
}

fn decode_listener(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    kind: LoadBalancerType,
) -> Option<Listener> {
    let keys = [
        "bind",
        "protocol",
        "certificates",
        "default_action",
        "rules",
    ];
    let t = ctx.table(v, path, &keys)?;
    let bind = t.req(ctx, "bind", Ctx::socket_addr);
    if let (Some(addr), Some(bv)) = (bind, t.get("bind")) {
        ctx.binds.push(Bind {
            addr,
            span: bv.span(),
            owner: t.label(),
        });
    }
    let protocols = [
        ("http", ListenerProtocol::Http),
        ("https", ListenerProtocol::Https),
        ("tcp", ListenerProtocol::Tcp),
    ];
    let default_protocol = match kind {
        LoadBalancerType::Application => ListenerProtocol::Http,
        LoadBalancerType::Network => ListenerProtocol::Tcp,
    };
    let protocol = t.opt(ctx, "protocol", |ctx, v| {
        let p = ctx.choice(v, "listener protocol", &protocols)?;
        let fits = match kind {
            LoadBalancerType::Application => p != ListenerProtocol::Tcp,
            LoadBalancerType::Network => p == ListenerProtocol::Tcp,
        };
        if !fits {
            let (which, allowed) = match kind {
                LoadBalancerType::Application => ("an application", "http or https"),
                LoadBalancerType::Network => ("a network", "tcp"),
            };
            ctx.err(
                v.span(),
                format!(
                    "{which} load balancer's listeners use {allowed}, not {}",
                    p.as_str()
                ),
            );
        }
        Some(p)
    });
    let protocol = protocol.unwrap_or(default_protocol);
    let certificates = t
        .opt(ctx, "certificates", |ctx, v| {
            decode_certificates(ctx, v, &t)
        })
        .unwrap_or_default();
    if protocol == ListenerProtocol::Https && certificates.is_empty() {
        let at = t.get("protocol").map_or(t.span.clone(), |v| v.span());
        ctx.err(at, "an https listener needs at least one certificate");
    }
    if protocol != ListenerProtocol::Https && !certificates.is_empty() {
        if let Some(v) = t.get("certificates") {
            ctx.err(v.span(), "certificates are only used by https listeners");
        }
    }
    let default_action = t.req(ctx, "default_action", |ctx, v| {
        decode_action(ctx, v, t.child("default_action"), kind)
    });
    let mut rules = Vec::new();
    if let Some(rv) = t.get("rules") {
        if kind == LoadBalancerType::Network {
            ctx.err(
                rv.span(),
                "network load balancer listeners have no rules; use default_action",
            );
        } else if let Some(items) = ctx.array(rv) {
            let mut seen: Vec<u32> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("{}[{i}]", t.child("rules"));
                if let Some((rule, pspan)) = decode_rule(ctx, item, path, kind) {
                    if seen.contains(&rule.priority) {
                        ctx.err(
                            pspan,
                            format!("duplicate rule priority {} in this listener", rule.priority),
                        );
                    }
                    seen.push(rule.priority);
                    rules.push(rule);
                }
            }
        }
    }
    rules.sort_by_key(|r| r.priority);
    Some(Listener {
        bind: bind?,
        protocol,
        certificates,
        default_action: default_action?,
        rules,
    })
}

pub(crate) fn decode_certificates(
    ctx: &mut Ctx,
    v: &Val<'_>,
    listener: &Tbl<'_, '_>,
) -> Option<Vec<Certificate>> {
    let items = ctx.array(v)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", listener.child("certificates"));
        let Some(c) = ctx.table(item, path, &["cert", "key"]) else {
            continue;
        };
        let cert = c.req(ctx, "cert", |ctx, v| existing_file(ctx, v, "certificate"));
        let key = c.req(ctx, "key", |ctx, v| existing_file(ctx, v, "private key"));
        if let (Some(cert), Some(key)) = (cert, key) {
            out.push(Certificate { cert, key });
        }
    }
    Some(out)
}

/// A path that, when the config is loaded from disk, must name a readable file.
fn existing_file(ctx: &mut Ctx, v: &Val<'_>, what: &str) -> Option<std::path::PathBuf> {
    let p = ctx.path(v)?;
    if ctx.check_files && !p.is_file() {
        ctx.err(
            v.span(),
            format!("{what} file `{}` does not exist", p.display()),
        );
    }
    Some(p)
}

fn decode_rule(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    kind: LoadBalancerType,
) -> Option<(Rule, super::Span)> {
    let t = ctx.table(v, path, &["priority", "conditions", "action"])?;
    let priority = t.req(ctx, "priority", |c, v| {
        c.int_in(v, "priority", 1..=50_000)
            .and_then(|n| u32::try_from(n).ok())
    });
    let conditions = t.req(ctx, "conditions", |ctx, v| {
        let items = ctx.array(v)?;
        if items.is_empty() {
            ctx.err(v.span(), "a rule needs at least one condition");
            return None;
        }
        let mut out: Vec<Condition> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", t.child("conditions"));
            if let Some(c) = decode_condition(ctx, item, path) {
                let once = !matches!(c, Condition::HttpHeader { .. } | Condition::QueryString(_));
                if once && out.iter().any(|o| o.field() == c.field()) {
                    ctx.err(
                        item.span(),
                        format!(
                            "a rule may have only one `{}` condition; list alternatives in its values",
                            c.field()
                        ),
                    );
                }
                out.push(c);
            }
        }
        Some(out)
    });
    let action = t.req(ctx, "action", |c, v| {
        decode_action(c, v, t.child("action"), kind)
    });
    let pspan = t.get("priority").map_or(t.span.clone(), |v| v.span());
    Some((
        Rule {
            priority: priority?,
            conditions: conditions?,
            action: action?,
        },
        pspan,
    ))
}

fn decode_condition(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<Condition> {
    let t = ctx.table(v, path, &["field", "values", "name"])?;
    #[derive(Clone, Copy, PartialEq)]
    enum F {
        Host,
        Path,
        Header,
        Method,
        Query,
        Source,
    }
    let fields = [
        ("host-header", F::Host),
        ("path-pattern", F::Path),
        ("http-header", F::Header),
        ("http-request-method", F::Method),
        ("query-string", F::Query),
        ("source-ip", F::Source),
    ];
    let field = t.req(ctx, "field", |c, v| c.choice(v, "condition field", &fields));
    let values = t.req(ctx, "values", |ctx, v| {
        let items = ctx.strings(v)?;
        if items.is_empty() {
            ctx.err(v.span(), "a condition needs at least one value");
            return None;
        }
        let mut ok = true;
        for (s, span) in &items {
            if s.is_empty() {
                ctx.err(span.clone(), "condition values must not be empty");
                ok = false;
            }
        }
        ok.then_some(items)
    });
    let name = t.get("name");
    let field = field?;
    if field == F::Header {
        let name = t.req(ctx, "name", Ctx::nonempty);
        let values = values?;
        return Some(Condition::HttpHeader {
            name: name?,
            values: values.into_iter().map(|(s, _)| s).collect(),
        });
    }
    if let Some(n) = name {
        ctx.err(n.span(), "`name` is only used by `http-header` conditions");
    }
    let values = values?;
    let plain = || values.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    Some(match field {
        F::Host => Condition::HostHeader(plain()),
        F::Path => Condition::PathPattern(plain()),
        F::Header => Condition::HttpHeader {
            name: String::new(),
            values: plain(),
        },
        F::Method => {
            for (s, span) in &values {
                if !s
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '-' || c == '_')
                {
                    ctx.err(
                        span.clone(),
                        format!("invalid method `{s}`: only A-Z, `-` and `_` are allowed"),
                    );
                }
            }
            Condition::HttpRequestMethod(plain())
        }
        F::Query => Condition::QueryString(parse_all::<QueryPair>(ctx, &values)?),
        F::Source => Condition::SourceIp(parse_all::<Cidr>(ctx, &values)?),
    })
}

fn parse_all<T: std::str::FromStr<Err = String>>(
    ctx: &mut Ctx,
    values: &[(String, super::Span)],
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (s, span) in values {
        match s.parse::<T>() {
            Ok(x) => out.push(x),
            Err(e) => {
                ctx.err(span.clone(), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
