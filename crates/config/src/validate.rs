//! Checks that need the whole file: references between sections and shared bind addresses.

use std::net::SocketAddr;

use crate::decode::{Ctx, RefKind};
use crate::model::{Config, CrossZone, Protocol};
use crate::routing::LoadBalancerType;
use crate::suggest;

/// Adds every cross-section problem of `config` to `ctx`.
pub(crate) fn cross_check(ctx: &mut Ctx, config: &Config) {
    dangling_references(ctx, config);
    protocol_mismatches(ctx, config);
    cross_zone_conflicts(ctx, config);
    duplicate_binds(ctx);
}

fn dangling_references(ctx: &mut Ctx, config: &Config) {
    let refs = std::mem::take(&mut ctx.refs);
    for r in &refs {
        let (known, what, section): (Vec<&str>, &str, &str) = match r.kind {
            RefKind::TargetGroup => (
                ctx.declared_target_groups
                    .iter()
                    .map(String::as_str)
                    .collect(),
                "target group",
                "[target_groups.NAME]",
            ),
            RefKind::LaunchTemplate => (
                ctx.declared_launch_templates
                    .iter()
                    .map(String::as_str)
                    .collect(),
                "launch template",
                "[launch_templates.NAME]",
            ),
            RefKind::Zone => {
                if !ctx.zones_known {
                    continue;
                }
                (
                    config.cluster.zones.iter().map(String::as_str).collect(),
                    "zone",
                    "[cluster] zones",
                )
            }
        };
        if known.contains(&r.name.as_str()) {
            continue;
        }
        let hint = suggest::hint(&r.name, known.iter().copied());
        let msg = format!(
            "unknown {what} `{}`: not defined in {section}{hint}",
            r.name
        );
        ctx.err(r.span.clone(), msg);
    }
    ctx.refs = refs;
}

/// ELB forwards HTTP only to HTTP target groups (ALB) and TCP only to TCP ones (NLB).
fn protocol_mismatches(ctx: &mut Ctx, config: &Config) {
    let forwards = std::mem::take(&mut ctx.forwards);
    for f in &forwards {
        let Some(tg) = config.target_groups.get(&f.target_group) else {
            continue;
        };
        let needed = match f.lb_kind {
            LoadBalancerType::Application => Protocol::Http,
            LoadBalancerType::Network => Protocol::Tcp,
        };
        if tg.protocol != needed {
            let article = match f.lb_kind {
                LoadBalancerType::Application => "an application",
                LoadBalancerType::Network => "a network",
            };
            ctx.err(
                f.span.clone(),
                format!(
                    "target group `{}` uses protocol {}, but {article} load balancer forwards only to {} target groups",
                    f.target_group,
                    tg.protocol.as_str(),
                    needed.as_str()
                ),
            );
        }
    }
    ctx.forwards = forwards;
}

/// A target group following its load balancers' `cross_zone` must get one answer from all of
/// them; and stickiness needs cross-zone load balancing on (AWS refuses the combination).
fn cross_zone_conflicts(ctx: &mut Ctx, config: &Config) {
    let forwards = std::mem::take(&mut ctx.forwards);
    for (i, f) in forwards.iter().enumerate() {
        let Some(tg) = config.target_groups.get(&f.target_group) else {
            continue;
        };
        let same_group = |o: &&crate::decode::ForwardUse| o.target_group == f.target_group;
        if tg.cross_zone == CrossZone::UseLoadBalancerConfiguration {
            if let Some(other) = forwards[..i]
                .iter()
                .filter(same_group)
                .find(|o| o.lb_cross_zone != f.lb_cross_zone)
            {
                ctx.err(
                    f.span.clone(),
                    format!(
                        "target group `{}` is forwarded to by load balancers with cross_zone = {} \
                         and cross_zone = {}; set `cross_zone` on the target group",
                        f.target_group, other.lb_cross_zone, f.lb_cross_zone
                    ),
                );
                continue;
            }
        }
        let first_use = !forwards[..i].iter().any(|o| same_group(&o));
        if first_use && tg.stickiness.enabled && !tg.cross_zone.resolve(f.lb_cross_zone) {
            ctx.err(
                f.span.clone(),
                format!(
                    "target group `{}` has stickiness enabled, which needs cross-zone load \
                     balancing on (AWS); it is off here",
                    f.target_group
                ),
            );
        }
    }
    ctx.forwards = forwards;
}

/// Two sockets conflict when they share a port and an address, or one is the wildcard address.
fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn duplicate_binds(ctx: &mut Ctx) {
    let binds = std::mem::take(&mut ctx.binds);
    // Check in file order so the later occurrence is the one reported.
    let mut order: Vec<usize> = (0..binds.len()).collect();
    order.sort_by_key(|&i| binds[i].span.start);
    for (n, &i) in order.iter().enumerate() {
        let b = &binds[i];
        if let Some(&j) = order[..n]
            .iter()
            .find(|&&j| conflicts(binds[j].addr, b.addr))
        {
            let other = &binds[j];
            ctx.err(
                b.span.clone(),
                format!(
                    "bind address {} is already used by {} ({})",
                    b.addr, other.owner, other.addr
                ),
            );
        }
    }
    ctx.binds = binds;
}
