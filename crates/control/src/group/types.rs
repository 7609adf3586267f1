//! The group's public data: its spec, its instances, the actions it asks for, its errors.

use std::time::Duration;

use super::{LifecycleHook, TerminationPolicy, WarmPool};
use crate::id::InstanceId;
use crate::pricing::{InstancesDistribution, PurchaseOption};
use crate::time::Time;

/// Which signals count as "this instance is unhealthy", as AWS `HealthCheckType`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum HealthCheckType {
    /// Only the process itself: an exit is unhealthy (AWS `EC2` status checks).
    #[default]
    Process,
    /// Also the target group's health checks, after the grace period (AWS `ELB`).
    Elb,
}

impl HealthCheckType {
    /// The config spelling: `"process"` or `"elb"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckType::Process => "process",
            HealthCheckType::Elb => "elb",
        }
    }
}

/// An Auto Scaling group's configuration, as AWS `CreateAutoScalingGroup` takes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupSpec {
    /// Group name, used in activity descriptions and by the runtime.
    pub name: String,
    /// Zones to spread instances over (failure domains); order breaks placement ties.
    pub zones: Vec<String>,
    /// Floor for the desired capacity: no policy or operator can go below it.
    pub min_size: u32,
    /// Ceiling for the desired capacity.
    pub max_size: u32,
    /// Initial desired capacity; clamped into `min_size..=max_size`.
    pub desired_capacity: u32,
    /// Whether target-group health (besides process exit) can mark instances unhealthy.
    pub health_check_type: HealthCheckType,
    /// Time after an instance goes InService during which target-group failures are not acted
    /// on, so a slow-starting application is not killed before it is ready.
    pub health_check_grace_period: Duration,
    /// Scale-in tie-breakers inside the chosen zone, in order; `Default` is always applied last.
    pub termination_policies: Vec<TerminationPolicy>,
    /// Launch template version given to new instances; `OldestLaunchTemplate` compares these.
    pub launch_template_version: u64,
    /// Whether instances are registered with target groups: then scale-in drains before it
    /// terminates, and new instances are registered when they come up.
    pub has_target_groups: bool,
    /// Waits on the launch and terminate transitions (AWS `PutLifecycleHook`), so an
    /// application can warm a cache before traffic or flush before it stops.
    pub lifecycle_hooks: Vec<LifecycleHook>,
    /// Pre-started instances kept out of service beside the group (AWS `PutWarmPool`), so a
    /// scale-out only has to register one; `None` for no pool.
    pub warm_pool: Option<WarmPool>,
    /// The mixed instances policy: which launches are On-Demand and which Spot, and how Spot
    /// interruptions are met; `None`: every instance On-Demand.
    pub instances_distribution: Option<InstancesDistribution>,
    /// How long before a Spot interruption deadline the instance starts draining at the
    /// latest: its target groups' longest deregistration delay plus its stop timeout, so it is
    /// drained and stopped in time.
    pub interruption_drain: Duration,
}

/// Where an instance is in its life, as AWS `LifecycleState` (without standby). AWS's
/// `Pending:Proceed` is passed through at once (a completed launch hook goes straight to
/// InService), so it is not a state here; `Warmed:Running` is the only warm pool state, as
/// a local instance is a running process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LifecycleState {
    /// Launch requested; the process is not yet running. Counts toward capacity.
    Pending,
    /// Running, not yet registered: waiting for its launch lifecycle hooks. Counts toward
    /// capacity.
    PendingWait,
    /// Running and registered with its target groups.
    InService,
    /// Being drained and stopped; no longer counts toward capacity.
    Terminating,
    /// Drained, waiting for its terminate lifecycle hooks before the stop signal.
    TerminatingWait,
    /// Its terminate lifecycle hooks are done; the stop signal is on its way.
    TerminatingProceed,
    /// Gone. Terminated instances are dropped from [`AutoScalingGroup::instances`].
    Terminated,
    /// Launched for the warm pool; the process is not yet running.
    WarmedPending,
    /// In the warm pool's way: waiting for launch hooks (entering the pool) or terminate
    /// hooks (returning to it on scale-in with `reuse_on_scale_in`).
    WarmedPendingWait,
    /// In the warm pool: running, not registered, not counted as capacity.
    WarmedRunning,
}

impl LifecycleState {
    /// The snake_case name of the admin API (`pending`, `pending:wait`, `in_service`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Pending => "pending",
            LifecycleState::PendingWait => "pending:wait",
            LifecycleState::InService => "in_service",
            LifecycleState::Terminating => "terminating",
            LifecycleState::TerminatingWait => "terminating:wait",
            LifecycleState::TerminatingProceed => "terminating:proceed",
            LifecycleState::Terminated => "terminated",
            LifecycleState::WarmedPending => "warmed:pending",
            LifecycleState::WarmedPendingWait => "warmed:pending:wait",
            LifecycleState::WarmedRunning => "warmed:running",
        }
    }

    /// Launched toward the desired capacity but not yet in service (`pending`,
    /// `pending:wait`): counted as capacity, not measured by policies.
    pub fn is_launching(self) -> bool {
        matches!(self, LifecycleState::Pending | LifecycleState::PendingWait)
    }

    /// Counted toward the desired capacity: launching or in service.
    pub fn is_live(self) -> bool {
        self.is_launching() || self == LifecycleState::InService
    }

    /// One of the warm pool's states: never capacity, never registered, never measured.
    pub fn is_warmed(self) -> bool {
        matches!(
            self,
            LifecycleState::WarmedPending
                | LifecycleState::WarmedPendingWait
                | LifecycleState::WarmedRunning
        )
    }
}

/// The group's verdict on an instance (AWS `HealthStatus`); an unhealthy one gets replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum InstanceHealth {
    /// Counts toward capacity.
    Healthy,
    /// Marked for replacement (exited, or failed target-group checks after the grace period).
    Unhealthy,
}

impl InstanceHealth {
    /// The lowercase name of the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceHealth::Healthy => "healthy",
            InstanceHealth::Unhealthy => "unhealthy",
        }
    }
}

/// One instance of the group, as `DescribeAutoScalingInstances` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// Its id, e.g. `i-0a1b2c3d4e5f`.
    pub id: InstanceId,
    /// The zone it was launched into.
    pub zone: String,
    /// Where it is in its life.
    pub lifecycle: LifecycleState,
    /// Whether the group considers it healthy.
    pub health: InstanceHealth,
    /// When the launch was requested (used by the age-based termination policies).
    pub launched_at: Time,
    /// When it went InService; the health check grace period counts from here.
    pub in_service_at: Option<Time>,
    /// The launch template version it was started from.
    pub launch_template_version: u64,
    /// On-Demand or Spot, decided at launch by the group's mixed instances policy.
    pub purchase_option: PurchaseOption,
    /// Never chosen by scale-in while set (AWS `ProtectedFromScaleIn`).
    pub protected_from_scale_in: bool,
    /// Launched to fill the group's first desired capacity, or adopted after a restart: such
    /// an instance never warms up for scaling policies (AWS warms only instances a scaling
    /// activity added, so a new group is not blind to its own metrics).
    pub initial: bool,
}

/// Something the group needs the runtime to do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GroupAction {
    /// Start a process for a new instance; answer with `handle_launched` or
    /// `handle_launch_failed`.
    Launch {
        /// Id to give the instance (`FLOTILLA_INSTANCE_ID`).
        id: InstanceId,
        /// Zone to start it in (`FLOTILLA_ZONE`).
        zone: String,
        /// Launch template version to start it from.
        launch_template_version: u64,
    },
    /// Register the instance with the group's target groups (it is now InService).
    RegisterTargets {
        /// The instance to register.
        id: InstanceId,
    },
    /// Deregister the instance from the target groups. For an instance being terminated the
    /// group waits for `handle_drained` before it sends `Terminate`; for one that already died it
    /// only cleans up.
    DeregisterTargets {
        /// The instance to deregister.
        id: InstanceId,
    },
    /// Stop the instance's process; answer with `handle_instance_exited`.
    Terminate {
        /// The instance to stop.
        id: InstanceId,
    },
    /// Kill the instance's process at once (SIGKILL: no stop signal, no stop timeout, no
    /// draining), because its zone had an outage; answer with `handle_instance_exited`.
    Kill {
        /// The instance to kill.
        id: InstanceId,
    },
}

/// Refusal of a capacity change, so the operator learns the bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// The requested desired capacity is outside `min_size..=max_size`.
    #[error("desired capacity {requested} is outside min_size..max_size ({min}..{max})")]
    OutOfRange {
        /// What was asked for.
        requested: u32,
        /// The group's `min_size`.
        min: u32,
        /// The group's `max_size`.
        max: u32,
    },
}
