//! What the cluster is asked to run: the config file decodes straight into these types (one
//! definition each), and cluster mode stores the same in etcd.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::canary::RollbackSpec;
use crate::controller::ControllerSpec;
use crate::group::{
    GroupSpec, HealthCheckType, LifecycleHook, RefreshPreferences, TerminationPolicy, WarmPool,
    DEFAULT_CHECKPOINT_DELAY,
};
use crate::health::HealthCheckSpec;
use crate::policy::ScalingPolicy;
use crate::pricing::{InstancesDistribution, PricingSpec};
use crate::schedule::ScheduledActionSpec;
use crate::template::LaunchTemplate;

/// Everything the control plane runs: zones, launch templates, groups, target groups and the
/// weighted forward actions whose weights it may change.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    /// The availability zones (failure domains).
    pub zones: Vec<String>,
    /// Launch templates by name.
    pub launch_templates: BTreeMap<String, LaunchTemplate>,
    /// Auto scaling groups by name.
    pub groups: BTreeMap<String, AutoScalingGroupConfig>,
    /// Target groups by name: their health checks, draining and static targets.
    pub target_groups: BTreeMap<String, TargetGroupSpec>,
    /// Weighted forward actions of the listeners: operators shift their weights, canary
    /// rollbacks take a canary out.
    pub forwards: Vec<ForwardSpec>,
    /// Prices per instance type and the reservations owned (`[pricing]`; default: the
    /// shipped table, no reservations).
    pub pricing: PricingSpec,
}

/// A group of identical instances kept between `min_size` and `max_size`, spread over zones
/// (`[auto_scaling_groups.NAME]`), as an EC2 Auto Scaling group.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AutoScalingGroupConfig {
    /// Name of the `[launch_templates.NAME]` new instances are started from.
    pub launch_template: String,
    /// Target groups every in-service instance is registered with.
    pub target_groups: Vec<String>,
    /// Zones to balance instances across; a subset of the cluster's. Default: all of them.
    pub zones: Vec<String>,
    /// Lower bound for the desired capacity.
    pub min_size: u32,
    /// Upper bound for the desired capacity; at least `min_size`.
    pub max_size: u32,
    /// Initial number of instances, within min..=max. Default `min_size`.
    pub desired_capacity: u32,
    /// What makes an instance unhealthy (and replaced). Default `process`.
    pub health_check_type: HealthCheckType,
    /// Time after launch during which failing health checks are ignored. Default 30 s.
    pub health_check_grace_period: Duration,
    /// Time a new instance needs before its metrics count toward scaling; `None` = not set.
    pub default_instance_warmup: Option<Duration>,
    /// Pause after a simple-scaling activity before the next one. Default 300 s as in AWS.
    pub default_cooldown: Duration,
    /// Order in which scale-in picks victims (after AZ balancing). Default `[default]`.
    pub termination_policies: Vec<TerminationPolicy>,
    /// Whether instances launched from now on start protected from scale-in (AWS
    /// `NewInstancesProtectedFromScaleIn`). Default false.
    pub new_instances_protected_from_scale_in: bool,
    /// Dynamic scaling policies.
    pub scaling_policies: Vec<ScalingPolicy>,
    /// Capacity changes at fixed times.
    pub scheduled_actions: Vec<ScheduledActionSpec>,
    /// Waits on launch and terminate (`[[auto_scaling_groups.NAME.lifecycle_hooks]]`), so an
    /// application can warm up before traffic or flush before it stops.
    pub lifecycle_hooks: Vec<LifecycleHook>,
    /// Pre-started instances kept out of service (`[auto_scaling_groups.NAME.warm_pool]`).
    pub warm_pool: Option<WarmPool>,
    /// How instance refreshes of this group run, and whether a reload that changes the
    /// launch template starts one (`[auto_scaling_groups.NAME.instance_refresh]`).
    pub instance_refresh: InstanceRefreshSettings,
    /// The mixed instances policy (`[auto_scaling_groups.NAME.instances_distribution]`):
    /// On-Demand base and share, Spot strategy, Capacity Rebalancing, the interruption drill.
    /// `None`: every instance On-Demand.
    pub instances_distribution: Option<InstancesDistribution>,
}

impl AutoScalingGroupConfig {
    /// The group machine's spec, for launches from `launch_template_version`; `drain` is how
    /// early before its deadline a Spot instance with an interruption notice starts draining.
    pub fn group_spec(
        &self,
        name: &str,
        launch_template_version: u64,
        drain: Duration,
    ) -> GroupSpec {
        GroupSpec {
            name: name.to_string(),
            zones: self.zones.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            desired_capacity: self.desired_capacity,
            health_check_type: self.health_check_type,
            health_check_grace_period: self.health_check_grace_period,
            termination_policies: self.termination_policies.clone(),
            launch_template_version,
            has_target_groups: !self.target_groups.is_empty(),
            lifecycle_hooks: self.lifecycle_hooks.clone(),
            warm_pool: self.warm_pool,
            instances_distribution: self.instances_distribution,
            interruption_drain: drain,
        }
    }

    /// The longest deregistration delay of the group's target groups (`delay` looks one up).
    pub(crate) fn drain_of(&self, delay: impl Fn(&str) -> Option<Duration>) -> Duration {
        self.target_groups
            .iter()
            .filter_map(|tg| delay(tg))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The scaling controller's spec: policies, scheduled actions, warm-up and cooldown.
    pub fn controller_spec(&self) -> ControllerSpec {
        ControllerSpec {
            default_instance_warmup: self.default_instance_warmup,
            default_cooldown: self.default_cooldown,
            policies: self.scaling_policies.clone(),
            scheduled: self.scheduled_actions.clone(),
        }
    }

    /// Whether what the scaling controller is built from changed (then it starts afresh).
    pub(crate) fn scaling_changed(&self, other: &AutoScalingGroupConfig) -> bool {
        (
            &self.scaling_policies,
            &self.scheduled_actions,
            self.default_instance_warmup,
            self.default_cooldown,
        ) != (
            &other.scaling_policies,
            &other.scheduled_actions,
            other.default_instance_warmup,
            other.default_cooldown,
        )
    }

    /// The preferences of an instance refresh: each override, else the group's
    /// `instance_refresh` settings; the warm-up falls back to the group's default instance
    /// warm-up, else its health check grace period (AWS).
    pub fn refresh_preferences(&self, overrides: RefreshOverrides) -> RefreshPreferences {
        let s = &self.instance_refresh;
        let warmup = s
            .instance_warmup
            .or(self.default_instance_warmup)
            .unwrap_or(self.health_check_grace_period);
        RefreshPreferences {
            min_healthy_percentage: overrides
                .min_healthy_percentage
                .unwrap_or(s.min_healthy_percentage),
            instance_warmup: overrides.instance_warmup.unwrap_or(warmup),
            checkpoint_percentages: overrides
                .checkpoint_percentages
                .unwrap_or_else(|| s.checkpoint_percentages.clone()),
            checkpoint_delay: overrides.checkpoint_delay.unwrap_or(s.checkpoint_delay),
            auto_rollback: overrides.auto_rollback.unwrap_or(s.auto_rollback),
        }
    }
}

/// What an operator's `StartInstanceRefresh` overrides of the group's refresh settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshOverrides {
    /// Share of desired capacity kept healthy, 0..=100.
    pub min_healthy_percentage: Option<u32>,
    /// How long a new instance must be healthy before the refresh moves on.
    pub instance_warmup: Option<Duration>,
    /// Shares of replaced instances at which the refresh pauses.
    pub checkpoint_percentages: Option<Vec<u32>>,
    /// How long each checkpoint pauses.
    pub checkpoint_delay: Option<Duration>,
    /// Roll back when a new instance fails.
    pub auto_rollback: Option<bool>,
}

/// The group's instance refresh preferences (AWS `RefreshPreferences`), used by refreshes an
/// operator starts (the API body overrides them field by field) and by the one a reload
/// starts when `on_launch_template_change` is set — the way CloudFormation's rolling update
/// policy rolls a new launch template out without a separate step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRefreshSettings {
    /// Start a refresh when a reload changes the group's launch template. Default false (AWS
    /// only records the new version; running instances keep theirs).
    pub on_launch_template_change: bool,
    /// Share of desired capacity kept healthy while replacing, 0..=100. Default 90.
    pub min_healthy_percentage: u32,
    /// How long a new instance must be healthy before the refresh moves on. Default: the
    /// group's `default_instance_warmup`, else its health check grace period.
    pub instance_warmup: Option<Duration>,
    /// Shares of replaced instances (ascending, 1..=100) at which the refresh pauses.
    pub checkpoint_percentages: Vec<u32>,
    /// How long each checkpoint pauses. Default 1 h, as AWS.
    pub checkpoint_delay: Duration,
    /// Roll back to the previous launch template version when a new instance fails. Default
    /// false, as AWS.
    pub auto_rollback: bool,
}

impl Default for InstanceRefreshSettings {
    fn default() -> Self {
        InstanceRefreshSettings {
            on_launch_template_change: false,
            min_healthy_percentage: 90,
            instance_warmup: None,
            checkpoint_percentages: Vec::new(),
            checkpoint_delay: DEFAULT_CHECKPOINT_DELAY,
            auto_rollback: false,
        }
    }
}

/// A target group as the control plane sees it: how its targets are health-checked and
/// drained, and the targets registered by hand.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetGroupSpec {
    /// Probe schedule and thresholds.
    pub health_check: HealthCheckSpec,
    /// How long a deregistered target keeps serving in-flight requests.
    pub deregistration_delay: Duration,
    /// Static targets, registered beside those auto scaling groups register.
    pub targets: Vec<SocketAddr>,
}

/// A target group in a forward action; traffic share is weight / sum of weights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WeightedTargetGroup {
    /// Name of a `[target_groups.NAME]`.
    pub name: String,
    /// 0–999; 0 sends no traffic. Default 1.
    pub weight: u32,
}

/// One forward action: which load balancer, listener (bind address) and rule.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RuleKey {
    /// The load balancer's name.
    pub load_balancer: String,
    /// The listener's bound address.
    pub listener: SocketAddr,
    /// `None` = the listener's default action, else the rule's priority.
    pub priority: Option<u32>,
}

impl RuleKey {
    /// `default` or the priority, as the API spells it.
    pub fn rule(&self) -> String {
        self.priority
            .map_or_else(|| "default".to_string(), |p| p.to_string())
    }
}

/// A weighted forward action as the file configures it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForwardSpec {
    /// Where it is.
    pub rule: RuleKey,
    /// The file's weights.
    pub target_groups: Vec<WeightedTargetGroup>,
    /// Its canary rollback, if any.
    pub rollback: Option<RollbackSpec>,
}
