//! Configs and scenarios the simulator's tests build from text.
#![allow(dead_code)]

use std::path::Path;

use flotilla_config::scenario::{parse_scenario, Scenario};
use flotilla_config::{parse, Config};

/// A config from TOML text (panics with the FILE:LINE:COL errors otherwise).
pub fn config(src: &str) -> Config {
    parse(src, Path::new("test.toml")).unwrap_or_else(|e| panic!("config: {e:?}"))
}

/// A scenario from TOML text.
pub fn scenario(src: &str) -> Scenario {
    parse_scenario(src, Path::new("scenario.toml")).unwrap_or_else(|e| panic!("scenario: {e:?}"))
}

/// A cluster of three zones, one load-balanced group `web` of `instance_type` between `min`
/// and `max` (starting at `desired`), health checks every `interval`, and `extra` appended
/// (policies, distributions, pricing).
pub fn lb_group(min: u32, max: u32, desired: u32, interval: &str, extra: &str) -> String {
    format!(
        r#"
[cluster]
name = "t"
zones = ["az-a", "az-b", "az-c"]

[launch_templates.web]
command = ["app"]
instance_type = "m5.large"

[target_groups.web]
protocol = "http"
deregistration_delay = "5s"

[target_groups.web.health_check]
path = "/health"
interval = "{interval}"
timeout = "1s"
healthy_threshold = 2
unhealthy_threshold = 2

[load_balancers.front]
type = "application"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:0"
protocol = "http"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
zones = ["az-a", "az-b", "az-c"]
min_size = {min}
max_size = {max}
desired_capacity = {desired}
health_check_type = "elb"
health_check_grace_period = "10s"
default_instance_warmup = "10s"
default_cooldown = "30s"
{extra}
"#
    )
}

/// A target tracking policy on CPU.
pub fn cpu_policy(target: f64, period: &str) -> String {
    format!(
        r#"
[[auto_scaling_groups.web.scaling_policies]]
name = "cpu"
type = "target_tracking"
metric = "cpu_utilization"
target_value = {target}
period = "{period}"
scale_in_stabilization = "60s"
"#
    )
}

/// A target tracking policy on requests per target and second.
pub fn rps_policy(target: f64, period: &str) -> String {
    cpu_policy(target, period).replace("cpu_utilization", "request_rate_per_target")
}
