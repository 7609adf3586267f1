//! The AWS API's handle on the runtime (implemented by `crates/runtime`'s `aws_adapter`, like
//! the admin API's `AdminBackend`): the file's config to show read-only, applying the API
//! overlay, live state to describe, and the operator commands AWS actions map onto.

use flotilla_config::Config;

use crate::model::{Overlay, Record};

/// An instance as the API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceLive {
    /// `i-…`.
    pub id: String,
    /// Its group.
    pub group: String,
    /// Its cluster zone.
    pub zone: String,
    /// AWS `LifecycleState`: `Pending`, `Pending:Wait`, `InService`, `Terminating`, …
    pub lifecycle: String,
    /// `Healthy` or `Unhealthy`.
    pub health: String,
    /// Scale-in protection.
    pub protected: bool,
    /// The launch template version it runs (the cluster's numbering).
    pub launch_template_version: u64,
    /// `ip:port` once it runs.
    pub address: Option<String>,
    /// Launch time, ms since the epoch.
    pub launched_ms: i64,
    /// Its instance type label.
    pub instance_type: String,
    /// Bought as Spot (a mixed instances policy's split); else On-Demand.
    pub spot: bool,
}

/// An instance refresh as the API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshLive {
    /// Refresh id.
    pub id: String,
    /// AWS status (`Pending`, `InProgress`, `Successful`, `Cancelled`, …).
    pub status: String,
    /// Why.
    pub status_reason: String,
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// End, ms since the epoch.
    pub end_ms: Option<i64>,
    /// 0–100.
    pub percentage_complete: u32,
    /// Instances still to replace.
    pub instances_to_update: u32,
    /// Preferences in force.
    pub min_healthy_percentage: u32,
    /// Seconds.
    pub instance_warmup: u64,
}

/// A group's live state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLive {
    /// Desired capacity now.
    pub desired: u32,
    /// Bounds now.
    pub min: u32,
    /// Upper bound now.
    pub max: u32,
    /// Every instance not terminated.
    pub instances: Vec<InstanceLive>,
    /// Suspended processes, AWS spelling.
    pub suspended: Vec<String>,
    /// Instance refreshes, newest first (Flotilla keeps the latest).
    pub refreshes: Vec<RefreshLive>,
    /// Lifecycle hook waits: (instance, hook, token).
    pub waiting: Vec<(String, String)>,
}

/// One activity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityLive {
    /// Stable id.
    pub id: String,
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// End, ms since the epoch.
    pub end_ms: Option<i64>,
    /// Why.
    pub cause: String,
    /// What.
    pub description: String,
    /// `Successful`, `InProgress`, `Failed`.
    pub status: String,
    /// 0–100.
    pub progress: u32,
}

/// A target's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetLive {
    /// `ip:port`.
    pub address: String,
    /// The instance behind it.
    pub instance_id: Option<String>,
    /// Its cluster zone.
    pub zone: Option<String>,
    /// `initial`, `healthy`, `unhealthy`, `draining`, `unused`.
    pub state: String,
    /// AWS reason code.
    pub reason: Option<String>,
}

/// A refused command, in words (the API maps it to the action's AWS error).
pub type CommandResult<T> = Result<T, String>;

/// What the AWS API needs from the runtime.
pub trait AwsBackend: Send + Sync + 'static {
    /// The config file as loaded (its resources are shown read-only).
    fn file_config(&self) -> Config;
    /// Applies `overlay` merged with the file (bind listeners, add/remove groups and target
    /// groups, re-route), then stores `records`. `Err` says why nothing changed.
    fn apply(&self, overlay: &Overlay, records: Vec<Record>) -> CommandResult<()>;
    /// A group's live state.
    fn group(&self, name: &str) -> Option<GroupLive>;
    /// A group's activities, newest first.
    fn activities(&self, name: &str) -> Option<Vec<ActivityLive>>;
    /// A target group's targets.
    fn target_health(&self, name: &str) -> Option<Vec<TargetLive>>;
    /// Every instance of every group.
    fn instances(&self) -> Vec<InstanceLive>;
    /// `SetDesiredCapacity` (kept like `flotilla scale`).
    fn set_desired_capacity(&self, group: &str, desired: u32) -> CommandResult<()>;
    /// `TerminateInstanceInAutoScalingGroup`; returns the group.
    fn terminate_instance(&self, id: &str, decrement: bool) -> CommandResult<String>;
    /// `SetInstanceProtection`.
    fn set_instance_protection(&self, id: &str, protected: bool) -> CommandResult<()>;
    /// `SuspendProcesses`/`ResumeProcesses`: the whole suspended set (Flotilla's names).
    fn set_suspended_processes(&self, group: &str, processes: &[String]) -> CommandResult<()>;
    /// `StartInstanceRefresh` with (min healthy %, warm-up seconds, checkpoints, delay s).
    fn start_instance_refresh(
        &self,
        group: &str,
        min_healthy: Option<u32>,
        warmup: Option<u64>,
        checkpoints: Option<Vec<u32>>,
        checkpoint_delay: Option<u64>,
    ) -> CommandResult<RefreshLive>;
    /// `CancelInstanceRefresh`.
    fn cancel_instance_refresh(&self, group: &str) -> CommandResult<RefreshLive>;
    /// `CompleteLifecycleAction`.
    fn complete_lifecycle_action(
        &self,
        group: &str,
        instance: &str,
        hook: &str,
        proceed: bool,
    ) -> CommandResult<()>;
}
