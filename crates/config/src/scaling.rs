//! Auto scaling groups, their scaling policies and scheduled actions (EC2 Auto Scaling model).

use std::time::Duration;

/// Metric names a scaling policy or alarm may use (interface §3). Extend this list when the
/// control plane learns a new metric.
pub const KNOWN_METRICS: &[&str] = &[
    "request_count",
    "request_rate_per_target",
    "target_response_time",
    "http_target_5xx_count",
    "http_elb_5xx_count",
    "active_connections",
    "new_connections",
    "healthy_host_count",
    "unhealthy_host_count",
    "cpu_utilization",
    "in_service_instances",
    "desired_capacity",
];

/// Metrics kept as distributions, the only ones with percentile statistics (p50, p90, p99).
pub const DISTRIBUTION_METRICS: &[&str] = &["target_response_time"];

/// Statistics an alarm may apply to a metric (interface §3).
pub const KNOWN_STATISTICS: &[&str] = &[
    "average",
    "sum",
    "minimum",
    "maximum",
    "sample_count",
    "p50",
    "p90",
    "p99",
];

/// A group of identical instances kept between `min_size` and `max_size`, spread over zones
/// (`[auto_scaling_groups.NAME]`), as an EC2 Auto Scaling group.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoScalingGroup {
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
    pub scheduled_actions: Vec<ScheduledAction>,
    /// Waits on launch and terminate (`[[auto_scaling_groups.NAME.lifecycle_hooks]]`), so an
    /// application can warm up before traffic or flush before it stops.
    pub lifecycle_hooks: Vec<LifecycleHook>,
    /// Pre-started instances kept out of service (`[auto_scaling_groups.NAME.warm_pool]`).
    pub warm_pool: Option<WarmPool>,
    /// How instance refreshes of this group run, and whether a reload that changes the
    /// launch template starts one (`[auto_scaling_groups.NAME.instance_refresh]`).
    pub instance_refresh: InstanceRefreshSettings,
}

/// The group's instance refresh preferences (AWS `RefreshPreferences`), used by refreshes an
/// operator starts (the API body overrides them field by field) and by the one a reload
/// starts when `on_launch_template_change` is set — the way CloudFormation's rolling update
/// policy rolls a new launch template out without a separate step.
#[derive(Debug, Clone, PartialEq)]
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
            checkpoint_delay: flotilla_control::DEFAULT_CHECKPOINT_DELAY,
            auto_rollback: false,
        }
    }
}

// The control plane's own types: the config names what the group runs, nothing more.
pub use flotilla_control::{LifecycleActionResult, LifecycleHook, LifecycleTransition, WarmPool};

/// Source of instance health for replacement decisions (EC2 Auto Scaling `HealthCheckType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthCheckType {
    /// Only a process exit makes the instance unhealthy (the EC2 status check analogue). Default.
    #[default]
    Process,
    /// Also a target group reporting it unhealthy.
    Elb,
}

impl HealthCheckType {
    /// `"process"` or `"elb"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckType::Process => "process",
            HealthCheckType::Elb => "elb",
        }
    }
}

/// How scale-in chooses which instance to terminate (EC2 Auto Scaling termination policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TerminationPolicy {
    /// AWS default: balance zones, then oldest launch template, then closest to billing hour.
    #[default]
    Default,
    /// The longest-running instance.
    OldestInstance,
    /// The most recently launched instance.
    NewestInstance,
    /// Instances from the oldest launch template version.
    OldestLaunchTemplate,
}

impl TerminationPolicy {
    /// The config spelling, e.g. `"oldest_instance"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationPolicy::Default => "default",
            TerminationPolicy::OldestInstance => "oldest_instance",
            TerminationPolicy::NewestInstance => "newest_instance",
            TerminationPolicy::OldestLaunchTemplate => "oldest_launch_template",
        }
    }
}

/// A dynamic scaling policy of a group (`[[auto_scaling_groups.NAME.scaling_policies]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    /// Unique within the group; shown as the cause of scaling activities.
    pub name: String,
    /// The policy type and its settings (TOML key `type`).
    pub kind: ScalingPolicyKind,
}

/// The three EC2 Auto Scaling dynamic policy types.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalingPolicyKind {
    /// Keep a metric near a target value, like a thermostat.
    TargetTracking {
        /// Metric to track (one of [`KNOWN_METRICS`]).
        metric: String,
        /// Statistic of the metric over each period (one of [`KNOWN_STATISTICS`]; percentiles
        /// only for [`DISTRIBUTION_METRICS`]). Default `p90` for `target_response_time`,
        /// `average` otherwise.
        statistic: String,
        /// Value to keep the metric at; greater than zero.
        target_value: f64,
        /// Metric period evaluated, whole seconds. Default 10 s.
        period: Duration,
        /// Scale in only to the highest recommendation seen in this window. Default 5 min.
        scale_in_stabilization: Duration,
        /// Only ever scale out. Default false.
        disable_scale_in: bool,
    },
    /// Adjust by an amount chosen from the size of the alarm breach.
    Step {
        /// How step adjustments are interpreted.
        adjustment_type: AdjustmentType,
        /// The alarm that triggers the policy.
        alarm: AlarmSpec,
        /// Non-overlapping ranges relative to the alarm threshold.
        steps: Vec<StepAdjustment>,
        /// Smallest change for `percent_change_in_capacity`.
        min_adjustment_magnitude: Option<u32>,
    },
    /// Adjust by a fixed amount, then wait for the cooldown.
    Simple {
        /// How `adjustment` is interpreted.
        adjustment_type: AdjustmentType,
        /// The alarm that triggers the policy.
        alarm: AlarmSpec,
        /// The change (or new size for `exact_capacity`).
        adjustment: i64,
        /// Overrides the group's `default_cooldown`.
        cooldown: Option<Duration>,
    },
}

/// How a step or simple adjustment changes the desired capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AdjustmentType {
    /// Add (or remove) this many instances. Default.
    #[default]
    ChangeInCapacity,
    /// Set the capacity to this value.
    ExactCapacity,
    /// Change by this percentage of the current capacity.
    PercentChangeInCapacity,
}

/// One step of a step policy: applies when `threshold + lower <= metric < threshold + upper`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepAdjustment {
    /// Lower bound relative to the threshold; `None` = negative infinity.
    pub lower: Option<f64>,
    /// Upper bound relative to the threshold; `None` = positive infinity.
    pub upper: Option<f64>,
    /// The change to apply.
    pub adjustment: i64,
}

/// A CloudWatch-style alarm driving a step or simple policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// Metric watched (one of [`KNOWN_METRICS`]).
    pub metric: String,
    /// Statistic over each period (one of [`KNOWN_STATISTICS`]). Default `average`.
    pub statistic: String,
    /// Length of one evaluation period, whole seconds. Default 60 s.
    pub period: Duration,
    /// Number of most recent periods considered (N). Default 1.
    pub evaluation_periods: u32,
    /// Breaching periods among them needed to alarm (M of N). Default = `evaluation_periods`.
    pub datapoints_to_alarm: u32,
    /// How the statistic is compared with the threshold.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
    /// How periods without data count. Default `missing`.
    pub treat_missing_data: MissingData,
}

/// Alarm comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `>`
    GreaterThan,
    /// `>=`
    GreaterThanOrEqual,
    /// `<`
    LessThan,
    /// `<=`
    LessThanOrEqual,
}

impl Comparison {
    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::GreaterThanOrEqual => value >= threshold,
            Comparison::LessThan => value < threshold,
            Comparison::LessThanOrEqual => value <= threshold,
        }
    }
}

/// CloudWatch `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MissingData {
    /// Missing periods are skipped when evaluating (default).
    #[default]
    Missing,
    /// Missing periods count as good.
    NotBreaching,
    /// Missing periods count as breaching.
    Breaching,
    /// The alarm keeps its current state.
    Ignore,
}

/// A capacity change at a time or on a schedule (`[[auto_scaling_groups.NAME.scheduled_actions]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledAction {
    /// Unique within the group; shown as the cause of the activity.
    pub name: String,
    /// Five-field cron expression (minute hour day month weekday), in `time_zone`.
    pub recurrence: Option<String>,
    /// IANA time zone name for `recurrence`. Default `UTC`.
    pub time_zone: String,
    /// First (or only) run, RFC 3339.
    pub start_time: Option<String>,
    /// No runs after this time, RFC 3339.
    pub end_time: Option<String>,
    /// New minimum size, if changed.
    pub min_size: Option<u32>,
    /// New maximum size, if changed.
    pub max_size: Option<u32>,
    /// New desired capacity, if changed.
    pub desired_capacity: Option<u32>,
}
