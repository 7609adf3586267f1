//! The API overlay in config terms: what the API created becomes launch templates, target
//! groups, load balancers and auto scaling groups of the same types the file decodes into,
//! merged with the file's (names are shared: a name the file uses cannot be created), and run
//! by the same control plane and data plane.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use flotilla_config::{
    Action, Algorithm, AutoScalingGroupConfig, Condition, Config, CrossZone, HealthCheck,
    LaunchTemplate, Listener, ListenerProtocol, LoadBalancer, LoadBalancerType, Matcher, Protocol,
    ProtocolVersion, Redirect, Rule, Stickiness, TargetGroup, WeightedTargetGroup,
};

use super::{ActionRes, ConditionRes, LaunchTemplateRes, Registry, TargetGroupRes};

/// The API's resources as config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlay {
    /// Launch templates, one per (template, version) a group uses: `NAME@VERSION`.
    pub launch_templates: BTreeMap<String, LaunchTemplate>,
    /// Target groups by name.
    pub target_groups: BTreeMap<String, TargetGroup>,
    /// Load balancers by name.
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    /// Auto scaling groups by name.
    pub auto_scaling_groups: BTreeMap<String, AutoScalingGroupConfig>,
}

/// What turning the registry into config needs besides it.
pub struct OverlayContext<'a> {
    /// `[aws_api.images]`.
    pub images: &'a BTreeMap<String, Vec<String>>,
    /// The IP API-created listeners bind.
    pub listen_ip: IpAddr,
    /// Directory instances start in (the config's).
    pub working_dir: &'a std::path::Path,
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// The target group name an ARN names (`…:targetgroup/NAME/HEX`).
pub fn target_group_name(arn: &str) -> Option<&str> {
    arn.split_once(":targetgroup/")?.1.split('/').next()
}

impl Overlay {
    /// The config form of `reg`; `Err` when something it needs is gone (an image no longer
    /// in `[aws_api.images]` after a reload).
    pub fn build(reg: &Registry, cx: &OverlayContext<'_>) -> Result<Overlay, String> {
        let mut o = Overlay::default();
        for (name, tg) in &reg.target_groups {
            o.target_groups.insert(name.clone(), target_group(tg));
        }
        for (name, lb) in &reg.load_balancers {
            let network = lb.kind == "network";
            let attr = |k: &str| lb.attributes.get(k).map(String::as_str);
            let mut listeners: Vec<Listener> = reg
                .listeners
                .values()
                .filter(|l| &l.load_balancer == name)
                .map(|l| Listener {
                    bind: SocketAddr::new(cx.listen_ip, l.port),
                    protocol: if network {
                        ListenerProtocol::Tcp
                    } else {
                        ListenerProtocol::Http
                    },
                    certificates: Vec::new(),
                    default_action: action(&l.default_actions),
                    rules: {
                        let mut rules: Vec<Rule> = reg
                            .rules
                            .values()
                            .filter(|r| r.listener_arn == l.arn)
                            .map(|r| Rule {
                                priority: r.priority,
                                conditions: r.conditions.iter().filter_map(condition).collect(),
                                action: action(&r.actions),
                            })
                            .collect();
                        rules.sort_by_key(|r| r.priority);
                        rules
                    },
                })
                .collect();
            listeners.sort_by_key(|l| l.bind);
            o.load_balancers.insert(
                name.clone(),
                LoadBalancer {
                    kind: if network {
                        LoadBalancerType::Network
                    } else {
                        LoadBalancerType::Application
                    },
                    cross_zone: attr("load_balancing.cross_zone.enabled")
                        .map_or(!network, |v| v == "true"),
                    idle_timeout: attr("idle_timeout.timeout_seconds")
                        .and_then(|v| v.parse().ok())
                        .map_or(
                            Duration::from_secs(if network { 350 } else { 60 }),
                            Duration::from_secs,
                        ),
                    access_log: None,
                    header_read_timeout: Duration::from_secs(10),
                    max_request_body: None,
                    listeners,
                },
            );
        }
        for (name, g) in &reg.groups {
            // A mixed instances policy's first override is the type the group runs.
            let first_type = g.mixed.as_ref().and_then(|m| m.instance_types.first());
            let key = match reg.launch_templates.get(&g.lt_name) {
                Some(lt) => {
                    let mut t = launch_template(lt, &g.lt_version, cx)?;
                    let mut key = template_key(&g.lt_name, &g.lt_version);
                    if let Some(ty) = first_type {
                        t.instance_type = ty.clone();
                        key = format!("{key}@{ty}");
                    }
                    o.launch_templates.insert(key.clone(), t);
                    key
                }
                // The file's template, by its own name (it has one version).
                None => g.lt_name.clone(),
            };
            o.auto_scaling_groups
                .insert(name.clone(), super::scaling::group(g, key, reg));
        }
        Ok(o)
    }

    /// `file` with the overlay added; `Err` names a clash (the file took a name the API had
    /// used, e.g. after a reload).
    pub fn merge_into(&self, file: &Config) -> Result<Config, String> {
        let mut c = file.clone();
        fn add<T: Clone>(
            into: &mut BTreeMap<String, T>,
            from: &BTreeMap<String, T>,
            what: &str,
        ) -> Result<(), String> {
            for (k, v) in from {
                if into.insert(k.clone(), v.clone()).is_some() {
                    return Err(format!(
                        "{what} {k} was created through the AWS API and is also in the config file"
                    ));
                }
            }
            Ok(())
        }
        // A file group may use an API template only by name; API template keys contain `@`.
        add(
            &mut c.launch_templates,
            &self.launch_templates,
            "launch template",
        )?;
        add(&mut c.target_groups, &self.target_groups, "target group")?;
        add(&mut c.load_balancers, &self.load_balancers, "load balancer")?;
        add(
            &mut c.auto_scaling_groups,
            &self.auto_scaling_groups,
            "auto scaling group",
        )?;
        Ok(c)
    }
}

/// The config name of launch template `name` at `version` (`$Latest`, `$Default`, `3`).
pub fn template_key(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

fn launch_template(
    lt: &LaunchTemplateRes,
    version: &str,
    cx: &OverlayContext<'_>,
) -> Result<LaunchTemplate, String> {
    let number = match version {
        "$Latest" => lt.latest_version,
        "$Default" => lt.default_version,
        n => n.parse().unwrap_or(lt.default_version),
    };
    let v = lt
        .versions
        .get(&number)
        .ok_or_else(|| format!("launch template {} has no version {number}", lt.name))?;
    let image = v.data.image_id.as_deref().unwrap_or("");
    let command = cx.images.get(image).cloned().ok_or_else(|| {
        format!(
            "launch template {} version {number}: image {image} is not in [aws_api.images]",
            lt.name
        )
    })?;
    let user_data = v.data.user_data.as_deref().and_then(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
    });
    Ok(LaunchTemplate {
        command,
        env: BTreeMap::new(),
        working_dir: cx.working_dir.to_path_buf(),
        stop_signal: Default::default(),
        stop_timeout: Duration::from_secs(10),
        instance_type: v
            .data
            .instance_type
            .clone()
            .unwrap_or_else(|| "t3.micro".into()),
        user_data,
        // An ImageId names a command ([aws_api.images]); images as containers are the file's.
        image: None,
    })
}

fn target_group(tg: &TargetGroupRes) -> TargetGroup {
    let attr = |k: &str| tg.attributes.get(k).map(String::as_str);
    let secs_attr = |k: &str, default: u64| {
        attr(k)
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(default), Duration::from_secs)
    };
    let protocol = |p: &str| {
        if p == "TCP" {
            Protocol::Tcp
        } else {
            Protocol::Http
        }
    };
    TargetGroup {
        protocol: protocol(&tg.protocol),
        protocol_version: match tg.protocol_version.as_str() {
            "HTTP2" => ProtocolVersion::Http2,
            "GRPC" => ProtocolVersion::Grpc,
            _ => ProtocolVersion::Http1,
        },
        algorithm: match attr("load_balancing.algorithm.type") {
            Some("least_outstanding_requests") => Algorithm::LeastOutstandingRequests,
            Some("weighted_random") => Algorithm::WeightedRandom,
            _ => Algorithm::RoundRobin,
        },
        deregistration_delay: secs_attr("deregistration_delay.timeout_seconds", 300),
        slow_start: secs_attr("slow_start.duration_seconds", 0),
        targets: tg
            .targets
            .iter()
            .filter_map(|(_, addr)| addr.parse().ok())
            .collect(),
        health_check: HealthCheck {
            protocol: protocol(&tg.health.protocol),
            path: tg.health.path.clone(),
            interval: secs(tg.health.interval),
            timeout: secs(tg.health.timeout),
            healthy_threshold: tg.health.healthy,
            unhealthy_threshold: tg.health.unhealthy,
            matcher: Matcher::parse(&tg.health.matcher).unwrap_or_default(),
        },
        stickiness: Stickiness {
            enabled: attr("stickiness.enabled") == Some("true"),
            duration: secs_attr("stickiness.lb_cookie.duration_seconds", 86_400),
        },
        proxy_protocol_v2: attr("proxy_protocol_v2.enabled") == Some("true"),
        cross_zone: match attr("load_balancing.cross_zone.enabled") {
            Some("true") => CrossZone::Enabled,
            Some("false") => CrossZone::Disabled,
            _ => CrossZone::UseLoadBalancerConfiguration,
        },
        // ELBv2 has no such attributes: the defaults of a configured group.
        ..TargetGroup::default()
    }
}

/// The routing action of an action list (the last one routes; authenticate actions are
/// refused on the way in).
fn action(actions: &[ActionRes]) -> Action {
    let Some(a) = actions.last() else {
        return Action::FixedResponse {
            status: 503,
            content_type: "text/plain".into(),
            body: String::new(),
        };
    };
    match a.kind.as_str() {
        "redirect" => {
            let r = a.redirect.clone();
            Action::Redirect(Redirect {
                status: match r.as_ref().map(|r| r.status.as_str()) {
                    Some("HTTP_302") => 302,
                    _ => 301,
                },
                protocol: r.as_ref().and_then(|r| r.protocol.clone()),
                host: r.as_ref().and_then(|r| r.host.clone()),
                port: r.as_ref().and_then(|r| r.port.clone()),
                path: r.as_ref().and_then(|r| r.path.clone()),
                query: r.and_then(|r| r.query),
            })
        }
        "fixed-response" => {
            let (status, ct, body) = a.fixed.clone().unwrap_or_default();
            Action::FixedResponse {
                status: status.parse().unwrap_or(200),
                content_type: ct.unwrap_or_else(|| "text/plain".into()),
                body: body.unwrap_or_default(),
            }
        }
        _ => Action::Forward {
            target_groups: a
                .forward
                .iter()
                .filter_map(|(arn, w)| {
                    Some(WeightedTargetGroup {
                        name: target_group_name(arn)?.to_string(),
                        weight: *w,
                    })
                })
                .collect(),
            rollback: None,
        },
    }
}

fn condition(c: &ConditionRes) -> Option<Condition> {
    let values = c.values.clone();
    Some(match c.field.as_str() {
        "host-header" => Condition::HostHeader(values),
        "path-pattern" => Condition::PathPattern(values),
        "http-request-method" => Condition::HttpRequestMethod(values),
        "http-header" => Condition::HttpHeader {
            name: c.header_name.clone()?,
            values,
        },
        "query-string" => {
            Condition::QueryString(values.iter().filter_map(|v| v.parse().ok()).collect())
        }
        "source-ip" => Condition::SourceIp(values.iter().filter_map(|v| v.parse().ok()).collect()),
        _ => return None,
    })
}
