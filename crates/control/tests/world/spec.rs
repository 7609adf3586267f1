//! The cluster a seed runs: one group behind a target group, a canary target group, and a
//! weighted forward between them with an automatic rollback.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_control::alarm::{AlarmSpec, Comparison, MissingData};
use flotilla_control::metrics::{Metric, Statistic};
use flotilla_control::policy::TargetTrackingSpec;
use flotilla_control::{
    AutoScalingGroupConfig, ClusterSpec, ForwardSpec, HealthCheckSpec, HealthCheckType,
    InstanceRefreshSettings, LaunchTemplate, LifecycleActionResult, LifecycleHook,
    LifecycleTransition, RollbackSpec, RuleKey, ScalingPolicy, TargetGroupSpec, TerminationPolicy,
    WarmPool, WeightedTargetGroup,
};

use super::Rng;

pub const ZONES: [&str; 3] = ["az-a", "az-b", "az-c"];
pub const MIN: u32 = 1;
pub const MAX: u32 = 12;
pub const STABILIZATION: u64 = 30;
pub const CANARY: &str = "canary";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn canary_rule() -> RuleKey {
    RuleKey {
        load_balancer: "front".into(),
        listener: "127.0.0.1:80".parse().expect("an address"),
        priority: None,
    }
}

fn target_group(targets: Vec<std::net::SocketAddr>, drain: u64) -> TargetGroupSpec {
    TargetGroupSpec {
        health_check: HealthCheckSpec {
            interval: secs(1),
            timeout: secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        deregistration_delay: secs(drain),
        targets,
    }
}

/// Odd seeds: a warm pool and hooks, derived from the seed alone.
fn hooks_and_pool(seed: u64) -> (Vec<LifecycleHook>, Option<WarmPool>) {
    if seed % 2 == 0 {
        return (Vec::new(), None);
    }
    let result = |bit: u64| {
        if seed >> bit & 1 == 1 {
            LifecycleActionResult::Continue
        } else {
            LifecycleActionResult::Abandon
        }
    };
    let hooks = vec![
        LifecycleHook {
            name: "warm".into(),
            transition: LifecycleTransition::Launching,
            heartbeat_timeout: secs(2 + (seed >> 3) % 5),
            default_result: result(1),
        },
        LifecycleHook {
            name: "flush".into(),
            transition: LifecycleTransition::Terminating,
            heartbeat_timeout: secs(2 + (seed >> 5) % 5),
            default_result: result(2),
        },
    ];
    let pool = WarmPool {
        min_size: ((seed >> 7) % 3) as u32,
        max_group_prepared_capacity: None,
        reuse_on_scale_in: seed >> 9 & 1 == 1,
    };
    (hooks, Some(pool))
}

pub fn cluster(seed: u64, rng: &mut Rng) -> ClusterSpec {
    let (lifecycle_hooks, warm_pool) = hooks_and_pool(seed);
    let group = AutoScalingGroupConfig {
        launch_template: "web".into(),
        target_groups: vec!["web".into()],
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        min_size: MIN,
        max_size: MAX,
        desired_capacity: 2,
        health_check_type: if seed >> 1 & 1 == 1 {
            HealthCheckType::Elb
        } else {
            HealthCheckType::Process
        },
        health_check_grace_period: secs(5),
        default_instance_warmup: Some(secs(rng.below(6))),
        default_cooldown: secs(30),
        termination_policies: vec![TerminationPolicy::Default],
        new_instances_protected_from_scale_in: false,
        scaling_policies: vec![ScalingPolicy::TargetTracking(TargetTrackingSpec {
            name: "keep-rps".into(),
            metric: Metric::RequestRatePerTarget,
            statistic: Statistic::Average,
            target_value: 100.0,
            period: secs(1 + rng.below(5)),
            scale_in_stabilization: secs(STABILIZATION),
            disable_scale_in: false,
        })],
        scheduled_actions: Vec::new(),
        lifecycle_hooks,
        warm_pool,
        instance_refresh: InstanceRefreshSettings::default(),
        instances_distribution: None,
    };
    let template = LaunchTemplate {
        command: vec!["app".into()],
        env: BTreeMap::new(),
        working_dir: ".".into(),
        stop_signal: Default::default(),
        stop_timeout: secs(10),
        instance_type: "t3.micro".into(),
        user_data: None,
        image: None,
    };
    let canary_targets = vec![
        "10.9.0.1:80".parse().expect("an address"),
        "10.9.0.2:80".parse().expect("an address"),
    ];
    let forward = ForwardSpec {
        rule: canary_rule(),
        target_groups: vec![
            WeightedTargetGroup {
                name: "web".into(),
                weight: 90,
            },
            WeightedTargetGroup {
                name: CANARY.into(),
                weight: 10,
            },
        ],
        rollback: Some(RollbackSpec {
            target_group: CANARY.into(),
            alarm: AlarmSpec {
                metric: Metric::HttpTarget5xxRate,
                statistic: Statistic::Average,
                period: secs(5),
                evaluation_periods: 2,
                datapoints_to_alarm: 2,
                comparison: Comparison::GreaterThanOrEqual,
                threshold: 20.0,
                treat_missing_data: MissingData::Missing,
            },
        }),
    };
    ClusterSpec {
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        launch_templates: [("web".to_string(), template)].into(),
        groups: [("web".to_string(), group)].into(),
        target_groups: [
            ("web".to_string(), target_group(Vec::new(), rng.below(8))),
            (CANARY.to_string(), target_group(canary_targets, 5)),
        ]
        .into(),
        forwards: vec![forward],
        pricing: Default::default(),
    }
}
