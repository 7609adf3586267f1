//! What the API created: launch templates (with versions), target groups, load balancers,
//! listeners, rules and auto scaling groups (with policies and scheduled actions), in AWS's
//! own terms. This is the "API overlay": it is stored as JSON records in the state database,
//! turned into config types (`overlay.rs`) and merged with the file's config, so what the API
//! creates runs through the same control plane as the file.

mod ids;
pub mod overlay;
pub mod scaling;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use ids::{file_hex, Ids, ZoneMap};
pub use overlay::Overlay;

/// A key/value tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
    /// Auto Scaling only: whether instances get it.
    #[serde(default)]
    pub propagate_at_launch: bool,
}

/// An EC2 launch template and its versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchTemplateRes {
    /// `lt-…`.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// The default version's number.
    pub default_version: u64,
    /// The newest version's number.
    pub latest_version: u64,
    /// Every version by number.
    pub versions: BTreeMap<u64, LtVersion>,
    /// The template's own tags.
    pub tags: Vec<Tag>,
    /// The `ClientToken` it was created with (idempotent retries).
    pub client_token: Option<String>,
}

/// One launch template version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LtVersion {
    /// Version number, from 1.
    pub number: u64,
    /// `VersionDescription`.
    pub description: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// `LaunchTemplateData`.
    pub data: LtData,
}

/// The part of `LaunchTemplateData` Flotilla reads (the rest is accepted and ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LtData {
    /// The image: a key of `[aws_api.images]`.
    pub image_id: Option<String>,
    /// Instance type label.
    pub instance_type: Option<String>,
    /// Base64 user data as sent.
    pub user_data: Option<String>,
    /// Security group ids (kept, shown).
    pub security_group_ids: Vec<String>,
    /// `TagSpecification` tags for instances.
    pub instance_tags: Vec<Tag>,
}

/// An ELBv2 target group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupRes {
    /// `arn:aws:elasticloadbalancing:…:targetgroup/NAME/HEX`.
    pub arn: String,
    /// Unique name.
    pub name: String,
    /// `HTTP` or `TCP` (HTTPS/TLS are refused).
    pub protocol: String,
    /// `HTTP1`, `HTTP2` or `GRPC`.
    pub protocol_version: String,
    /// Traffic port (informational: instances tell their own port).
    pub port: u16,
    /// The synthetic VPC.
    pub vpc_id: String,
    /// `instance` or `ip`.
    pub target_type: String,
    /// Health check settings.
    pub health: HealthCheckRes,
    /// Attributes as set (`deregistration_delay.timeout_seconds`, …).
    pub attributes: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Targets registered by `RegisterTargets`: (id as given, `ip:port` it resolves to).
    pub targets: Vec<(String, String)>,
    /// Creation time.
    pub created_ms: i64,
}

/// A target group's health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckRes {
    /// `HTTP` or `TCP`.
    pub protocol: String,
    /// `traffic-port` or a number (probes always use the traffic port).
    pub port: String,
    /// HTTP path.
    pub path: String,
    /// Whether enabled (always true for instance/ip groups).
    pub enabled: bool,
    /// Seconds between probes.
    pub interval: u32,
    /// Seconds a probe may take.
    pub timeout: u32,
    /// Successes to become healthy.
    pub healthy: u32,
    /// Failures to become unhealthy.
    pub unhealthy: u32,
    /// `HttpCode` matcher.
    pub matcher: String,
}

/// An ELBv2 load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerRes {
    /// `…:loadbalancer/app/NAME/HEX` (or `net/`).
    pub arn: String,
    /// Unique name.
    pub name: String,
    /// `application` or `network`.
    pub kind: String,
    /// `internet-facing` or `internal`.
    pub scheme: String,
    /// Cluster zones it is enabled in.
    pub zones: Vec<String>,
    /// Security groups (kept, shown).
    pub security_groups: Vec<String>,
    /// Attributes as set.
    pub attributes: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Creation time.
    pub created_ms: i64,
}

/// A listener of an API-created load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenerRes {
    /// `…:listener/app/LB/LBHEX/HEX`.
    pub arn: String,
    /// The load balancer's name.
    pub load_balancer: String,
    /// `HTTP` or `TCP`.
    pub protocol: String,
    /// Port bound on the API's address.
    pub port: u16,
    /// The default rule's actions.
    pub default_actions: Vec<ActionRes>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// A listener rule (not the default one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleRes {
    /// `…:listener-rule/app/LB/LBHEX/LHEX/HEX`.
    pub arn: String,
    /// Its listener's ARN.
    pub listener_arn: String,
    /// 1–50000.
    pub priority: u32,
    /// Conditions (all must match).
    pub conditions: Vec<ConditionRes>,
    /// Actions (the last routes).
    pub actions: Vec<ActionRes>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// One rule condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionRes {
    /// `path-pattern`, `host-header`, `http-header`, `http-request-method`, `query-string`,
    /// `source-ip`.
    pub field: String,
    /// Values (for `query-string`: `key=value` or `value`).
    pub values: Vec<String>,
    /// `http-header`'s header name.
    pub header_name: Option<String>,
}

/// One action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRes {
    /// `forward`, `redirect` or `fixed-response`.
    pub kind: String,
    /// `Order`, if given.
    pub order: Option<u32>,
    /// forward: (target group ARN, weight); one entry for a plain `TargetGroupArn`.
    pub forward: Vec<(String, u32)>,
    /// forward: whether it was given as `ForwardConfig` (answers repeat the form).
    pub forward_config: bool,
    /// forward: target group stickiness (enabled, seconds).
    pub stickiness: Option<(bool, u32)>,
    /// redirect: (protocol, host, port, path, query, status code `HTTP_301`).
    pub redirect: Option<RedirectRes>,
    /// fixed-response: (status code, content type, body).
    pub fixed: Option<(String, Option<String>, Option<String>)>,
}

/// A redirect action's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedirectRes {
    /// `HTTP`, `HTTPS` or `#{protocol}`.
    pub protocol: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Port.
    pub port: Option<String>,
    /// Path.
    pub path: Option<String>,
    /// Query.
    pub query: Option<String>,
    /// `HTTP_301` or `HTTP_302`.
    pub status: String,
}

/// An EC2 Auto Scaling group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRes {
    /// `…:autoScalingGroup:UUID:autoScalingGroupName/NAME`.
    pub arn: String,
    /// Unique name.
    pub name: String,
    /// Launch template id.
    pub lt_id: String,
    /// Launch template name.
    pub lt_name: String,
    /// `$Latest`, `$Default` or a number.
    pub lt_version: String,
    /// Bounds and desired capacity as last set through the API.
    pub min_size: u32,
    /// Upper bound.
    pub max_size: u32,
    /// Desired capacity as created or updated (the running value is the cluster's).
    pub desired_capacity: u32,
    /// Seconds.
    pub default_cooldown: u32,
    /// Cluster zones.
    pub zones: Vec<String>,
    /// The subnets it was given, if any.
    pub vpc_zone_identifier: Option<String>,
    /// Target group names.
    pub target_groups: Vec<String>,
    /// `EC2` or `ELB`.
    pub health_check_type: String,
    /// Seconds.
    pub health_check_grace_period: u32,
    /// As given (`Default`, `OldestInstance`, …).
    pub termination_policies: Vec<String>,
    /// `NewInstancesProtectedFromScaleIn`.
    pub new_instances_protected: bool,
    /// `DefaultInstanceWarmup` seconds.
    pub default_instance_warmup: Option<u32>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Scaling policies by name.
    pub policies: BTreeMap<String, PolicyRes>,
    /// Scheduled actions by name.
    pub scheduled: BTreeMap<String, ScheduledRes>,
    /// Lifecycle hooks by name.
    pub hooks: BTreeMap<String, HookRes>,
    /// Warm pool.
    pub warm_pool: Option<WarmPoolRes>,
    /// Creation time.
    pub created_ms: i64,
    /// `MixedInstancesPolicy` (`None`: every launch On-Demand from the launch template).
    #[serde(default)]
    pub mixed: Option<MixedRes>,
    /// `CapacityRebalance`.
    #[serde(default)]
    pub capacity_rebalance: bool,
}

/// A group's `MixedInstancesPolicy` in AWS's terms (its launch template is the group's
/// `lt_*`). It maps onto the group's `instances_distribution` (model/scaling.rs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixedRes {
    /// `Overrides`' instance types in priority order (AWS's `prioritized`: the first is
    /// preferred). A group here runs one type: the first replaces the template's.
    pub instance_types: Vec<String>,
    /// `OnDemandAllocationStrategy`: `prioritized` or `lowest-price` (kept, shown).
    pub on_demand_allocation_strategy: String,
    /// `OnDemandBaseCapacity`.
    pub on_demand_base_capacity: u32,
    /// `OnDemandPercentageAboveBaseCapacity`, 0–100.
    pub on_demand_percentage_above_base_capacity: u32,
    /// `SpotAllocationStrategy`, AWS spelling (the config's too).
    pub spot_allocation_strategy: String,
    /// `SpotInstancePools` (with `lowest-price`; kept, shown).
    pub spot_instance_pools: Option<u32>,
    /// `SpotMaxPrice` (kept, shown: Spot here is never outbid).
    pub spot_max_price: Option<String>,
}

/// A scaling policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRes {
    /// Name.
    pub name: String,
    /// `…:scalingPolicy:UUID:autoScalingGroupName/G:policyName/P`.
    pub arn: String,
    /// `TargetTrackingScaling`, `StepScaling` or `SimpleScaling`.
    pub policy_type: String,
    /// `ChangeInCapacity`, `ExactCapacity`, `PercentChangeInCapacity`.
    pub adjustment_type: Option<String>,
    /// Simple: the adjustment.
    pub scaling_adjustment: Option<i64>,
    /// Simple: cooldown seconds.
    pub cooldown: Option<u32>,
    /// Percent adjustments' floor.
    pub min_adjustment_magnitude: Option<u32>,
    /// Step: `Average`, `Minimum`, `Maximum`.
    pub metric_aggregation_type: Option<String>,
    /// Step adjustments.
    pub steps: Vec<Step>,
    /// Seconds.
    pub estimated_instance_warmup: Option<u32>,
    /// Target tracking settings.
    pub target_tracking: Option<TargetTrackingRes>,
    /// Whether enabled.
    pub enabled: bool,
}

/// A step adjustment: (lower bound, upper bound, adjustment), bounds relative to the alarm
/// threshold.
pub type Step = (Option<f64>, Option<f64>, i64);

/// A target tracking configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetTrackingRes {
    /// `ASGAverageCPUUtilization`, `ALBRequestCountPerTarget`, … when predefined.
    pub predefined: Option<String>,
    /// The predefined metric's `ResourceLabel`.
    pub resource_label: Option<String>,
    /// Customized: (metric name, namespace, statistic, unit).
    pub customized: Option<(String, String, String, Option<String>)>,
    /// Customized: dimensions.
    pub dimensions: Vec<(String, String)>,
    /// The target, in the metric's AWS unit.
    pub target_value: f64,
    /// Only scale out.
    pub disable_scale_in: bool,
}

/// A scheduled action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRes {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Cron recurrence.
    pub recurrence: Option<String>,
    /// IANA zone.
    pub time_zone: Option<String>,
    /// RFC 3339.
    pub start_time: Option<String>,
    /// RFC 3339.
    pub end_time: Option<String>,
    /// New min.
    pub min_size: Option<u32>,
    /// New max.
    pub max_size: Option<u32>,
    /// New desired.
    pub desired_capacity: Option<u32>,
}

/// A lifecycle hook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookRes {
    /// Name.
    pub name: String,
    /// `autoscaling:EC2_INSTANCE_LAUNCHING` or `…TERMINATING`.
    pub transition: String,
    /// Seconds.
    pub heartbeat_timeout: u32,
    /// `CONTINUE` or `ABANDON`.
    pub default_result: String,
    /// Kept, shown.
    pub notification_metadata: Option<String>,
}

/// A warm pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmPoolRes {
    /// `MinSize`.
    pub min_size: u32,
    /// `MaxGroupPreparedCapacity` (`None` = the group's max).
    pub max_group_prepared_capacity: Option<u32>,
    /// `ReuseOnScaleIn`.
    pub reuse_on_scale_in: bool,
}

/// Everything the API created.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// By name.
    pub launch_templates: BTreeMap<String, LaunchTemplateRes>,
    /// By name.
    pub target_groups: BTreeMap<String, TargetGroupRes>,
    /// By name.
    pub load_balancers: BTreeMap<String, LoadBalancerRes>,
    /// By ARN.
    pub listeners: BTreeMap<String, ListenerRes>,
    /// By ARN.
    pub rules: BTreeMap<String, RuleRes>,
    /// By name.
    pub groups: BTreeMap<String, GroupRes>,
}

/// One stored resource: (kind, key, JSON).
pub type Record = (String, String, String);

impl Registry {
    /// The records to store, one per resource.
    pub fn to_records(&self) -> Vec<Record> {
        fn push<T: Serialize>(out: &mut Vec<Record>, kind: &str, items: &BTreeMap<String, T>) {
            for (k, v) in items {
                if let Ok(json) = serde_json::to_string(v) {
                    out.push((kind.to_string(), k.clone(), json));
                }
            }
        }
        let mut out = Vec::new();
        push(&mut out, "launch_template", &self.launch_templates);
        push(&mut out, "target_group", &self.target_groups);
        push(&mut out, "load_balancer", &self.load_balancers);
        push(&mut out, "listener", &self.listeners);
        push(&mut out, "rule", &self.rules);
        push(&mut out, "auto_scaling_group", &self.groups);
        out
    }

    /// Reads stored records back; one this version cannot read is skipped with a warning.
    pub fn from_records(records: &[Record]) -> Registry {
        fn put<T: for<'de> Deserialize<'de>>(map: &mut BTreeMap<String, T>, key: &str, json: &str) {
            match serde_json::from_str(json) {
                Ok(v) => {
                    map.insert(key.to_string(), v);
                }
                Err(e) => tracing::warn!(key, error = %e, "skipping a stored AWS API resource"),
            }
        }
        let mut r = Registry::default();
        for (kind, key, json) in records {
            match kind.as_str() {
                "launch_template" => put(&mut r.launch_templates, key, json),
                "target_group" => put(&mut r.target_groups, key, json),
                "load_balancer" => put(&mut r.load_balancers, key, json),
                "listener" => put(&mut r.listeners, key, json),
                "rule" => put(&mut r.rules, key, json),
                "auto_scaling_group" => put(&mut r.groups, key, json),
                other => tracing::warn!(kind = other, "skipping a stored resource of unknown kind"),
            }
        }
        r
    }
}
