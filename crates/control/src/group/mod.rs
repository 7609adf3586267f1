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
mod hooks;
mod placement;
mod processes;
mod rebalance;
mod refresh;
mod replace;
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

    /// Changes the desired capacity (operator, scaling policy or schedule); `cause` names who,
    /// e.g. "operator" or "target tracking policy keep-rps", and is recorded with the launches
    /// or terminations that follow. Refused outside `min_size..=max_size`.
    pub fn set_desired_capacity(
        &mut self,
        now: Time,
        desired: u32,
        cause: impl Into<String>,
    ) -> Result<(), CapacityError> {
        let cause = format!(
            "{} set desired capacity from {} to {desired}",
            cause.into(),
            self.desired
        );
        self.scale_to(now, desired, cause)
    }

    /// Changes the desired capacity on behalf of a scaling policy: like
    /// [`set_desired_capacity`](Self::set_desired_capacity), but `cause` is recorded verbatim
    /// (the controller writes complete sentences such as "policy keep-rps:
    /// request_rate_per_target 212.4 > target 100 for 2 periods; desired 2 → 5").
    pub fn scale_to(
        &mut self,
        now: Time,
        desired: u32,
        cause: String,
    ) -> Result<(), CapacityError> {
        if desired < self.spec.min_size || desired > self.spec.max_size {
            return Err(CapacityError::OutOfRange {
                requested: desired,
                min: self.spec.min_size,
                max: self.spec.max_size,
            });
        }
        if desired != self.desired {
            self.activities.record(
                now,
                cause.clone(),
                format!(
                    "Setting desired capacity of group {} to {desired}",
                    self.spec.name
                ),
                ActivityStatus::Successful,
            );
            self.desired = desired;
            self.pending_cause = Some(cause);
        }
        self.reconcile(now);
        Ok(())
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

    /// Takes one instance out of service on request (AWS `TerminateInstanceInAutoScalingGroup`):
    /// drains and stops it; with `decrement_desired` the desired capacity drops by one (never
    /// below `min_size`: then the instance is replaced anyway), otherwise it is replaced.
    /// Returns false if the instance is unknown or already terminating.
    pub fn terminate_instance(
        &mut self,
        now: Time,
        id: &InstanceId,
        decrement_desired: bool,
        cause: impl Into<String>,
    ) -> bool {
        let Some(i) = self.index_of(id) else {
            return false;
        };
        if !self.members[i].is_live() {
            return false;
        }
        let mut cause = format!("{} requested termination of instance {id}", cause.into());
        if decrement_desired && self.desired > self.spec.min_size {
            cause.push_str(&format!(
                ", decrementing desired capacity from {} to {}",
                self.desired,
                self.desired - 1
            ));
            self.desired -= 1;
        } else {
            cause.push_str(" — replacing it");
            self.pending_cause = Some(cause.clone());
        }
        self.start_terminating(now, i, cause);
        self.reconcile(now);
        true
    }

    /// Takes over an instance that was already running before this group existed (a restarted
    /// Flotilla found its process alive, pid and start time matching): it joins InService,
    /// healthy, is registered with the target groups, and counts toward capacity, so the group
    /// launches only the difference. Refused (false) when the id is already known, the zone is
    /// not one of the group's, or the group is already at `max_size`.
    pub fn adopt_instance(
        &mut self,
        now: Time,
        id: InstanceId,
        zone: String,
        launched_at: Time,
        launch_template_version: u64,
    ) -> bool {
        self.adopt_instance_as(
            now,
            id,
            zone,
            launched_at,
            (launch_template_version, PurchaseOption::OnDemand),
            LifecycleState::InService,
        )
    }

    /// [`adopt_instance`](Self::adopt_instance) into the state it had before the restart:
    /// `InService`; `PendingWait` (its launch hooks wait afresh, with new timeouts; with none
    /// configured any more it goes into service); or `WarmedRunning` (back in the warm pool;
    /// refused when the group has no pool). Any other state is adopted as `InService`.
    /// `(launch_template_version, purchase_option)` are what it was launched with.
    pub fn adopt_instance_as(
        &mut self,
        now: Time,
        id: InstanceId,
        zone: String,
        launched_at: Time,
        versions: (u64, PurchaseOption),
        state: LifecycleState,
    ) -> bool {
        if self.index_of(&id).is_some() {
            return false;
        }
        self.adopt_unknown_instance(now, id, zone, launched_at, versions, state)
    }

    /// [`adopt_instance_as`](Self::adopt_instance_as) of an id the caller knows is not a
    /// member (the cluster's map of every instance says so in one lookup; a scan of the
    /// members per adoption made a new leader's adoption of 10,000 instances quadratic).
    pub(crate) fn adopt_unknown_instance(
        &mut self,
        now: Time,
        id: InstanceId,
        zone: String,
        launched_at: Time,
        (launch_template_version, purchase_option): (u64, PurchaseOption),
        state: LifecycleState,
    ) -> bool {
        let into_pool = state.is_warmed();
        if !self.spec.zones.contains(&zone)
            || (into_pool && self.spec.warm_pool.is_none())
            || (!into_pool && self.at_max_size())
        {
            return false;
        }
        self.activities.record(
            now,
            "the instance was still running when Flotilla restarted (pid and process start \
             time matched its record)"
                .to_string(),
            // Built, not formatted: a new leader adopts 10,000 at once.
            ["Adopting instance: ", id.as_str(), " in ", &zone].concat(),
            ActivityStatus::Successful,
        );
        // Room for the whole group at once (a new leader adopts it one instance at a time).
        let expected = usize::try_from(self.desired).unwrap_or(0);
        self.members
            .reserve(expected.saturating_sub(self.members.len()));
        self.members.push(Member::new(
            Instance {
                id,
                zone,
                lifecycle: LifecycleState::WarmedRunning,
                health: InstanceHealth::Healthy,
                launched_at,
                in_service_at: None,
                launch_template_version,
                purchase_option,
                // AWS: re-attached instances inherit the group's setting.
                protected_from_scale_in: self.new_instances_protected,
                // It was serving before the restart: nothing to warm up.
                initial: true,
            },
            None,
            None,
        ));
        let i = self.members.len() - 1;
        if into_pool {
            return true;
        }
        if state == LifecycleState::PendingWait {
            self.begin_service(now, i);
        } else {
            self.enter_service(now, i);
        }
        true
    }

    /// The runtime started the instance's process: it goes InService, is registered with the
    /// target groups, its grace period starts, and the launch back-off resets.
    pub fn handle_launched(&mut self, now: Time, id: &InstanceId) {
        let Some(i) = self.index_of(id) else { return };
        let m = &mut self.members[i];
        let into_pool = m.instance.lifecycle == LifecycleState::WarmedPending;
        if m.instance.lifecycle != LifecycleState::Pending && !into_pool {
            return;
        }
        if let Some(a) = m.launch_activity.take() {
            self.activities
                .finish(a, now, ActivityStatus::Successful, None);
        }
        self.launch_failures = 0;
        self.launch_not_before = None;
        let zone = m.instance.zone.clone();
        self.zone_failed_at.retain(|(z, _)| *z != zone);
        if m.stopping != Stopping::No {
            // Scale-in chose it while pending and Terminate is already on its way.
            return;
        }
        let waits = self.start_hooks(now, i, LifecycleTransition::Launching);
        self.lifecycle_changes += 1;
        let m = &mut self.members[i];
        match (into_pool, waits) {
            (true, true) => m.instance.lifecycle = LifecycleState::WarmedPendingWait,
            (true, false) => m.instance.lifecycle = LifecycleState::WarmedRunning,
            (false, true) => m.instance.lifecycle = LifecycleState::PendingWait,
            (false, false) => self.enter_service(now, i),
        }
        self.reconcile(now);
    }

    /// Member `i` heads for service: it waits for its launching hooks (`pending:wait`) if the
    /// group has any, else it goes InService at once.
    fn begin_service(&mut self, now: Time, i: usize) {
        if self.start_hooks(now, i, LifecycleTransition::Launching) {
            self.members[i].instance.lifecycle = LifecycleState::PendingWait;
            self.lifecycle_changes += 1;
        } else {
            self.enter_service(now, i);
        }
    }

    /// Member `i` goes InService: registered with the target groups, its grace period starts.
    fn enter_service(&mut self, now: Time, i: usize) {
        let m = &mut self.members[i];
        m.instance.lifecycle = LifecycleState::InService;
        self.lifecycle_changes += 1;
        m.instance.in_service_at = Some(now);
        if self.spec.has_target_groups {
            self.actions.push_back(GroupAction::RegisterTargets {
                id: m.instance.id.clone(),
            });
        } else {
            m.healthy_at = Some(now);
        }
    }

    /// The instance could not be started: it is Terminated, its launch activity Failed, and a
    /// retry is scheduled with exponential back-off (1 s doubling to 30 s over consecutive
    /// failures), preferring another zone.
    pub fn handle_launch_failed(&mut self, now: Time, id: &InstanceId, reason: &str) {
        let Some(i) = self.index_of(id) else { return };
        let m = &self.members[i];
        if !matches!(
            m.instance.lifecycle,
            LifecycleState::Pending | LifecycleState::WarmedPending
        ) {
            return;
        }
        if m.stopping != Stopping::No {
            // We were cancelling this launch anyway: not a failure worth backing off for.
            self.handle_instance_exited(now, id, reason);
            return;
        }
        self.launch_failed(now, i, &format!("failed: {reason}"));
        self.reconcile(now);
    }

    /// The instance's process ended. Expected if the group was terminating it; otherwise the
    /// instance is unhealthy: it is deregistered (no drain, it is dead) and replaced at once. A
    /// process that dies before it came up counts as a failed launch (back-off applies, so a
    /// crashing application is not restarted in a tight loop).
    pub fn handle_instance_exited(&mut self, now: Time, id: &InstanceId, status: &str) {
        let Some(i) = self.index_of(id) else { return };
        self.cancel_hooks(now, i, &format!("the instance exited ({status})"));
        let m = &self.members[i];
        if m.stopping != Stopping::No {
            let m = self.members.remove(i);
            self.removals += 1;
            self.removed.push(m.instance.id.clone());
            if let Some(a) = m.launch_activity {
                self.activities.finish(
                    a,
                    now,
                    ActivityStatus::Failed,
                    Some(" — stopped before it came up"),
                );
            }
            if let Some(a) = m.terminate_activity {
                self.activities
                    .finish(a, now, ActivityStatus::Successful, None);
            }
        } else if matches!(
            m.instance.lifecycle,
            LifecycleState::Pending | LifecycleState::WarmedPending
        ) {
            self.launch_failed(
                now,
                i,
                &format!("exited before it was in service ({status})"),
            );
            self.pending_cause = Some(format!("instance {id} exited during launch ({status})"));
        } else {
            let m = self.members.remove(i);
            self.removals += 1;
            self.removed.push(m.instance.id.clone());
            let cause = format!("instance {id} exited unexpectedly ({status})");
            if self.spec.has_target_groups && m.instance.lifecycle == LifecycleState::InService {
                self.actions
                    .push_back(GroupAction::DeregisterTargets { id: id.clone() });
            }
            self.activities.record(
                now,
                cause.clone(),
                format!(
                    "Terminating instance: {id} in {} (it had already exited)",
                    m.instance.zone
                ),
                ActivityStatus::Successful,
            );
            if m.instance.lifecycle.is_live() {
                self.pending_cause = Some(format!("{cause} — replacing it"));
            }
            let what = format!("exited unexpectedly ({status})");
            self.refresh_saw_failure(now, id, m.instance.launch_template_version, &what);
        }
        self.reconcile(now);
    }

    /// The target group's verdict on the instance changed (InService instances only). It
    /// always counts for healthy capacity (instance refresh, AZRebalance). For `Elb` groups an
    /// unhealthy verdict after the grace period also takes the instance out of service (drain,
    /// terminate) and launches a replacement at once; inside it the verdict is remembered and
    /// acted on at grace end unless a healthy verdict arrives first.
    pub fn handle_target_health(
        &mut self,
        now: Time,
        id: &InstanceId,
        healthy: bool,
        reason: &str,
    ) {
        let elb = self.spec.health_check_type == HealthCheckType::Elb
            && !self.is_suspended(ScalingProcess::HealthCheck);
        let Some(i) = self.index_of(id) else { return };
        let m = &mut self.members[i];
        if m.instance.lifecycle != LifecycleState::InService || m.stopping != Stopping::No {
            return;
        }
        if healthy {
            m.healthy_at.get_or_insert(now);
        } else {
            m.healthy_at = None;
        }
        m.target_unhealthy = !healthy;
        if !elb {
            self.reconcile(now);
            return;
        }
        m.unhealthy_report = if healthy {
            None
        } else if reason.is_empty() {
            Some("Target.FailedHealthChecks".to_string())
        } else {
            Some(reason.to_string())
        };
        self.reconcile(now);
    }

    /// The target groups finished draining the instance: its terminate lifecycle hooks run
    /// now, and after them it is stopped (or, scaled in with `reuse_on_scale_in`, returned to
    /// the warm pool). AWS's order: deregister, then terminate hooks, then terminate.
    pub fn handle_drained(&mut self, now: Time, id: &InstanceId) {
        let Some(i) = self.index_of(id) else { return };
        if self.members[i].stopping == Stopping::Draining {
            self.after_drain(now, i);
        }
    }

    /// A drained (or unregistered, in-service) member: wait for its terminate hooks, else
    /// stop it or return it to the pool.
    fn after_drain(&mut self, now: Time, i: usize) {
        if self.start_hooks(now, i, LifecycleTransition::Terminating) {
            self.lifecycle_changes += 1;
            let m = &mut self.members[i];
            m.stopping = Stopping::Hooks;
            m.instance.lifecycle = if m.to_pool {
                LifecycleState::WarmedPendingWait
            } else {
                LifecycleState::TerminatingWait
            };
            return;
        }
        self.stop_or_return(now, i);
    }

    /// The end of a termination: the stop signal, or back to the warm pool.
    fn stop_or_return(&mut self, now: Time, i: usize) {
        if self.members[i].to_pool {
            self.return_to_pool(now, i);
            return;
        }
        let m = &mut self.members[i];
        if m.stopping == Stopping::Hooks {
            m.instance.lifecycle = LifecycleState::TerminatingProceed;
            self.lifecycle_changes += 1;
        }
        m.stopping = Stopping::Killing;
        self.actions.push_back(GroupAction::Terminate {
            id: m.instance.id.clone(),
        });
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

    /// Changes any of min, max and desired at once (scheduled actions, `UpdateAutoScalingGroup`).
    /// When only the bounds change, the desired capacity is moved into them (AWS raises desired
    /// to a new min and lowers it to a new max). Refused when min > max or the given desired
    /// falls outside the new bounds; nothing changes then.
    pub fn update_capacity(
        &mut self,
        now: Time,
        min: Option<u32>,
        max: Option<u32>,
        desired: Option<u32>,
        cause: impl Into<String>,
    ) -> Result<(), CapacityError> {
        let new_min = min.unwrap_or(self.spec.min_size);
        let new_max = max.unwrap_or(self.spec.max_size);
        let new_desired = desired.unwrap_or(self.desired.clamp(new_min.min(new_max), new_max));
        if new_min > new_max || new_desired < new_min || new_desired > new_max {
            return Err(CapacityError::OutOfRange {
                requested: new_desired,
                min: new_min,
                max: new_max,
            });
        }
        let cause = cause.into();
        if (new_min, new_max) != (self.spec.min_size, self.spec.max_size) {
            self.activities.record(
                now,
                format!(
                    "{cause} set min/max size from {}/{} to {new_min}/{new_max}",
                    self.spec.min_size, self.spec.max_size
                ),
                format!("Updating size bounds of group {}", self.spec.name),
                ActivityStatus::Successful,
            );
            self.spec.min_size = new_min;
            self.spec.max_size = new_max;
        }
        self.set_desired_capacity(now, new_desired, cause)
    }

    /// Suspends a scaling process (AWS `SuspendProcesses`); suspending twice is harmless.
    pub fn suspend_process(&mut self, process: ScalingProcess) {
        self.suspended.insert(process);
    }

    /// Resumes a scaling process; work it held back (launches, terminations, replacements)
    /// starts at once.
    pub fn resume_process(&mut self, now: Time, process: ScalingProcess) {
        if self.suspended.remove(&process) {
            self.reconcile(now);
        }
    }

    /// Whether a process is suspended, so policies and schedules can stand down.
    pub fn is_suspended(&self, process: ScalingProcess) -> bool {
        self.suspended.contains(&process)
    }

    /// The suspended processes, in a stable order, for status output.
    pub fn suspended_processes(&self) -> impl Iterator<Item = ScalingProcess> + '_ {
        self.suspended.iter().copied()
    }

    /// Sets or clears one instance's scale-in protection (AWS `SetInstanceProtection`): a
    /// protected instance is never chosen by scale-in (health replacement and explicit
    /// termination still apply). Returns false for an unknown instance.
    pub fn set_instance_protection(&mut self, now: Time, id: &InstanceId, protected: bool) -> bool {
        let Some(i) = self.index_of(id) else {
            return false;
        };
        self.members[i].instance.protected_from_scale_in = protected;
        if !protected {
            // Scale-in that was waiting for an unprotected instance can proceed now.
            self.reconcile(now);
        }
        true
    }

    /// Whether instances launched from now on start protected from scale-in (AWS
    /// `NewInstancesProtectedFromScaleIn`).
    pub fn set_new_instances_protected_from_scale_in(&mut self, protected: bool) {
        self.new_instances_protected = protected;
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

    /// Removes a pending instance whose launch failed and arms the back-off.
    fn launch_failed(&mut self, now: Time, i: usize, note: &str) {
        let m = self.members.remove(i);
        self.removals += 1;
        self.removed.push(m.instance.id.clone());
        if let Some(a) = m.launch_activity {
            self.activities
                .finish(a, now, ActivityStatus::Failed, Some(&format!(" — {note}")));
        }
        if let Some(a) = m.terminate_activity {
            self.activities
                .finish(a, now, ActivityStatus::Successful, None);
        }
        let what = format!("did not come up ({note})");
        self.refresh_saw_failure(
            now,
            &m.instance.id,
            m.instance.launch_template_version,
            &what,
        );
        self.arm_launch_backoff(now, m.instance.zone);
    }

    /// Delays the next launch (1 s doubling to 30 s over consecutive failures) and marks the
    /// zone, after a failed launch or an abandoned launch hook.
    fn arm_launch_backoff(&mut self, now: Time, zone: String) {
        self.launch_failures = self.launch_failures.saturating_add(1);
        let exp = self.launch_failures.saturating_sub(1).min(16);
        let backoff = MIN_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
        self.launch_not_before = Some(now + backoff);
        self.zone_failed_at.retain(|(z, _)| *z != zone);
        self.zone_failed_at.push((zone, now));
    }

    /// Brings the group toward its desired state: acts on unhealthy reports whose grace ended,
    /// then launches or terminates the difference.
    fn reconcile(&mut self, now: Time) {
        self.reconciled = true;
        if self.launch_not_before.is_some_and(|t| now >= t) {
            self.launch_not_before = None;
        }
        // Marks that no longer steer placement; dropping them keeps poll_timeout in the future.
        self.zone_failed_at.retain(|(_, t)| now < *t + MAX_BACKOFF);
        self.hook_timeouts(now);
        self.spot_step(now);
        self.replace_unhealthy(now);
        self.refresh_step(now);
        let desired = self.desired as usize;
        let mut live = self.capacity_count();
        let mut acted = false;
        let can_launch = !self.is_suspended(ScalingProcess::Launch);
        let can_terminate = !self.is_suspended(ScalingProcess::Terminate);
        while can_launch && live < desired && self.launch_not_before.is_none() {
            if !self.launch_one(now, live) {
                break;
            }
            live += 1;
            acted = true;
        }
        while can_terminate && live > desired {
            let Some(i) = self.choose_victim(now) else {
                break;
            };
            let cause = self.with_pending_cause(format!(
                "an instance was taken out of service in response to a difference between desired \
                 and actual capacity, shrinking the capacity from {live} to {}",
                live - 1
            ));
            self.members[i].to_pool = self.reuses_on_scale_in(i);
            self.start_terminating(now, i, cause);
            live -= 1;
            acted = true;
        }
        if acted {
            self.pending_cause = None;
        } else {
            self.rebalance_step(now);
        }
        self.reconcile_warm_pool(now);
        self.started |= self.is_settled();
    }

    fn with_pending_cause(&self, body: String) -> String {
        match &self.pending_cause {
            Some(why) => format!("{why}; {body}"),
            None => body,
        }
    }

    fn launch_one(&mut self, now: Time, live: usize) -> bool {
        if self.take_from_warm_pool(now, live) {
            return true;
        }
        let Some(zone) = self.placement_zone(now) else {
            return false;
        };
        let cause = self.with_pending_cause(format!(
            "an instance was started in response to a difference between desired and actual \
             capacity, increasing the capacity from {live} to {}",
            live + 1
        ));
        self.launch_in(now, zone, cause, None);
        true
    }

    /// The zone for the next launch: the in-service zone with the fewest live instances,
    /// avoiding one that just failed a launch; `None` when no zone takes launches.
    fn placement_zone(&self, now: Time) -> Option<String> {
        placement::choose_zone(
            &self.zones_in_service(),
            |z| self.live_in_zone(z),
            |z| self.zone_failed_recently(now, z),
        )
        .map(str::to_string)
    }

    /// Whether a launch into `zone` failed less than [`MAX_BACKOFF`] ago: placement tries it
    /// last and AZRebalance does not move instances into it.
    fn zone_failed_recently(&self, now: Time, zone: &str) -> bool {
        self.zone_failed_at
            .iter()
            .any(|(z, t)| z == zone && now < *t + MAX_BACKOFF)
    }

    /// Launches one instance into `zone` for the group, recording `cause`; returns its id.
    fn launch_in(
        &mut self,
        now: Time,
        zone: String,
        cause: String,
        surge: Option<Surge>,
    ) -> InstanceId {
        self.launch_as(now, zone, cause, surge, LifecycleState::Pending)
    }

    /// Launches one instance into `zone` as `lifecycle` (`Pending` for the group,
    /// `WarmedPending` for the warm pool); returns its id.
    fn launch_as(
        &mut self,
        now: Time,
        zone: String,
        cause: String,
        surge: Option<Surge>,
        lifecycle: LifecycleState,
    ) -> InstanceId {
        let id = self.ids.next_id();
        let what = if lifecycle.is_warmed() {
            "Launching a new instance into the warm pool"
        } else {
            "Launching a new instance"
        };
        let activity = self.activities.record(
            now,
            cause,
            format!("{what}: {id} in {zone}"),
            ActivityStatus::InProgress,
        );
        let version = self.spec.launch_template_version;
        let purchase_option = if lifecycle.is_warmed() {
            PurchaseOption::OnDemand // warm pools and mixed instances exclude each other (AWS)
        } else {
            self.next_purchase_option()
        };
        self.actions.push_back(GroupAction::Launch {
            id: id.clone(),
            zone: zone.clone(),
            launch_template_version: version,
        });
        self.members.push(Member::new(
            Instance {
                id: id.clone(),
                zone,
                lifecycle,
                health: InstanceHealth::Healthy,
                launched_at: now,
                in_service_at: None,
                launch_template_version: version,
                purchase_option,
                protected_from_scale_in: self.new_instances_protected,
                initial: !self.started,
            },
            Some(activity),
            surge,
        ));
        id
    }

    /// The scale-in victim: zone balance, then the termination policies, among the live
    /// capacity not protected from scale-in.
    fn choose_victim(&self, now: Time) -> Option<usize> {
        let prefer = self.scale_in_preference();
        self.choose_victim_among(now, prefer, |m| {
            m.is_capacity() && !m.instance.protected_from_scale_in
        })
    }

    /// [`choose_victim`](Self::choose_victim)'s rules applied to the members `eligible` admits;
    /// inside the zone chosen, instances bought as `prefer` go first (a mixed instances group
    /// keeps its split).
    fn choose_victim_among(
        &self,
        now: Time,
        prefer: Option<PurchaseOption>,
        eligible: impl Fn(&Member) -> bool,
    ) -> Option<usize> {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&i| eligible(&self.members[i]))
            .collect();
        let candidates: Vec<Candidate<'_>> = live
            .iter()
            .map(|&i| {
                let inst = &self.members[i].instance;
                Candidate {
                    id: &inst.id,
                    zone: &inst.zone,
                    pending: inst.lifecycle.is_launching()
                        || inst.lifecycle == LifecycleState::WarmedPending,
                    launch_template_version: inst.launch_template_version,
                    launched_at: inst.launched_at,
                    preferred: prefer == Some(inst.purchase_option),
                }
            })
            .collect();
        let pick = termination::choose_victim(
            now,
            &self.spec.zones,
            &self.spec.termination_policies,
            &candidates,
        )?;
        live.get(pick).copied()
    }

    /// Starts taking member `i` out of service: drain first if it is registered, then its
    /// terminate hooks if it was in service, then stop (or, with `to_pool` set, return to the
    /// warm pool). An instance that never served (launching, waiting for launch hooks, in the
    /// pool) is stopped at once.
    fn start_terminating(&mut self, now: Time, i: usize, cause: String) {
        self.cancel_hooks(now, i, "the instance is being terminated");
        let has_tg = self.spec.has_target_groups;
        let m = &mut self.members[i];
        let was_in_service = m.instance.lifecycle == LifecycleState::InService;
        m.to_pool &= was_in_service;
        m.instance.lifecycle = LifecycleState::Terminating;
        self.lifecycle_changes += 1;
        m.unhealthy_report = None;
        let id = m.instance.id.clone();
        let description = if m.to_pool {
            format!(
                "Returning instance to the warm pool: {id} in {}",
                m.instance.zone
            )
        } else {
            format!("Terminating instance: {id} in {}", m.instance.zone)
        };
        m.terminate_activity =
            Some(
                self.activities
                    .record(now, cause, description, ActivityStatus::InProgress),
            );
        if has_tg && was_in_service {
            m.stopping = Stopping::Draining;
            self.actions
                .push_back(GroupAction::DeregisterTargets { id });
        } else if was_in_service {
            // Nothing to drain: straight to the terminate hooks (which set `stopping`).
            self.after_drain(now, i);
        } else {
            m.stopping = Stopping::Killing;
            self.actions.push_back(GroupAction::Terminate { id });
        }
    }
}

/// The earlier of two optional times.
fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
