//! Cluster mode's control plane: the elected leader runs the same [`Cluster`] as `flotilla up`,
//! wrapped in a [`Fleet`] that makes the decisions a fleet of hosts adds — which host an
//! instance runs on (placement), when a silent host is lost (host loss, zone disruption), and
//! what the load balancer nodes' health votes say — and turns the cluster's effects into
//! *assignments*, the desired state of each instance that agents carry out.
//!
//! Sans-IO like the rest of this crate: the leader's executor feeds what it sees in etcd
//! (hosts, observations, votes, the store's reachability) and writes what comes out of
//! [`Fleet::poll_effect`]. [`LbTargets`] is the load balancer node's counterpart: its own
//! health checks over the targets the assignments name.

mod alias;
mod events;
mod hosts;
mod lb;
mod pump;
mod votes;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::cluster::{Cluster, Effect, RoutedTarget};
use crate::group::LifecycleState;
use crate::id::InstanceId;
use crate::template::LaunchTemplate;
use crate::time::Time;

pub use alias::{alias_addresses, load_balancer_healthy, LbNodeView};
pub use hosts::{HostSpec, HostStatus, ZONE_DISRUPTION_THRESHOLD};
pub use lb::{LbAction, LbTarget, LbTargets};
pub use votes::Vote;

/// What an assignment asks its agent to do with the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignmentState {
    /// Run it (start it if it does not run).
    Run,
    /// Stop it gracefully (its stop signal, then SIGKILL after its stop timeout).
    Stop,
    /// Kill it at once (a zone outage drill).
    Kill,
}

/// The desired state of one instance: what `assign/<host>/<instance>` holds. Written whole on
/// every change, so an agent or load balancer node that missed events still sees the truth.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The instance.
    pub id: InstanceId,
    /// The host that runs it.
    pub host: String,
    /// Its group.
    pub group: String,
    /// Its zone (the host's).
    pub zone: String,
    /// The launch template version it runs.
    pub launch_template_version: u64,
    /// That version's contents (an agent cannot know older versions).
    pub template: LaunchTemplate,
    /// Run, stop or kill.
    pub state: AssignmentState,
    /// Where it listens, once its agent reported it running.
    pub address: Option<SocketAddr>,
    /// The target groups it is registered in (load balancer nodes route to it there); a
    /// target group it drains from is no longer listed.
    pub target_groups: BTreeSet<String>,
    /// The state a new leader adopts it into (see [`crate::durable_state`]).
    pub lifecycle: LifecycleState,
    /// Its scale-in protection.
    pub protected_from_scale_in: bool,
    /// On-Demand or Spot, as launched (a new leader adopts it as such).
    pub purchase_option: crate::pricing::PurchaseOption,
}

/// What an agent reports of an instance (`obs/<host>/<instance>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Being started.
    Starting,
    /// Running, listening on `port` of its host's address.
    Running {
        /// The port.
        port: u16,
    },
    /// Its process ended (or could not be started); `status` says how.
    Exited {
        /// E.g. `exit code 1`, `signal 9 (SIGKILL)`, `launch failed: …`.
        status: String,
    },
}

/// One thing for the leader's executor to write.
// `Put` is the large one (an assignment carries its template) and the most written; boxing it
// would change the type every executor and test reads assignments by.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum FleetEffect {
    /// Write the assignment (create or replace `assign/<host>/<id>`).
    Put(Assignment),
    /// Delete the assignment: the instance is gone (or was replaced while its host was lost;
    /// its agent stops it if it comes back).
    Delete {
        /// The host.
        host: String,
        /// The instance.
        id: InstanceId,
    },
    /// An effect of the cluster the executor carries out as under `flotilla up`, with the
    /// store instead of SQLite: `Activity`, `Persist` (operator intents), `PublishWeights`,
    /// `PublishShiftedZones`, `CollectSamples`, `HoldRequests`.
    Cluster(Effect),
}

/// How the fleet decides about hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    /// How long a host may be without its lease before it is lost (`[cluster]
    /// host_lost_grace`).
    pub host_lost_grace: Duration,
    /// In a disrupted zone (most of its hosts down at once), at most one host is declared lost
    /// per this interval.
    pub disrupted_zone_interval: Duration,
}

impl FleetConfig {
    /// Settings for `host_lost_grace`; a disrupted zone loses one host per grace period.
    pub fn new(host_lost_grace: Duration) -> Self {
        FleetConfig {
            host_lost_grace,
            disrupted_zone_interval: host_lost_grace,
        }
    }
}

/// The cluster-mode leader's control plane: a [`Cluster`] and the fleet it runs on.
///
/// # How to drive it
/// 1. Build the [`Cluster`] as `flotilla up` does (`Cluster::new`, then `restore` what
///    operators stored), and wrap it with [`Fleet::new`].
/// 2. Feed every registered host ([`handle_host`](Self::handle_host)), then every stored
///    assignment with its agent's observation ([`adopt`](Self::adopt)), before the first
///    [`handle_timeout`](Self::handle_timeout): what runs is adopted, nothing is launched twice.
/// 3. Feed what changes in the store — hosts, observations, health votes, the store's
///    reachability — and operator commands ([`command`](Self::command)); drain
///    [`poll_effect`](Self::poll_effect) after each call and write every [`FleetEffect`].
/// 4. Sleep until [`poll_timeout`](Self::poll_timeout) or the next change.
///
/// While the store is unreachable ([`handle_store`](Self::handle_store)) the fleet makes no
/// decision at all: no host is lost, no timer fires, nothing is launched or stopped.
#[derive(Debug)]
pub struct Fleet {
    cluster: Cluster,
    hosts: hosts::Hosts,
    /// Boxed: an assignment is a few hundred bytes (its template), and the map moves its
    /// values when a node splits — a new leader inserts 10,000 at once.
    assigned: BTreeMap<InstanceId, Box<Assignment>>,
    /// Instances registered per target group, as the cluster last published.
    registered: BTreeMap<String, BTreeSet<InstanceId>>,
    /// The routing table the cluster last published per target group, to find what the next
    /// one changes.
    published: HashMap<String, Vec<RoutedTarget>>,
    votes: votes::Votes,
    /// Assignments changed by the current call, written at its end.
    dirty: BTreeSet<InstanceId>,
    effects: VecDeque<FleetEffect>,
    paused: bool,
}

impl Fleet {
    /// Wraps a built (and restored) cluster.
    pub fn new(cluster: Cluster, config: FleetConfig) -> Self {
        Fleet {
            cluster,
            hosts: hosts::Hosts::new(config.host_lost_grace, config.disrupted_zone_interval),
            assigned: BTreeMap::new(),
            registered: BTreeMap::new(),
            published: HashMap::new(),
            votes: votes::Votes::default(),
            dirty: BTreeSet::new(),
            effects: VecDeque::new(),
            paused: false,
        }
    }

    /// The cluster, for the operator surface's views.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Runs an operator command (or a reconfiguration) on the cluster, then turns what it set
    /// off into fleet effects.
    pub fn command<R>(&mut self, now: Time, f: impl FnOnce(&mut Cluster, Time) -> R) -> R {
        let r = f(&mut self.cluster, now);
        self.pump(now);
        r
    }

    /// The next thing to write, or `None`.
    pub fn poll_effect(&mut self) -> Option<FleetEffect> {
        self.effects.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called (never while the
    /// store is unreachable).
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.paused {
            return None;
        }
        self.cluster
            .poll_timeout()
            .into_iter()
            .chain(self.hosts.poll_timeout())
            .min()
    }

    /// Lets time act: hosts whose grace has passed are lost (their instances are replaced,
    /// in the same zone if it has room), then the cluster's own timers.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.paused {
            return;
        }
        for host in self.hosts.declare_losses(now) {
            self.lose_host(now, &host);
        }
        if self.cluster.poll_timeout().is_some_and(|t| t <= now) {
            self.cluster.handle_timeout(now);
        }
        self.pump(now);
    }

    /// Every assignment, by instance id.
    pub fn assignments(&self) -> impl Iterator<Item = &Assignment> + '_ {
        self.assigned.values().map(|a| &**a)
    }

    /// Every host, by name.
    pub fn hosts(&self) -> Vec<HostStatus> {
        self.hosts.statuses()
    }

    /// Whether decisions are held because the store is unreachable.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}
