//! The resources of the config file in the API's terms, beside the API's own: the same AWS
//! shapes with ids derived from their names (stable across restarts), marked read-only.

use std::collections::BTreeMap;

use flotilla_config::{Action, Condition, Config, LoadBalancerType, Protocol, ProtocolVersion};

use crate::call::Call;
use crate::model::{
    file_hex, ActionRes, ConditionRes, GroupRes, HealthCheckRes, LaunchTemplateRes, ListenerRes,
    LoadBalancerRes, LtData, LtVersion, MixedRes, RedirectRes, RuleRes, TargetGroupRes,
};
use crate::protocol::AwsError;

/// `OperationNotPermitted` (ELBv2, EC2) for a resource of the config file.
pub(crate) fn read_only(kind: &str, name: &str) -> AwsError {
    AwsError::new(
        "OperationNotPermitted",
        format!(
            "{kind} {name} is defined in Flotilla's config file and is read-only through the \
             API; change the file and reload"
        ),
    )
}

fn tg_arn(call: &Call<'_>, name: &str) -> String {
    match call.reg.target_groups.get(name) {
        Some(tg) => tg.arn.clone(),
        None => call.ids.target_group_arn(name, &file_hex("tg", name)),
    }
}

fn file_tg(call: &Call<'_>, name: &str, tg: &flotilla_config::TargetGroup) -> TargetGroupRes {
    let hc = &tg.health_check;
    let matcher = hc
        .matcher
        .ranges()
        .iter()
        .map(|(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut attributes = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        attributes.insert(k.to_string(), v);
    };
    put(
        "deregistration_delay.timeout_seconds",
        tg.deregistration_delay.as_secs().to_string(),
    );
    put(
        "slow_start.duration_seconds",
        tg.slow_start.as_secs().to_string(),
    );
    put("stickiness.enabled", tg.stickiness.enabled.to_string());
    put("stickiness.type", "lb_cookie".into());
    put(
        "stickiness.lb_cookie.duration_seconds",
        tg.stickiness.duration.as_secs().to_string(),
    );
    put(
        "load_balancing.algorithm.type",
        tg.algorithm.as_str().into(),
    );
    let proto = |p: Protocol| if p == Protocol::Tcp { "TCP" } else { "HTTP" };
    TargetGroupRes {
        arn: tg_arn(call, name),
        name: name.to_string(),
        protocol: proto(tg.protocol).into(),
        protocol_version: match tg.protocol_version {
            ProtocolVersion::Http1 => "HTTP1",
            ProtocolVersion::Http2 => "HTTP2",
            ProtocolVersion::Grpc => "GRPC",
        }
        .into(),
        port: tg.targets.first().map_or(80, |t| t.port()),
        vpc_id: call.ids.vpc_id(),
        target_type: "instance".into(),
        health: HealthCheckRes {
            protocol: proto(hc.protocol).into(),
            port: "traffic-port".into(),
            path: hc.path.clone(),
            enabled: true,
            interval: hc.interval.as_secs() as u32,
            timeout: hc.timeout.as_secs() as u32,
            healthy: hc.healthy_threshold,
            unhealthy: hc.unhealthy_threshold,
            matcher,
        },
        attributes,
        tags: Vec::new(),
        targets: tg
            .targets
            .iter()
            .map(|t| (t.ip().to_string(), t.to_string()))
            .collect(),
        created_ms: 0,
    }
}

/// Every target group, file's first: (resource, from the file).
pub(crate) fn target_groups(call: &Call<'_>) -> Vec<(TargetGroupRes, bool)> {
    let file = call
        .file
        .target_groups
        .iter()
        .map(|(n, tg)| (file_tg(call, n, tg), true));
    let api = call.reg.target_groups.values().map(|t| (t.clone(), false));
    file.chain(api).collect()
}

fn lb_arn(call: &Call<'_>, name: &str, kind: LoadBalancerType) -> String {
    let k = if kind == LoadBalancerType::Network {
        "net"
    } else {
        "app"
    };
    call.ids.load_balancer_arn(k, name, &file_hex("lb", name))
}

/// Every load balancer: (resource, from the file).
pub(crate) fn load_balancers(call: &Call<'_>) -> Vec<(LoadBalancerRes, bool)> {
    let zones: Vec<String> = call.file.cluster.zones.clone();
    let file = call.file.load_balancers.iter().map(|(n, lb)| {
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "idle_timeout.timeout_seconds".to_string(),
            lb.idle_timeout.as_secs().to_string(),
        );
        attributes.insert(
            "load_balancing.cross_zone.enabled".to_string(),
            lb.cross_zone.to_string(),
        );
        let res = LoadBalancerRes {
            arn: lb_arn(call, n, lb.kind),
            name: n.clone(),
            kind: lb.kind.as_str().into(),
            scheme: "internet-facing".into(),
            zones: zones.clone(),
            security_groups: Vec::new(),
            attributes,
            tags: Vec::new(),
            created_ms: 0,
        };
        (res, true)
    });
    let api = call.reg.load_balancers.values().map(|l| (l.clone(), false));
    file.chain(api).collect()
}

fn action_res(call: &Call<'_>, a: &Action) -> ActionRes {
    let mut res = ActionRes {
        kind: String::new(),
        order: None,
        forward: Vec::new(),
        forward_config: false,
        stickiness: None,
        redirect: None,
        fixed: None,
    };
    match a {
        Action::Forward { target_groups, .. } => {
            res.kind = "forward".into();
            res.forward = target_groups
                .iter()
                .map(|w| (tg_arn(call, &w.name), w.weight))
                .collect();
            res.forward_config = target_groups.len() > 1;
        }
        Action::Redirect(r) => {
            res.kind = "redirect".into();
            res.redirect = Some(RedirectRes {
                protocol: r.protocol.clone(),
                host: r.host.clone(),
                port: r.port.clone(),
                path: r.path.clone(),
                query: r.query.clone(),
                status: format!("HTTP_{}", r.status),
            });
        }
        Action::FixedResponse {
            status,
            content_type,
            body,
        } => {
            res.kind = "fixed-response".into();
            res.fixed = Some((
                status.to_string(),
                Some(content_type.clone()),
                Some(body.clone()),
            ));
        }
    }
    res
}

fn condition_res(c: &Condition) -> ConditionRes {
    let (values, header_name) = match c {
        Condition::HostHeader(v) | Condition::PathPattern(v) | Condition::HttpRequestMethod(v) => {
            (v.clone(), None)
        }
        Condition::HttpHeader { name, values } => (values.clone(), Some(name.clone())),
        Condition::QueryString(q) => (
            q.iter()
                .map(|p| match &p.key {
                    Some(k) => format!("{k}={}", p.value),
                    None => p.value.clone(),
                })
                .collect(),
            None,
        ),
        Condition::SourceIp(c) => (c.iter().map(ToString::to_string).collect(), None),
    };
    ConditionRes {
        field: c.field().into(),
        values,
        header_name,
    }
}

/// Every listener and its rules: (listener, rules, from the file).
pub(crate) fn listeners(call: &Call<'_>) -> Vec<(ListenerRes, Vec<RuleRes>, bool)> {
    let mut out = Vec::new();
    for (n, lb) in &call.file.load_balancers {
        let lb_arn = lb_arn(call, n, lb.kind);
        for l in &lb.listeners {
            let arn = call
                .ids
                .listener_arn(&lb_arn, &file_hex("listener", &format!("{n}/{}", l.bind)));
            let rules = l
                .rules
                .iter()
                .map(|r| RuleRes {
                    arn: call.ids.rule_arn(
                        &arn,
                        &file_hex("rule", &format!("{n}/{}/{}", l.bind, r.priority)),
                    ),
                    listener_arn: arn.clone(),
                    priority: r.priority,
                    conditions: r.conditions.iter().map(condition_res).collect(),
                    actions: vec![action_res(call, &r.action)],
                    tags: Vec::new(),
                })
                .collect();
            let listener = ListenerRes {
                arn,
                load_balancer: n.clone(),
                protocol: l.protocol.as_str().to_ascii_uppercase(),
                port: l.bind.port(),
                default_actions: vec![action_res(call, &l.default_action)],
                tags: Vec::new(),
            };
            out.push((listener, rules, true));
        }
    }
    for l in call.reg.listeners.values() {
        let rules = call
            .reg
            .rules
            .values()
            .filter(|r| r.listener_arn == l.arn)
            .cloned()
            .collect();
        out.push((l.clone(), rules, false));
    }
    out
}

/// The image id whose command `command` is, if any.
fn image_of(call: &Call<'_>, command: &[String]) -> Option<String> {
    call.images()
        .into_iter()
        .find(|(_, c)| c == command)
        .map(|(id, _)| id)
}

/// A file launch template's id.
pub(crate) fn file_lt_id(name: &str) -> String {
    format!("lt-0{}", file_hex("lt", name))
}

/// Every launch template: (resource, from the file).
pub(crate) fn launch_templates(call: &Call<'_>) -> Vec<(LaunchTemplateRes, bool)> {
    let file = call.file.launch_templates.iter().map(|(n, lt)| {
        let version = LtVersion {
            number: 1,
            description: Some("from the config file".into()),
            created_ms: 0,
            data: LtData {
                image_id: image_of(call, &lt.command),
                instance_type: Some(lt.instance_type.clone()),
                ..LtData::default()
            },
        };
        let res = LaunchTemplateRes {
            id: file_lt_id(n),
            name: n.clone(),
            created_ms: 0,
            default_version: 1,
            latest_version: 1,
            versions: [(1, version)].into(),
            tags: Vec::new(),
            client_token: None,
        };
        (res, true)
    });
    let api = call
        .reg
        .launch_templates
        .values()
        .map(|l| (l.clone(), false));
    file.chain(api).collect()
}

fn file_group(call: &Call<'_>, config: &Config, name: &str) -> Option<GroupRes> {
    let g = config.auto_scaling_groups.get(name)?;
    Some(GroupRes {
        arn: call.ids.group_arn(&uuid_of(&file_hex("asg", name)), name),
        name: name.to_string(),
        lt_id: file_lt_id(&g.launch_template),
        lt_name: g.launch_template.clone(),
        lt_version: "$Default".into(),
        min_size: g.min_size,
        max_size: g.max_size,
        desired_capacity: g.desired_capacity,
        default_cooldown: g.default_cooldown.as_secs() as u32,
        zones: g.zones.clone(),
        vpc_zone_identifier: None,
        target_groups: g.target_groups.clone(),
        health_check_type: if g.health_check_type == flotilla_config::HealthCheckType::Elb {
            "ELB".into()
        } else {
            "EC2".into()
        },
        health_check_grace_period: g.health_check_grace_period.as_secs() as u32,
        termination_policies: g
            .termination_policies
            .iter()
            .map(|t| {
                match t {
                    flotilla_config::TerminationPolicy::Default => "Default",
                    flotilla_config::TerminationPolicy::OldestInstance => "OldestInstance",
                    flotilla_config::TerminationPolicy::NewestInstance => "NewestInstance",
                    flotilla_config::TerminationPolicy::OldestLaunchTemplate => {
                        "OldestLaunchTemplate"
                    }
                }
                .to_string()
            })
            .collect(),
        new_instances_protected: g.new_instances_protected_from_scale_in,
        default_instance_warmup: g.default_instance_warmup.map(|d| d.as_secs() as u32),
        tags: Vec::new(),
        policies: BTreeMap::new(),
        scheduled: BTreeMap::new(),
        hooks: BTreeMap::new(),
        warm_pool: None,
        created_ms: 0,
        mixed: g.instances_distribution.map(|d| MixedRes {
            instance_types: Vec::new(),
            on_demand_allocation_strategy: "prioritized".into(),
            on_demand_base_capacity: d.on_demand_base_capacity,
            on_demand_percentage_above_base_capacity: d.on_demand_percentage_above_base_capacity,
            spot_allocation_strategy: d.spot_allocation_strategy.as_str().into(),
            spot_instance_pools: None,
            spot_max_price: None,
        }),
        capacity_rebalance: g
            .instances_distribution
            .is_some_and(|d| d.capacity_rebalance),
    })
}

/// 16 hex digits as a UUID-shaped string.
fn uuid_of(hex: &str) -> String {
    let h = format!("{hex}{hex}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Every auto scaling group: (resource, from the file).
pub(crate) fn groups(call: &Call<'_>) -> Vec<(GroupRes, bool)> {
    let file = call
        .file
        .auto_scaling_groups
        .keys()
        .filter_map(|n| file_group(call, &call.file, n))
        .map(|g| (g, true));
    let api = call.reg.groups.values().map(|g| (g.clone(), false));
    file.chain(api).collect()
}

/// One group, API or file; `None` when neither has it.
pub(crate) fn group(call: &Call<'_>, name: &str) -> Option<(GroupRes, bool)> {
    if let Some(g) = call.reg.groups.get(name) {
        return Some((g.clone(), false));
    }
    file_group(call, &call.file, name).map(|g| (g, true))
}
