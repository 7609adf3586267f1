//! The EC2 Auto Scaling group reconciler (AWS §5): keeps live instances equal to the desired
//! capacity, spread over zones, and replaces the unhealthy.
//!
//! Lifecycle of one instance, and the actions that move it:
//!
//! ```text
//! Launch ─▶ Pending ─handle_launched─▶ [PendingWait: launch hooks] ─▶ InService (RegisterTargets) ─┐
//!              │                                                                   │ scale-in / unhealthy
//!              └──── scale-in: Terminate ──┐                                       ▼
//!                                          │   Terminating: DeregisterTargets ─handle_drained─▶
//!                                          │   [TerminatingWait: terminate hooks] ─▶ Terminate
//!                                          ▼                                                      │
//!                                     Terminated ◀──────────────── handle_instance_exited ◀──────┘
//! ```
//!
//! With a warm pool, instances are also launched as WarmedPending, wait for launch hooks in
//! WarmedPendingWait, and sit in WarmedRunning until a scale-out takes one (through
//! PendingWait when there are launch hooks) or the pool is trimmed; see `warm_pool.rs`.

mod activity;
mod adopt;
mod events;
mod hooks;
mod launch;
mod operator;
mod placement;
mod processes;
mod rebalance;
mod refresh;
mod replace;
mod scale_in;
mod spot;
mod termination;
mod types;
mod warm_pool;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

pub use activity::{Activity, ActivityStatus};
pub use hooks::{
    LifecycleAction, LifecycleActionError, LifecycleActionResult, LifecycleHook,
    LifecycleTransition,
};
pub use processes::{ScalingProcess, UnknownProcess};
pub use refresh::{
    InstanceRefresh, RefreshError, RefreshPreferences, RefreshStatus, DEFAULT_CHECKPOINT_DELAY,
};
pub use spot::SpotError;
pub use termination::TerminationPolicy;
pub use types::{
    CapacityError, GroupAction, GroupSpec, HealthCheckType, Instance, InstanceHealth,
    LifecycleState,
};
pub use warm_pool::{WarmPool, WarmPoolStatus};

use activity::ActivityLog;
use termination::Candidate;

use crate::id::{IdGenerator, InstanceId};
use crate::pricing::PurchaseOption;
use crate::time::Time;

/// Shortest wait before retrying after a failed launch.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between launch retries; also how long a zone that failed a launch is avoided.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How far a terminating instance has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Stopping {
    /// Not being terminated.
    No,
    /// DeregisterTargets sent; waiting for `handle_drained`.
    Draining,
    /// Drained (or never registered); waiting for its terminate lifecycle hooks.
    Hooks,
    /// Terminate sent (or to be answered by an exit); waiting for `handle_instance_exited`.
    Killing,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Member {
    instance: Instance,
    launch_activity: Option<u64>,
    terminate_activity: Option<u64>,
    stopping: Stopping,
    /// Being replaced because it is unhealthy (counts against the replacement batch limit
    /// until its replacement is healthy, see `replace.rs`).
    replacing: bool,
    /// While replacing: when it was picked; an instance launched since then that is healthy
    /// in service is its replacement (`None` from a state saved before this field existed:
    /// its replacement is done when it exits).
    #[serde(default)]
    replace_since: Option<Time>,
    /// An Elb unhealthy report received inside the grace period, acted on at its end.
    unhealthy_report: Option<String>,
    /// Since when its target groups have reported it healthy (for a group without target
    /// groups: since it went InService); `None` while not healthy. Instance refresh counts
    /// healthy capacity and warm-up with it.
    healthy_at: Option<Time>,
    /// Its target groups' latest verdict was unhealthy (whatever the health check type): an
    /// instance refresh with automatic rollback judges its new instances by it.
    target_unhealthy: bool,
    /// Launched above the desired capacity, to be paired with a termination once it is
    /// healthy: not counted as capacity until then.
    surge: Option<Surge>,
    /// Its wait for lifecycle hooks, while in a `…:wait` state.
    hooks: Option<hooks::HookWait>,
    /// Being scaled in back into the warm pool (drain and terminate hooks first).
    to_pool: bool,
    /// Its Spot interruption notice, if EC2 is taking it back.
    interruption: Option<spot::Interruption>,
}

/// Why an instance was launched above the desired capacity ("launch before terminate").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Surge {
    /// Instance refresh: it replaces this old instance, terminated once the new one is warm.
    Refresh { replaces: InstanceId },
    /// AZRebalance: it moves one instance into an emptier zone; `from`, the fullest zone
    /// when it was launched, loses one once it is healthy.
    Rebalance { from: String },
}

impl Member {
    fn new(instance: Instance, launch_activity: Option<u64>, surge: Option<Surge>) -> Self {
        Member {
            instance,
            launch_activity,
            terminate_activity: None,
            stopping: Stopping::No,
            replacing: false,
            replace_since: None,
            unhealthy_report: None,
            healthy_at: None,
            target_unhealthy: false,
            surge,
            hooks: None,
            to_pool: false,
            interruption: None,
        }
    }

    fn is_live(&self) -> bool {
        self.instance.lifecycle.is_live() && self.instance.health == InstanceHealth::Healthy
    }

    /// Counted in its zone for balancing: live, and not a Spot instance already replaced
    /// ahead of its interruption (so its replacement lands in its zone).
    fn counts_in_zone(&self) -> bool {
        self.is_live() && !self.interruption.is_some_and(|i| i.rebalanced)
    }

    /// In the warm pool (warming or ready), not being removed from it.
    fn in_warm_pool(&self) -> bool {
        self.instance.lifecycle.is_warmed() && self.stopping == Stopping::No
    }

    /// Counted toward the warm pool's size: in it, or on its way back after a scale-in.
    fn counts_for_pool(&self) -> bool {
        self.in_warm_pool() || self.to_pool
    }

    /// Live and counted toward the desired capacity (a surge is not, until it is paired; a
    /// Spot instance replaced ahead of its interruption is not either).
    fn is_capacity(&self) -> bool {
        self.is_live() && self.surge.is_none() && !self.interruption.is_some_and(|i| i.rebalanced)
    }

    /// In service, not terminating, and healthy in its target groups: serving traffic.
    fn is_healthy_in_service(&self) -> bool {
        self.instance.lifecycle == LifecycleState::InService
            && self.stopping == Stopping::No
            && self.instance.health == InstanceHealth::Healthy
            && self.healthy_at.is_some()
    }

    /// Healthy in service for at least `warmup`.
    fn is_warm(&self, now: Time, warmup: Duration) -> bool {
        self.is_healthy_in_service() && self.healthy_at.is_some_and(|t| now >= t + warmup)
    }

    fn grace_end(&self, grace: Duration) -> Option<Time> {
        self.instance.in_service_at.map(|t| t + grace)
    }
}

/// The Auto Scaling group reconciler for one group.
///
/// Feed it events (`handle_*`), read its decisions with [`poll_action`](Self::poll_action), and
/// call [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout). It
/// launches and terminates so that the live instances (Pending or InService, healthy, not
/// terminating) equal the desired capacity, balanced across zones, and records every change as
/// an [`Activity`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AutoScalingGroup {
    spec: GroupSpec,
    desired: u32,
    ids: IdGenerator,
    members: Vec<Member>,
    actions: VecDeque<GroupAction>,
    activities: ActivityLog,
    created_at: Time,
    reconciled: bool,
    /// Why the capacity differs, prefixed to the cause of the launches/terminations it leads to.
    pending_cause: Option<String>,
    launch_failures: u32,
    launch_not_before: Option<Time>,
    zone_failed_at: Vec<(String, Time)>,
    /// Processes an operator suspended (AWS `SuspendProcesses`).
    suspended: BTreeSet<ScalingProcess>,
    /// Whether instances launched from now on start protected from scale-in.
    new_instances_protected: bool,
    /// The latest instance refresh (running or finished), if any was started.
    refresh: Option<refresh::RefreshRun>,
    /// Zones taking no launches right now (a zone outage drill).
    out_of_service_zones: BTreeSet<String>,
    /// Instances dropped so far, so an owner tracking them knows when to look (cheaply).
    removals: u64,
    /// The ids dropped since the owner last took them: it forgets exactly those instead of
    /// scanning every instance of the fleet for the ones that went.
    #[serde(default)]
    removed: Vec<InstanceId>,
    /// Lifecycle changes so far, for the same reason: an owner that makes lifecycles durable
    /// compares instead of scanning every instance on every event.
    lifecycle_changes: u64,
    /// Whether the group has had its desired capacity in service once: instances launched
    /// before then are [`Instance::initial`] (not warming for policies).
    started: bool,
}

impl AutoScalingGroup {
    /// A group with no instances yet; the first [`handle_timeout`](Self::handle_timeout) (due at
    /// `now`) launches the desired capacity. `id_seed` fixes the instance ids, for replay.
    pub fn new(spec: GroupSpec, id_seed: u64, now: Time) -> Self {
        let desired = spec.desired_capacity.max(spec.min_size).min(spec.max_size);
        let pending_cause = Some(format!(
            "group {} was created with desired capacity {desired}",
            spec.name
        ));
        AutoScalingGroup {
            spec,
            desired,
            ids: IdGenerator::new(id_seed),
            members: Vec::new(),
            actions: VecDeque::new(),
            activities: ActivityLog::default(),
            created_at: now,
            reconciled: false,
            pending_cause,
            launch_failures: 0,
            launch_not_before: None,
            zone_failed_at: Vec::new(),
            suspended: BTreeSet::new(),
            new_instances_protected: false,
            refresh: None,
            out_of_service_zones: BTreeSet::new(),
            removals: 0,
            removed: Vec::new(),
            lifecycle_changes: 0,
            started: false,
        }
    }

    /// How many instances the group has dropped since it was made: when it changes, an owner
    /// that keeps facts per instance has some to forget.
    pub(crate) fn removals(&self) -> u64 {
        self.removals
    }

    /// Whether instances were dropped since the last [`take_removed`](Self::take_removed) (a
    /// read, so asking after every event leaves the group unchanged).
    pub(crate) fn has_removed(&self) -> bool {
        !self.removed.is_empty()
    }

    /// The ids of the instances dropped since the last call (see [`removals`](Self::removals)).
    pub(crate) fn take_removed(&mut self) -> Vec<InstanceId> {
        std::mem::take(&mut self.removed)
    }

    /// How many lifecycle changes the group has made (see [`removals`](Self::removals)).
    pub(crate) fn lifecycle_changes(&self) -> u64 {
        self.lifecycle_changes
    }

    /// The group's configuration.
    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }

    /// How many live instances the group is converging to.
    pub fn desired_capacity(&self) -> u32 {
        self.desired
    }

    /// Applies a changed configuration (hot reload) in place: bounds, zones, health checks and
    /// policies take effect at once; running instances are kept. The desired capacity follows
    /// the new spec's `desired_capacity` when that value changed, otherwise the current one
    /// (which may be an operator's or a policy's) is kept; either way it is clamped into the new
    /// `min_size..=max_size`, and the group then launches or terminates the difference.
    pub fn update_spec(&mut self, now: Time, spec: GroupSpec) {
        let desired_changed = spec.desired_capacity != self.spec.desired_capacity;
        let wanted = if desired_changed {
            spec.desired_capacity
        } else {
            self.desired
        };
        let desired = wanted.max(spec.min_size).min(spec.max_size);
        let (old_min, old_max) = (self.spec.min_size, self.spec.max_size);
        let name = spec.name.clone();
        self.spec = spec;
        if desired != self.desired {
            let cause = format!(
                "a configuration reload (min {old_min}→{}, max {old_max}→{}) set desired \
                 capacity from {} to {desired}",
                self.spec.min_size, self.spec.max_size, self.desired
            );
            self.activities.record(
                now,
                cause.clone(),
                format!("Setting desired capacity of group {name} to {desired}"),
                ActivityStatus::Successful,
            );
            self.desired = desired;
            self.pending_cause = Some(cause);
        }
        if self.reconciled {
            self.reconcile(now);
        }
    }

    /// Sets the launch template version for instances launched from now on; running instances
    /// keep theirs (as in AWS), so `OldestLaunchTemplate` can retire them on scale-in.
    pub fn set_launch_template_version(&mut self, version: u64) {
        self.spec.launch_template_version = version;
    }

    /// Time-driven work: the first reconcile, launch retries after back-off, and unhealthy
    /// reports whose grace period has ended.
    pub fn handle_timeout(&mut self, now: Time) {
        self.reconcile(now);
    }

    /// The next thing the runtime must do, if any.
    pub fn poll_action(&mut self) -> Option<GroupAction> {
        self.actions.pop_front()
    }

    /// Every queued action at once, in order (what [`poll_action`](Self::poll_action) would
    /// hand out one by one): an owner applies a batch without finding the group per action.
    pub(crate) fn take_actions(&mut self) -> std::collections::VecDeque<GroupAction> {
        std::mem::take(&mut self.actions)
    }

    /// Whether [`poll_action`](Self::poll_action) has something (an owner pumping many
    /// groups per event skips the quiet ones without a pass).
    pub(crate) fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` when only an
    /// event can change anything.
    pub fn poll_timeout(&self) -> Option<Time> {
        if !self.reconciled {
            return Some(self.created_at);
        }
        let grace = self.spec.health_check_grace_period;
        let lead = self.spec.interruption_drain;
        // One pass over the members (asked after every event, at a thousand members a pass
        // per kind of wake-up was most of a simulated second): whether any is being replaced,
        // the earliest grace end of an unhealthy report, and the earliest hook or Spot wake.
        let (mut replacing, mut grace_end, mut member_wake) = (false, None, None);
        for m in &self.members {
            replacing |= m.replacing;
            if m.unhealthy_report.is_some() && m.stopping == Stopping::No {
                grace_end = earliest(grace_end, m.grace_end(grace));
            }
            member_wake = earliest(member_wake, m.hooks_wake_at());
            member_wake = earliest(member_wake, m.spot_wake_at(lead));
        }
        // While the replacement batch is full, due reports wait for an event (an exit, or a
        // replacement found healthy, frees a slot), not for a timer: returning a past time here would spin the driver.
        let in_flight = if replacing {
            self.replacements_in_flight()
        } else {
            0
        };
        let batch_full = in_flight >= self.replace_limit()
            || self.is_suspended(ScalingProcess::ReplaceUnhealthy)
            || self.is_suspended(ScalingProcess::Terminate);
        let grace_end = grace_end.filter(|_| !batch_full);
        let retry = self.launch_not_before.filter(|_| {
            (self.capacity_count() < self.desired as usize || self.warm_pool_short())
                && !self.spec.zones.is_empty()
                && !self.is_suspended(ScalingProcess::Launch)
        });
        // A zone that failed a launch may take one again once its mark expires: wake then,
        // so an AZRebalance waiting for it happens without another event.
        let marks = self
            .zone_failed_at
            .iter()
            .map(|(_, t)| *t + MAX_BACKOFF)
            .filter(|_| !self.is_suspended(ScalingProcess::AzRebalance));
        grace_end
            .into_iter()
            .chain(retry)
            .chain(marks)
            .chain(self.refresh_wake_at())
            .chain(member_wake)
            .min()
    }

    /// Every instance not yet Terminated, oldest launch first.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.members.iter().map(|m| &m.instance)
    }

    /// The activity history, newest first (at most 1000 kept).
    pub fn activities(&self) -> impl Iterator<Item = &Activity> {
        self.activities.iter()
    }

    /// One activity by id, if still in the history.
    pub fn activity(&self, id: u64) -> Option<&Activity> {
        self.activities.get(id)
    }

    /// Whether the instance is in service, not terminating, and healthy in its target groups
    /// (for a group without target groups: in service): a target the load balancer routes
    /// to, counted by load balancer metrics per target.
    pub fn is_serving(&self, id: &InstanceId) -> bool {
        self.index_of(id)
            .is_some_and(|i| self.members[i].is_healthy_in_service())
    }

    /// Instances InService (running and registered), for the `in_service_instances` metric.
    pub fn in_service_count(&self) -> u32 {
        let n = self
            .members
            .iter()
            .filter(|m| m.instance.lifecycle == LifecycleState::InService)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Whether no launch or termination is in progress, so a simple policy's cooldown can start
    /// (AWS starts it when the activity's last instance finished).
    pub fn is_settled(&self) -> bool {
        self.members.iter().filter(|m| !m.in_warm_pool()).all(|m| {
            m.instance.lifecycle == LifecycleState::InService
                && m.stopping == Stopping::No
                && m.surge.is_none()
        }) && self.capacity_count() == self.desired as usize
    }

    /// Whether the instance is being drained (deregistered, not yet told to stop), so tests and
    /// simulations can check nothing kills it early.
    pub fn is_draining(&self, id: &InstanceId) -> bool {
        self.index_of(id)
            .is_some_and(|i| self.members[i].stopping == Stopping::Draining)
    }

    // ---------- internals ----------

    fn index_of(&self, id: &InstanceId) -> Option<usize> {
        self.members.iter().position(|m| m.instance.id == *id)
    }

    /// Whether the live instances reach the maximum size; counts them only when the members
    /// could (an adoption asks once per instance).
    fn at_max_size(&self) -> bool {
        let max = self.spec.max_size as usize;
        self.members.len() >= max && self.live_count() >= max
    }

    fn live_count(&self) -> usize {
        self.members.iter().filter(|m| m.is_live()).count()
    }

    /// Live instances that count toward the desired capacity (surges excluded).
    fn capacity_count(&self) -> usize {
        self.members.iter().filter(|m| m.is_capacity()).count()
    }

    /// Live instances in `zone`, not counting a Spot instance already replaced ahead of its
    /// interruption (so its replacement lands in its zone).
    fn live_in_zone(&self, zone: &str) -> usize {
        self.members
            .iter()
            .filter(|m| m.instance.zone == zone && m.counts_in_zone())
            .count()
    }

    /// [`live_in_zone`](Self::live_in_zone) of every zone, in one pass.
    pub(super) fn live_per_zone(&self) -> BTreeMap<&str, usize> {
        let mut live = BTreeMap::new();
        for m in self.members.iter().filter(|m| m.counts_in_zone()) {
            *live.entry(m.instance.zone.as_str()).or_default() += 1;
        }
        live
    }
}

/// The earlier of two optional times.
fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
