//! JSON shapes of the admin API (spec §4). Field names are part of the user-facing contract.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /v1/cluster`: what the dashboard's header shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterInfo {
    /// `[cluster] name` from the config.
    pub name: String,
    /// The cluster's availability zones, in config order.
    pub zones: Vec<String>,
}

/// One node of a cluster-mode installation (`GET /v1/nodes`): a host with its roles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// The node's name (`--name`).
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// The address its listeners and instances bind.
    pub address: String,
    /// Its roles: `control`, `lb`, `compute`.
    pub roles: Vec<String>,
    /// Whether it is the elected controller now.
    pub leader: bool,
    /// Instances assigned to it.
    pub instances: u32,
    /// Instances it takes at most (0 without the compute role).
    pub slots: u32,
    /// Milliseconds since its lease was last renewed, as etcd counts it (`None`: unknown).
    pub lease_age_ms: Option<u64>,
    /// Its admin API.
    pub admin: String,
}

/// One auto scaling group in `GET /v1/groups`: the capacity numbers an operator checks first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupSummary {
    /// Group name from the config.
    pub name: String,
    /// Lower bound for every capacity change (AWS `MinSize`).
    pub min_size: u32,
    /// Upper bound for every capacity change (AWS `MaxSize`).
    pub max_size: u32,
    /// Capacity the group converges to (AWS `DesiredCapacity`).
    pub desired_capacity: u32,
    /// Instances in service right now, to compare with `desired_capacity`.
    pub in_service: u32,
    /// Dollars per hour the group's running instances cost now (their purchase options and
    /// the price table).
    #[serde(default)]
    pub cost_per_hour: f64,
}

/// `GET /v1/groups/{name}`: the group and every instance it currently owns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupDetail {
    /// Group name from the config.
    pub name: String,
    /// Lower bound for every capacity change.
    pub min_size: u32,
    /// Upper bound for every capacity change.
    pub max_size: u32,
    /// Capacity the group converges to.
    pub desired_capacity: u32,
    /// Instances in service right now.
    pub in_service: u32,
    /// Zones the group spreads over, in config order.
    pub zones: Vec<String>,
    /// Instances not yet terminated.
    pub instances: Vec<InstanceInfo>,
    /// Dollars per hour the group's running instances cost now.
    #[serde(default)]
    pub cost_per_hour: f64,
}

/// One instance as an operator sees it: where it runs and whether it is serving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceInfo {
    /// AWS-style id, e.g. `i-0a1b2c3d4e5f`.
    pub id: String,
    /// Availability zone the instance was placed in.
    pub zone: String,
    /// Lifecycle state: `pending`, `pending:wait`, `in_service`, `terminating`,
    /// `terminating:wait`, `terminating:proceed`, `terminated`, or in the warm pool
    /// `warmed:pending`, `warmed:pending:wait`, `warmed:running`.
    pub state: String,
    /// `healthy` or `unhealthy` as the group judges it (process and, with ELB checks, target health).
    pub health: String,
    /// Address the instance listens on, once launched.
    pub address: Option<String>,
    /// Process id of the instance, once launched.
    pub pid: Option<u32>,
    /// When the launch started (RFC 3339).
    pub launched_at: String,
    /// Launch template version it was started from; a reload that changes the template bumps
    /// the version for new launches, and an instance refresh replaces the older ones.
    #[serde(default)]
    pub launch_template_version: u64,
    /// Whether scale-in may not choose this instance (AWS `ProtectedFromScaleIn`).
    #[serde(default)]
    pub protected_from_scale_in: bool,
    /// How it was bought at launch: `on-demand` or `spot` (the group's mixed instances policy).
    #[serde(default)]
    pub purchase_option: String,
    /// The rate it is billed at: `on-demand`, `reserved` (an On-Demand instance a
    /// reservation of its type covers) or `spot`.
    #[serde(default)]
    pub billing: String,
    /// Its instance type, from its launch template.
    #[serde(default)]
    pub instance_type: String,
    /// Dollars per hour at its rate; null when its type has no price.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// When a Spot instance with an interruption notice is reclaimed (RFC 3339).
    #[serde(default)]
    pub interruption_deadline: Option<String>,
    /// For an image instance whose launch template sets `cpu` or `memory`: what was asked,
    /// what its container's cgroup holds and whether that enforces it (with the reason when
    /// not). Null for process instances, templates without limits, and where this process
    /// did not launch the instance (adopted after a restart, run by a cluster-mode agent).
    #[serde(default)]
    pub limits: Option<InstanceLimits>,
}

/// What the engine applied of an image instance's limits, read back from its cgroup (the
/// compute provider's type, shown as it is).
pub use flotilla_compute::{CpuLimit, InstanceLimits, MemoryLimit};

/// `POST /v1/instances/{id}/spot-interruption`: the notice's length (default: the group's
/// `spot_interruption_notice`, two minutes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpotInterruptionRequest {
    /// How long until the instance is reclaimed, e.g. `"2m"` or `"30s"`.
    #[serde(default)]
    pub notice: Option<String>,
}

/// The answer to a Spot interruption notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SpotInterruptionResponse {
    /// The instance.
    pub instance_id: String,
    /// Its group.
    pub group: String,
    /// When it is reclaimed (RFC 3339).
    pub interruption_deadline: String,
    /// Whether its replacement launched at once (the group's `capacity_rebalance`).
    pub capacity_rebalance: bool,
}

/// One scaling activity (`GET /v1/groups/{name}/activities`): what changed and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityInfo {
    /// When the activity started (RFC 3339).
    pub time: String,
    /// Why it happened, in words: operator, health check, capacity difference, …
    pub cause: String,
    /// What was done, e.g. "Launching a new instance: i-…".
    pub description: String,
    /// `in_progress`, `successful`, `failed` or `cancelled`.
    pub status: String,
}

/// One target's health in a target group (`GET /v1/target-groups/{name}/health`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetHealthInfo {
    /// `host:port` the load balancer sends requests to.
    pub target: String,
    /// Instance behind the target, when an auto scaling group registered it.
    pub instance_id: Option<String>,
    /// Zone of the instance, when known.
    pub zone: Option<String>,
    /// `initial`, `healthy`, `unhealthy`, `draining` or `unused`.
    pub state: String,
    /// AWS-style reason code, e.g. `Target.ResponseCodeMismatch`.
    pub reason: Option<String>,
}

/// One listener of a load balancer, so `flotilla status` can say where to send traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListenerInfo {
    /// Load balancer the listener belongs to.
    pub load_balancer: String,
    /// Address it accepts on.
    pub bind: String,
    /// `http`, `https` or `tcp`.
    pub protocol: String,
    /// Target groups its default action forwards to.
    pub target_groups: Vec<String>,
}

/// Body of `PUT /v1/groups/{name}/capacity`. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityRequest {
    /// New desired capacity; must lie within min_size..=max_size.
    pub desired_capacity: u32,
}

/// The error body of every 4xx/5xx answer: a sentence for people and a code for scripts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// A stable machine-readable code, e.g. `not_found`, `out_of_range`.
    pub code: String,
    /// For a refused reload (`invalid_config`): every problem in the file, each as
    /// `FILE:LINE:COL: message`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Body of `POST /v1/instances/{id}/terminate` (AWS `TerminateInstanceInAutoScalingGroup`).
/// Unknown fields are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateRequest {
    /// Lower the desired capacity by one instead of replacing the instance (never below
    /// `min_size`: then it is replaced anyway). Default false.
    #[serde(default)]
    pub decrement_desired: bool,
}

/// Body of `PUT /v1/instances/{id}/protection` (AWS `SetInstanceProtection`). Unknown fields
/// are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectionRequest {
    /// True: scale-in never chooses this instance (health replacement and an explicit
    /// terminate still apply, as in AWS). False: it may again.
    pub protected_from_scale_in: bool,
}

/// Answer of `PUT /v1/instances/{id}/protection`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProtectionResponse {
    /// The instance.
    pub instance_id: String,
    /// Its auto scaling group.
    pub group: String,
    /// The protection now in force.
    pub protected_from_scale_in: bool,
}

/// Answer of `POST /v1/instances/{id}/terminate`: the termination has started (the instance
/// drains, then stops).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TerminateResponse {
    /// The instance being terminated.
    pub instance_id: String,
    /// Its auto scaling group.
    pub group: String,
    /// The group's desired capacity after the request (lower by one when decremented).
    pub desired_capacity: u32,
    /// Whether a replacement will be launched.
    pub replaced: bool,
}

/// Answer of a successful `POST /v1/reload`: what the new config changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReloadResponse {
    /// One line per change applied, e.g. `auto scaling group web: max_size 5 → 8`.
    pub changes: Vec<String>,
}

/// Answer of a successful `POST /v1/upgrade`: the new process serves, the old one drains and
/// exits; instances kept running.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpgradeResponse {
    /// The process that answered and now exits.
    pub old_pid: u32,
    /// The process that took over.
    pub new_pid: u32,
    /// One sentence for a person.
    pub message: String,
}

/// Query parameters of `GET /v1/metrics/{metric}`; all optional, checked by the backend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MetricParams {
    /// Series scope, e.g. `group/web`, `target-group/web`, `instance/i-…` (default: the only
    /// group, when there is one).
    pub scope: Option<String>,
    /// Period as a duration, e.g. `10s` (default `1s`).
    pub period: Option<String>,
    /// `average` (default), `sum`, `minimum`, `maximum`, `sample_count`, `p50`, `p90`, `p99`.
    pub statistic: Option<String>,
    /// Start: RFC 3339 time, or a duration meaning "that long ago" (default `5m`).
    pub since: Option<String>,
}

/// Answer of `GET /v1/metrics/{metric}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricDatapoints {
    /// One per period with data, oldest first.
    pub datapoints: Vec<DatapointInfo>,
}

/// One datapoint of a metric read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatapointInfo {
    /// Start of the period, RFC 3339.
    pub time: String,
    /// The statistic's value over the period.
    pub value: f64,
}

/// Answer of `GET /v1/groups/{name}/scaling`: the group's policies and suspended processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScalingInfo {
    /// Every dynamic scaling policy with what it last saw.
    pub policies: Vec<PolicyInfo>,
    /// Suspended scaling processes, by AWS name (e.g. `Launch`).
    pub suspended_processes: Vec<String>,
}

/// One scaling policy's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    /// Policy name.
    pub name: String,
    /// `target_tracking`, `step` or `simple`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the policy does in one line: the tracked metric, statistic and target value, or
    /// the alarm of a step or simple policy (metric, statistic, comparison, threshold, M of N
    /// periods, missing-data treatment).
    #[serde(default)]
    pub description: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA` for step and simple policies' alarms.
    pub alarm_state: Option<String>,
    /// The metric value the policy last evaluated, if it had data.
    pub last_value: Option<f64>,
}

/// Body of `PUT /v1/groups/{name}/suspended-processes`: the complete set of suspended
/// processes (AWS names: Launch, Terminate, HealthCheck, ReplaceUnhealthy, AZRebalance,
/// AlarmNotification, ScheduledActions); an empty list resumes everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendedProcessesRequest {
    /// Processes to have suspended after the call.
    pub processes: Vec<String>,
}

/// Body of `POST /v1/groups/{name}/instance-refresh` (AWS `StartInstanceRefresh`
/// preferences); every field is optional and the body may be left out. Unknown fields are
/// refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceRefreshRequest {
    /// Share of the desired capacity (0-100) that must stay healthy and in service while
    /// instances are replaced. Default 90, as AWS; 100 replaces one at a time, launching the
    /// replacement first; 0 replaces everything at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub min_healthy_percentage: Option<u32>,
    /// How long a new instance must be healthy before it counts as done, e.g. `"5s"` (at most
    /// 1h). Default: the group's `default_instance_warmup`, else its health check grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "5s")]
    pub instance_warmup: Option<String>,
    /// Shares of replaced instances (ascending, each 1-100) at which the refresh pauses for
    /// `checkpoint_delay`. Default: the group's `instance_refresh` settings, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!([50]))]
    pub checkpoint_percentages: Option<Vec<u32>>,
    /// How long each checkpoint pauses, e.g. `"1m"` (at most 48h). Default: the group's
    /// setting, else 1h as AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "1m")]
    pub checkpoint_delay: Option<String>,
    /// Roll back to the previous launch template version when a new instance fails its
    /// launch, its process or its health checks. Default: the group's setting, else false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
}

/// An instance refresh request with its values parsed; `None` leaves a preference to the
/// group's `instance_refresh` settings (and those to AWS's defaults).
pub use flotilla_control::RefreshOverrides;

/// An instance refresh and its progress (`GET /v1/groups/{name}/instance-refresh`), as AWS
/// `DescribeInstanceRefreshes` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceRefreshInfo {
    /// Its id, e.g. `ir-0a1b2c3d4e5f`.
    pub instance_refresh_id: String,
    /// The auto scaling group being refreshed.
    pub group: String,
    /// `Pending`, `InProgress`, `Successful`, `Cancelled`, `Failed`, `RollbackInProgress`,
    /// `RollbackSuccessful` or `RollbackFailed`.
    pub status: String,
    /// What it is doing or waiting for, or why it ended.
    pub status_reason: String,
    /// Share of the instances replaced so far, 0-100.
    pub percentage_complete: u32,
    /// Instances still waiting to be replaced.
    pub instances_to_update: u32,
    /// Instances the group had when the refresh started (the ones to replace).
    pub instances_total: u32,
    /// The healthy floor in force, as a share of the desired capacity.
    pub min_healthy_percentage: u32,
    /// The warm-up in force, e.g. `"5s"`.
    pub instance_warmup: String,
    /// The checkpoints in force (shares of replaced instances where it pauses).
    pub checkpoint_percentages: Vec<u32>,
    /// How long each checkpoint pauses, e.g. `"1h"`.
    pub checkpoint_delay: String,
    /// Whether a failing new instance rolls the refresh back.
    pub auto_rollback: bool,
    /// Until when it waits at a checkpoint (RFC 3339); absent when it is not at one.
    pub checkpoint_until: Option<String>,
    /// The launch template version it rolls out.
    pub launch_template_version: u64,
    /// The version a rollback returns to; absent when every instance already had the new one.
    pub previous_launch_template_version: Option<u64>,
    /// Why it rolled back, once it did.
    pub rollback_reason: Option<String>,
    /// When it started (RFC 3339).
    pub start_time: String,
    /// When it ended (RFC 3339); absent while it runs.
    pub end_time: Option<String>,
}

/// Body of `POST /v1/zones/{zone}/outage` and `POST /v1/zones/{zone}/shift`. Unknown fields
/// are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneDrillRequest {
    /// How long the drill lasts, e.g. `"30s"` (at most 72h); it can be ended early with
    /// `DELETE`. Posting again while it runs sets a new end time.
    #[schema(example = "30s")]
    pub duration: String,
}

/// One zone of the cluster and the drills in force on it (`GET /v1/zones`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ZoneInfo {
    /// Zone name from the config.
    pub name: String,
    /// `available`, `outage` (instances killed, no launches) or `shifted` (no new traffic);
    /// an outage wins when both are in force.
    pub state: String,
    /// When the outage in progress ends (RFC 3339).
    pub outage_until: Option<String>,
    /// When the zonal shift in progress ends (RFC 3339).
    pub shift_until: Option<String>,
    /// Instances pending or in service in the zone, over every group.
    pub instances: u32,
}

/// How a lifecycle action ends (AWS `LifecycleActionResult`); AWS's upper-case spellings
/// are accepted too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleResult {
    /// Go on: a launching instance goes into service, a terminating one is stopped.
    #[serde(alias = "CONTINUE")]
    Continue,
    /// Give up: a launching instance is terminated and replaced; a terminating one is stopped
    /// without waiting for its other terminate hooks.
    #[serde(alias = "ABANDON")]
    Abandon,
}

/// Body of `POST /v1/groups/{name}/lifecycle-actions` (AWS `CompleteLifecycleAction`).
/// Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteLifecycleActionRequest {
    /// The waiting instance, e.g. `i-0a1b2c3d4e5f` (its `FLOTILLA_INSTANCE_ID`).
    pub instance_id: String,
    /// The lifecycle hook's name from the config.
    pub hook: String,
    /// `continue` or `abandon`.
    pub result: LifecycleResult,
}

/// Body of `POST /v1/groups/{name}/lifecycle-actions/heartbeat` (AWS
/// `RecordLifecycleActionHeartbeat`). Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleHeartbeatRequest {
    /// The waiting instance.
    pub instance_id: String,
    /// The lifecycle hook's name from the config.
    pub hook: String,
}

/// A lifecycle action in progress: an instance waiting for one hook
/// (`GET /v1/groups/{name}/lifecycle-actions`, and the answer to a heartbeat).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LifecycleActionInfo {
    /// The waiting instance.
    pub instance_id: String,
    /// The hook it waits for.
    pub hook: String,
    /// `launching` or `terminating`.
    pub transition: String,
    /// The instance's state: `pending:wait`, `terminating:wait` or `warmed:pending:wait`.
    pub state: String,
    /// When the default result applies unless a heartbeat or completion comes first
    /// (RFC 3339).
    pub timeout_at: String,
    /// `continue` or `abandon`: what the timeout decides.
    pub default_result: String,
}

/// Answer of `POST /v1/groups/{name}/lifecycle-actions`: the action is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompleteLifecycleActionResponse {
    /// The instance.
    pub instance_id: String,
    /// The hook completed.
    pub hook: String,
    /// The result given.
    pub result: LifecycleResult,
    /// The instance's state afterwards (e.g. `in_service`, `terminating:proceed`, or
    /// `terminated` once it is gone).
    pub state: String,
}

/// `GET /v1/groups/{name}/warm-pool` (AWS `DescribeWarmPool`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarmPoolInfo {
    /// The auto scaling group.
    pub group: String,
    /// Fewest instances the pool keeps.
    pub min_size: u32,
    /// In-service plus pooled instances the group prepares for (the group's `max_size`
    /// unless set).
    pub max_group_prepared_capacity: u32,
    /// Always `running`: a pooled local instance is a started process, not registered.
    pub pool_state: String,
    /// Whether scale-in returns instances to the pool.
    pub reuse_on_scale_in: bool,
    /// How many instances the pool should hold now: max(min_size,
    /// max_group_prepared_capacity − desired capacity).
    pub desired_size: u32,
    /// How many it holds or prepares now.
    pub size: u32,
    /// The pooled instances (`warmed:pending`, `warmed:pending:wait`, `warmed:running`).
    pub instances: Vec<InstanceInfo>,
}

/// The weights of one forward action (`GET/PUT/DELETE
/// /v1/load-balancers/{lb}/rules/{rule}/weights`): what is in force, what the file says, and
/// its canary rollback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleWeights {
    /// The load balancer.
    pub load_balancer: String,
    /// The listener's bind address.
    pub listener: String,
    /// The rule's priority, or `default` for the listener's default action.
    pub rule: String,
    /// Weight in force per target group (share = weight / sum).
    pub weights: std::collections::BTreeMap<String, u32>,
    /// Weight per target group as the config file says.
    pub configured: std::collections::BTreeMap<String, u32>,
    /// Who set the weights in force: `config`, `operator` (shift-weights) or `rollback`.
    pub source: String,
    /// Why the weights in force differ from the file (an operator shift or a rollback's cause).
    pub cause: Option<String>,
    /// The action's automatic canary rollback, if it has one.
    pub rollback: Option<RollbackInfo>,
}

/// A canary rollback's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RollbackInfo {
    /// The canary target group.
    pub target_group: String,
    /// `idle` (the canary gets no traffic), `watching` or `rolled_back`.
    pub state: String,
    /// The alarm, in one line.
    pub alarm: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub alarm_state: String,
    /// When it rolled back (RFC 3339), if it did.
    pub rolled_back_at: Option<String>,
    /// Why it rolled back.
    pub cause: Option<String>,
}

/// Body of `PUT /v1/load-balancers/{lb}/rules/{rule}/weights`: the whole new split, as AWS
/// `ModifyRule` takes a forward action's groups (a group of the action left out gets 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsRequest {
    /// Weight per target group of the action, 0–999; at least one above 0.
    #[schema(example = json!({"web": 50, "canary": 50}))]
    pub weights: std::collections::BTreeMap<String, u32>,
}

/// Query of the weights routes: which listener of the load balancer (its port or bind
/// address); needed only when several listeners have the rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WeightsParams {
    /// The listener's port (e.g. `8080`) or bind address (`127.0.0.1:8080`).
    pub listener: Option<String>,
}

/// `GET /v1/groups/{name}/forecast`: the forecasts of a group's predictive scaling policies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForecastInfo {
    /// The group.
    pub group: String,
    /// One entry per predictive policy (none: the group has no predictive policy).
    pub policies: Vec<PredictiveInfo>,
}

/// One predictive policy: its settings, the hours it learned from and its forecast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictiveInfo {
    /// Policy name.
    pub name: String,
    /// `forecast_only` or `forecast_and_scale`.
    pub mode: String,
    /// The load metric: `request_count` or `cpu_utilization`.
    pub metric: String,
    /// Load one instance carries: capacity = ceil(load / target_value).
    pub target_value: f64,
    /// How far ahead of each hour its capacity is put in place, e.g. `5m`.
    pub scheduling_buffer_time: String,
    /// `honor_max_capacity` or `increase_max_capacity`.
    pub max_capacity_breach_behavior: String,
    /// Complete hours of history (at most 14 days are kept, in the state store).
    pub history_hours: u32,
    /// `ready`, or why there is no forecast yet (it needs 24 hours of history).
    pub status: String,
    /// When the forecast was made (the start of the hour, RFC 3339).
    pub made_at: Option<String>,
    /// The next 48 hours.
    pub forecast: Vec<ForecastPointInfo>,
    /// The last 48 hours as measured, to draw beside the forecast.
    pub history: Vec<LoadPointInfo>,
}

/// One forecast hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForecastPointInfo {
    /// Start of the hour (RFC 3339, UTC).
    pub time: String,
    /// The load forecast.
    pub load: f64,
    /// The instances that load needs.
    pub capacity: u32,
}

/// One measured hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadPointInfo {
    /// Start of the hour (RFC 3339, UTC).
    pub time: String,
    /// The mean load measured in it.
    pub load: f64,
}
