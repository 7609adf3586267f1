//! Loading the spec's example, the minimal file and defaults.

use std::path::Path;
use std::time::Duration;

use flotilla_config::*;
use flotilla_control::metrics::{Metric, Statistic};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn spec_example_parses_with_expected_values() {
    let path = fixture("spec_example.toml");
    let cfg = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let base = path.parent().unwrap();
    assert_eq!(cfg.base_dir, base);
    assert_eq!(cfg.cluster.name, "whatisthetime");
    assert_eq!(cfg.cluster.zones, ["az-a", "az-b", "az-c"]);
    assert_eq!(cfg.cluster.state_dir, base.join(".flotilla"));
    assert_eq!(cfg.cluster.admin_bind, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(cfg.cluster.admin_token_env, "FLOTILLA_ADMIN_TOKEN");

    let lt = &cfg.launch_templates["web"];
    assert_eq!(lt.command, ["{flotilla}", "demo-app"]);
    assert_eq!(lt.env["GREETING"], "hello");
    assert_eq!(lt.working_dir, base);
    assert_eq!(lt.stop_signal, StopSignal::Term);
    assert_eq!(lt.stop_signal.as_str(), "SIGTERM");
    assert_eq!(lt.stop_timeout, Duration::from_secs(10));
    assert_eq!(lt.instance_type, "t3.micro");

    let web = &cfg.target_groups["web"];
    assert_eq!(web.protocol, Protocol::Http);
    assert_eq!(web.algorithm, Algorithm::RoundRobin);
    assert_eq!(web.deregistration_delay, Duration::from_secs(5));
    assert_eq!(web.slow_start, Duration::ZERO);
    assert!(web.targets.is_empty());
    let hc = &web.health_check;
    assert_eq!(hc.path, "/health");
    assert_eq!(hc.interval, Duration::from_secs(2));
    assert_eq!(hc.timeout, Duration::from_secs(1));
    assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (2, 2));
    assert!(hc.matcher.matches(200) && hc.matcher.matches(399) && !hc.matcher.matches(400));
    assert!(!web.stickiness.enabled);
    assert_eq!(web.stickiness.duration, Duration::from_secs(3600));
    let canary = &cfg.target_groups["canary"];
    assert_eq!(canary.deregistration_delay, Duration::from_secs(5));
    assert_eq!(canary.health_check, HealthCheck::default());

    let lb = &cfg.load_balancers["front"];
    assert_eq!(lb.kind, LoadBalancerType::Application);
    assert!(lb.cross_zone);
    assert_eq!(lb.idle_timeout, Duration::from_secs(60));
    let l = &lb.listeners[0];
    assert_eq!(l.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(l.protocol, ListenerProtocol::Http);
    assert!(l.certificates.is_empty());
    assert_eq!(
        l.default_action,
        Action::Forward {
            target_groups: vec![WeightedTargetGroup {
                name: "web".into(),
                weight: 1
            }],
            rollback: None,
        }
    );
    let prios: Vec<u32> = l.rules.iter().map(|r| r.priority).collect();
    assert_eq!(prios, [10, 20, 30]);
    assert_eq!(
        l.rules[0].conditions,
        [
            Condition::PathPattern(vec!["/api/*".into()]),
            Condition::HostHeader(vec!["api.example.com".into(), "*.api.example.com".into()]),
        ]
    );
    let names: Vec<(&str, u32)> = match &l.rules[0].action {
        Action::Forward { target_groups, .. } => target_groups
            .iter()
            .map(|g| (g.name.as_str(), g.weight))
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(names, [("web", 90), ("canary", 10)]);
    match &l.rules[1].action {
        Action::Redirect(r) => {
            assert_eq!(r.status, 301);
            assert_eq!(r.path.as_deref(), Some("/new/#{path}"));
            assert_eq!(r.host, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        l.rules[2].action,
        Action::FixedResponse {
            status: 403,
            content_type: "text/plain".into(),
            body: "no\n".into()
        }
    );
    assert_eq!(
        l.rules[2].conditions,
        [Condition::HttpRequestMethod(vec!["DELETE".into()])]
    );

    let g = &cfg.auto_scaling_groups["web"];
    assert_eq!(g.launch_template, "web");
    assert_eq!(g.target_groups, ["web"]);
    assert_eq!(g.zones, ["az-a", "az-b", "az-c"]);
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (2, 6, 2));
    assert_eq!(g.health_check_type, HealthCheckType::Elb);
    assert_eq!(g.health_check_grace_period, Duration::from_secs(10));
    assert_eq!(g.default_instance_warmup, Some(Duration::from_secs(5)));
    assert_eq!(g.default_cooldown, Duration::from_secs(30));
    assert_eq!(g.termination_policies, [TerminationPolicy::Default]);
    assert_eq!(g.scaling_policies.len(), 2);
    assert_eq!(g.scaling_policies[0].name(), "keep-rps");
    assert_eq!(
        g.scaling_policies[0],
        ScalingPolicy::TargetTracking(TargetTrackingSpec {
            name: "keep-rps".into(),
            metric: Metric::RequestRatePerTarget,
            statistic: Statistic::Average,
            target_value: 100.0,
            period: Duration::from_secs(10),
            scale_in_stabilization: Duration::from_secs(300),
            disable_scale_in: false,
        })
    );
    match &g.scaling_policies[1] {
        ScalingPolicy::Step(StepSpec {
            adjustment_type,
            alarm,
            steps,
            min_adjustment_magnitude,
            ..
        }) => {
            assert_eq!(*adjustment_type, AdjustmentType::ChangeInCapacity);
            assert_eq!(alarm.metric, Metric::CpuUtilization);
            assert_eq!(alarm.statistic, Statistic::Average);
            assert_eq!(alarm.period, Duration::from_secs(10));
            assert_eq!(
                (alarm.evaluation_periods, alarm.datapoints_to_alarm),
                (3, 2)
            );
            assert_eq!(alarm.comparison, Comparison::GreaterThanOrEqual);
            assert_eq!(alarm.threshold, 70.0);
            assert_eq!(alarm.treat_missing_data, MissingData::Missing);
            assert_eq!(
                steps,
                &[
                    StepAdjustment {
                        lower: Some(0.0),
                        upper: Some(20.0),
                        adjustment: 1
                    },
                    StepAdjustment {
                        lower: Some(20.0),
                        upper: None,
                        adjustment: 3
                    },
                ]
            );
            assert_eq!(*min_adjustment_magnitude, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        g.scheduled_actions,
        [ScheduledActionSpec::parse(
            "morning-rush",
            Some("0 8 * * *"),
            "Asia/Seoul",
            None,
            None,
            Some(4),
            None,
            Some(4),
        )
        .unwrap()]
    );
}

#[test]
fn minimal_fixture_is_valid() {
    let cfg = load(&fixture("minimal.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.auto_scaling_groups["web"].desired_capacity, 1);
}

#[test]
fn defaults_follow_aws() {
    let src = r#"
[launch_templates.web]
command = ["app"]

[target_groups.web]

[target_groups.raw]
protocol = "tcp"

[load_balancers.front]
[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "web" }

[load_balancers.net]
type = "network"
[[load_balancers.net.listeners]]
bind = "127.0.0.1:8081"
default_action = { type = "forward", target_group = "raw" }

[auto_scaling_groups.web]
launch_template = "web"
min_size = 2
max_size = 4
"#;
    let cfg = parse(src, Path::new("conf/flotilla.toml")).unwrap_or_else(|e| panic!("{e}"));
    let base = std::env::current_dir().unwrap().join("conf");
    assert_eq!(cfg.base_dir, base);
    assert_eq!(cfg.path, Path::new("conf/flotilla.toml"));
    let c = &cfg.cluster;
    assert_eq!(c.name, "flotilla");
    assert_eq!(c.zones, ["az-a", "az-b", "az-c"]);
    assert_eq!(c.state_dir, base.join(".flotilla"));
    assert_eq!(c.admin_bind, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.admin_token_env, "FLOTILLA_ADMIN_TOKEN");
    assert_eq!(c.host_lost_grace, Duration::from_secs(10));

    let lt = &cfg.launch_templates["web"];
    assert!(lt.env.is_empty());
    assert_eq!(lt.working_dir, base);
    assert_eq!(lt.stop_signal, StopSignal::Term);
    assert_eq!(lt.stop_timeout, Duration::from_secs(10));
    assert_eq!(lt.instance_type, "t3.micro");

    let tg = &cfg.target_groups["web"];
    assert_eq!(tg, &TargetGroup::default());
    assert_eq!(tg.deregistration_delay, Duration::from_secs(300));
    let hc = &tg.health_check;
    assert_eq!(hc.protocol, Protocol::Http);
    assert_eq!(hc.path, "/");
    assert_eq!(hc.interval, Duration::from_secs(30));
    assert_eq!(hc.timeout, Duration::from_secs(5));
    assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (5, 2));
    assert_eq!(hc.matcher.to_string(), "200");
    assert_eq!(tg.stickiness.duration, Duration::from_secs(86_400));
    assert!(!tg.proxy_protocol_v2);
    assert_eq!(
        cfg.target_groups["raw"].health_check.protocol,
        Protocol::Tcp
    );

    let lb = &cfg.load_balancers["front"];
    assert_eq!(lb.kind, LoadBalancerType::Application);
    assert!(lb.cross_zone);
    assert_eq!(lb.idle_timeout, Duration::from_secs(60));
    assert_eq!(lb.listeners[0].protocol, ListenerProtocol::Http);
    assert_eq!(lb.access_log, None);
    assert_eq!(
        cfg.load_balancers["net"].idle_timeout,
        Duration::from_secs(350),
        "AWS NLB idle timeout"
    );
    assert_eq!(
        cfg.load_balancers["net"].listeners[0].protocol,
        ListenerProtocol::Tcp
    );

    let g = &cfg.auto_scaling_groups["web"];
    assert!(g.target_groups.is_empty());
    assert_eq!(g.zones, c.zones);
    assert_eq!(g.desired_capacity, 2);
    assert_eq!(g.health_check_type, HealthCheckType::Process);
    assert_eq!(g.health_check_grace_period, Duration::from_secs(30));
    assert_eq!(g.default_instance_warmup, None);
    assert_eq!(g.default_cooldown, Duration::from_secs(300));
    assert_eq!(g.termination_policies, [TerminationPolicy::Default]);
    assert!(!g.new_instances_protected_from_scale_in);
    assert_eq!(g.instance_refresh, InstanceRefreshSettings::default());
    assert_eq!(g.instance_refresh.min_healthy_percentage, 90);
    assert_eq!(
        g.instance_refresh.checkpoint_delay,
        Duration::from_secs(3600)
    );
}

#[test]
fn instance_refresh_settings() {
    let src = "[launch_templates.web]\ncommand = [\"app\"]\n\
        [auto_scaling_groups.web]\nlaunch_template = \"web\"\nmin_size = 1\nmax_size = 2\n\
        [auto_scaling_groups.web.instance_refresh]\non_launch_template_change = true\n\
        min_healthy_percentage = 50\ninstance_warmup = \"3s\"\n\
        checkpoint_percentages = [20, 50]\ncheckpoint_delay = \"1m\"\nauto_rollback = true\n";
    let cfg = parse(src, Path::new("f.toml")).expect("valid");
    assert_eq!(
        cfg.auto_scaling_groups["web"].instance_refresh,
        InstanceRefreshSettings {
            on_launch_template_change: true,
            min_healthy_percentage: 50,
            instance_warmup: Some(Duration::from_secs(3)),
            checkpoint_percentages: vec![20, 50],
            checkpoint_delay: Duration::from_secs(60),
            auto_rollback: true,
        }
    );
}

#[test]
fn empty_file_is_a_valid_empty_cluster() {
    let cfg = parse("", Path::new("f.toml")).unwrap();
    assert!(cfg.auto_scaling_groups.is_empty());
    assert_eq!(
        cfg.cluster,
        Cluster {
            state_dir: cfg.base_dir.join(".flotilla"),
            ..Cluster::default()
        }
    );
}

#[test]
fn paths_resolve_against_config_dir_and_absolute_paths_stay() {
    let src = r#"
[cluster]
state_dir = "/var/lib/flotilla"
[launch_templates.web]
command = ["app"]
working_dir = "apps/./web"
[target_groups.web]
[[load_balancers.front.listeners]]
bind = "127.0.0.1:8443"
protocol = "https"
certificates = [{ cert = "tls/cert.pem", key = "/etc/key.pem" }]
default_action = { type = "forward", target_group = "web" }
"#;
    let cfg = parse(src, Path::new("/srv/conf/f.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.cluster.state_dir, Path::new("/var/lib/flotilla"));
    assert_eq!(
        cfg.launch_templates["web"].working_dir,
        Path::new("/srv/conf/apps/web")
    );
    let c = &cfg.load_balancers["front"].listeners[0].certificates[0];
    assert_eq!(c.cert, Path::new("/srv/conf/tls/cert.pem"));
    assert_eq!(c.key, Path::new("/etc/key.pem"));
}

#[test]
fn other_forms_are_accepted() {
    let src = r#"
[cluster]
zones = ["z1", "z2"]
[launch_templates.web]
command = ["app"]
stop_signal = "int"
[target_groups.web]
algorithm = "least_outstanding_requests"
targets = ["127.0.0.1:7000", "[::1]:7001"]
health_check = { matcher = 204 }
[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "fixed-response", status = 404 }
[[load_balancers.front.listeners.rules]]
priority = 50000
conditions = [
  { field = "http-header", name = "X-Env", values = ["canary"] },
  { field = "query-string", values = ["version=v1", "beta"] },
  { field = "source-ip", values = ["10.0.0.0/8", "::1/128"] },
]
action = { type = "redirect", protocol = "https", port = 443 }
[auto_scaling_groups.web]
launch_template = "web"
zones = ["z2"]
min_size = 0
max_size = 0
termination_policies = ["oldest_instance", "default"]
[[auto_scaling_groups.web.scaling_policies]]
name = "simple"
type = "simple"
adjustment_type = "exact_capacity"
alarm = { metric = "cpu_utilization", comparison = "<", threshold = 10 }
adjustment = 0
cooldown = "1m"
[[auto_scaling_groups.web.scheduled_actions]]
name = "once"
start_time = 2030-01-01T08:00:00Z
max_size = 0
"#;
    let cfg = parse(src, Path::new("f.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.launch_templates["web"].stop_signal, StopSignal::Int);
    let tg = &cfg.target_groups["web"];
    assert_eq!(tg.targets.len(), 2);
    assert!(tg.health_check.matcher.matches(204));
    let l = &cfg.load_balancers["front"].listeners[0];
    assert_eq!(
        l.default_action,
        Action::FixedResponse {
            status: 404,
            content_type: "text/plain".into(),
            body: String::new()
        }
    );
    let conds = &l.rules[0].conditions;
    assert_eq!(
        conds[0],
        Condition::HttpHeader {
            name: "X-Env".into(),
            values: vec!["canary".into()]
        }
    );
    assert_eq!(
        conds[1],
        Condition::QueryString(vec![
            QueryPair {
                key: Some("version".into()),
                value: "v1".into()
            },
            QueryPair {
                key: None,
                value: "beta".into()
            },
        ])
    );
    match &conds[2] {
        Condition::SourceIp(c) => assert!(c[0].contains("10.2.3.4".parse().unwrap())),
        other => panic!("{other:?}"),
    }
    match &l.rules[0].action {
        Action::Redirect(r) => {
            assert_eq!(r.status, 301);
            assert_eq!(r.protocol.as_deref(), Some("HTTPS"));
            assert_eq!(r.port.as_deref(), Some("443"));
        }
        other => panic!("{other:?}"),
    }
    let g = &cfg.auto_scaling_groups["web"];
    assert_eq!(g.zones, ["z2"]);
    assert_eq!(
        g.termination_policies,
        [
            TerminationPolicy::OldestInstance,
            TerminationPolicy::Default
        ]
    );
    match &g.scaling_policies[0] {
        ScalingPolicy::Simple(SimpleSpec {
            alarm, cooldown, ..
        }) => {
            assert_eq!(alarm.period, Duration::from_secs(60));
            assert_eq!(alarm.datapoints_to_alarm, 1);
            assert_eq!(*cooldown, Some(Duration::from_secs(60)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        g.scheduled_actions[0]
            .start_time
            .map(|t| t.to_string())
            .as_deref(),
        Some("2030-01-01T08:00:00Z")
    );
    assert_eq!(g.scheduled_actions[0].time_zone.iana_name(), Some("UTC"));
}

#[test]
fn missing_file_is_an_io_error() {
    let err = load(Path::new("/nonexistent/flotilla.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().starts_with("/nonexistent/flotilla.toml: "));
    assert!(err.diagnostics().is_empty());
}

#[test]
fn network_load_balancer_keys() {
    let src = r#"
[target_groups.raw]
protocol = "tcp"
proxy_protocol_v2 = true

[load_balancers.net]
type = "network"
idle_timeout = "20s"
[[load_balancers.net.listeners]]
bind = "127.0.0.1:8081"
default_action = { type = "forward", target_group = "raw" }
"#;
    let cfg = parse(src, Path::new("/srv/conf/f.toml")).unwrap_or_else(|e| panic!("{e}"));
    let tg = &cfg.target_groups["raw"];
    assert!(tg.proxy_protocol_v2);
    assert_eq!(
        tg.health_check.protocol,
        Protocol::Tcp,
        "tcp group, tcp check"
    );
    let lb = &cfg.load_balancers["net"];
    assert_eq!(lb.idle_timeout, Duration::from_secs(20));
    assert_eq!(lb.access_log, None);
    assert!(
        !lb.cross_zone,
        "AWS: cross-zone is off by default for network load balancers"
    );
    assert!(!cfg.target_group_cross_zone("raw"));
}

#[test]
fn access_log_resolves_against_the_config_dir() {
    let src = r#"
[target_groups.web]
[load_balancers.front]
access_log = "logs/front.jsonl"
[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "web" }
"#;
    let cfg = parse(src, Path::new("/srv/conf/f.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.load_balancers["front"].access_log.as_deref(),
        Some(Path::new("/srv/conf/logs/front.jsonl"))
    );
}

#[test]
fn target_tracking_statistic_defaults_to_p90_for_response_time_else_average() {
    let src = r#"
[launch_templates.web]
command = ["app"]

[auto_scaling_groups.web]
launch_template = "web"
min_size = 1
max_size = 3

[[auto_scaling_groups.web.scaling_policies]]
name = "latency"
type = "target_tracking"
metric = "target_response_time"
target_value = 0.25

[[auto_scaling_groups.web.scaling_policies]]
name = "latency-p99"
type = "target_tracking"
metric = "target_response_time"
statistic = "p99"
target_value = 0.5

[[auto_scaling_groups.web.scaling_policies]]
name = "cpu"
type = "target_tracking"
metric = "cpu_utilization"
target_value = 50.0
"#;
    let cfg = parse(src, Path::new("f.toml")).unwrap_or_else(|e| panic!("{e}"));
    let stats: Vec<&str> = cfg.auto_scaling_groups["web"]
        .scaling_policies
        .iter()
        .map(|p| match p {
            ScalingPolicy::TargetTracking(t) => t.statistic.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(stats, ["p90", "p99", "average"]);
}

#[test]
fn new_instances_can_start_protected_from_scale_in() {
    let src = "[launch_templates.web]\ncommand = [\"app\"]\n[auto_scaling_groups.web]\nlaunch_template = \"web\"\nmin_size = 1\nmax_size = 2\nnew_instances_protected_from_scale_in = true\n";
    let cfg = parse(src, Path::new("f.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.auto_scaling_groups["web"].new_instances_protected_from_scale_in);
}
