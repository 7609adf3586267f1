//! What the cluster asks its driver to do, read with [`Cluster::poll_effect`](super::Cluster).

use std::net::SocketAddr;

use crate::group::{Activity, LifecycleState, ScalingProcess};
use crate::id::InstanceId;
use crate::pricing::PurchaseOption;
use crate::template::LaunchTemplate;

use super::spec::{RuleKey, WeightedTargetGroup};

/// One thing for the driver to carry out. Results come back through `handle_*`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    /// Start an instance; answer with `handle_launched` or `handle_launch_failed`. Boxed:
    /// it carries a launch template, and every other effect (a new leader queues 20,000 at
    /// once) would otherwise be as large.
    Launch(Box<LaunchRequest>),
    /// Stop an instance gracefully (its template's stop signal, then SIGKILL after its stop
    /// timeout); answer with `handle_instance_exited`.
    Stop {
        /// The instance.
        id: InstanceId,
    },
    /// Kill an instance at once (its zone had an outage); answer with `handle_instance_exited`.
    Kill {
        /// The instance.
        id: InstanceId,
    },
    /// Run one health check; answer with `handle_probe_result`.
    Probe {
        /// The target group whose check settings apply.
        target_group: String,
        /// The target to probe.
        target: SocketAddr,
    },
    /// The data plane's view of a target group changed: route by this list.
    PublishTargets {
        /// The target group.
        target_group: String,
        /// Every registered target with its state and zone.
        targets: Vec<RoutedTarget>,
    },
    /// The zones no new traffic goes to (zonal shifts) changed.
    PublishShiftedZones {
        /// The shifted zones, possibly none.
        zones: Vec<String>,
    },
    /// A forward action's weights in force changed (operator shift, canary rollback, reset).
    PublishWeights {
        /// The forward action.
        rule: RuleKey,
        /// The weights to route by.
        weights: Vec<WeightedTargetGroup>,
    },
    /// Hold requests that find no routable target in this target group (its group may scale
    /// from zero); report waiting requests with `handle_held_requests`.
    HoldRequests {
        /// The target group.
        target_group: String,
    },
    /// A second has passed: read the data plane's counters and the instances' CPU and feed
    /// them with `handle_samples`, which then runs the scaling policies.
    CollectSamples,
    /// An activity began or finished: log it and make it durable.
    Activity {
        /// The group.
        group: String,
        /// The activity as it stands.
        activity: Activity,
    },
    /// Make a piece of state durable, so a restart (or a new leader) continues from it.
    Persist(Durable),
}

/// What to launch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchRequest {
    /// The group launching it.
    pub group: String,
    /// The new instance's id.
    pub id: InstanceId,
    /// The zone to launch in.
    pub zone: String,
    /// The launch template version the group asked for.
    pub launch_template_version: u64,
    /// That version's contents.
    pub template: LaunchTemplate,
}

/// A target as the data plane routes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutedTarget {
    /// Where it listens.
    pub address: SocketAddr,
    /// The instance behind it, when a group registered it.
    pub instance: Option<InstanceId>,
    /// The instance's zone (shared: a routing table is published on every health change).
    pub zone: Option<std::sync::Arc<str>>,
    /// Its health state.
    pub state: crate::health::TargetState,
}

/// A durable change.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Durable {
    /// An operator's desired capacity for a group (`None`: forget it, the file's applies).
    Desired {
        /// The group.
        group: String,
        /// The capacity, or `None` to clear.
        desired: Option<u32>,
    },
    /// The complete set of scaling processes suspended in a group.
    Suspended {
        /// The group.
        group: String,
        /// Suspended processes (empty: all resumed).
        processes: Vec<ScalingProcess>,
    },
    /// An instance that is now running (the driver adds its own process facts).
    Instance(InstanceRecord),
    /// An instance's scale-in protection changed.
    Protection {
        /// The instance.
        id: InstanceId,
        /// Protected or not.
        protected: bool,
    },
    /// The state a restart adopts an instance into changed (see [`durable_state`]).
    Lifecycle {
        /// The instance.
        id: InstanceId,
        /// `in_service`, `pending:wait` or `warmed:running`.
        state: LifecycleState,
    },
    /// An instance is gone for good.
    InstanceGone {
        /// The instance.
        id: InstanceId,
    },
    /// An hour of a group's load history completed (predictive scaling learns from it).
    LoadHour {
        /// The group.
        group: String,
        /// The load metric.
        metric: crate::metrics::Metric,
        /// The hour.
        hour: crate::policy::predictive::LoadHour,
    },
    /// A forward action's weight override was set (`Some`) or dropped (`None`).
    WeightOverride {
        /// The forward action.
        rule: RuleKey,
        /// The override.
        weights: Option<super::forwards::WeightOverride>,
    },
}

/// An instance as made durable by the control plane.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub id: InstanceId,
    /// Its group.
    pub group: String,
    /// Its zone.
    pub zone: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// The launch template version it runs.
    pub launch_template_version: u64,
    /// Its scale-in protection.
    pub protected_from_scale_in: bool,
    /// The state a restart adopts it into.
    pub lifecycle: LifecycleState,
    /// On-Demand or Spot.
    pub purchase_option: PurchaseOption,
}

/// The state a restart adopts an instance into: a warm pool instance goes back to the pool,
/// one waiting for a launch hook waits again; everything else is in service (a launch or
/// termination in progress starts over from the capacity difference).
pub fn durable_state(state: LifecycleState) -> LifecycleState {
    if state.is_warmed() {
        LifecycleState::WarmedRunning
    } else if state == LifecycleState::PendingWait {
        LifecycleState::PendingWait
    } else {
        LifecycleState::InService
    }
}
