//! The warm pool (AWS §7.2, `PutWarmPool`): instances started ahead and kept out of service
//! (`warmed:running`: a running process, not registered, not capacity, not measured), so a
//! scale-out only has to register one instead of waiting for a start.
//!
//! Its size is max(`min_size`, `max_group_prepared_capacity` − desired capacity), the
//! prepared capacity defaulting to the group's `max_size`. A scale-out takes pool instances
//! first (launch hooks fire again as they leave it) and launches only what the pool lacks;
//! with `reuse_on_scale_in`, a scale-in returns the drained instance to the pool after its
//! terminate hooks instead of stopping it. The pool holds only the current launch template
//! version (older ones are replaced), is trimmed by the termination policies when too big,
//! and loses its instances in a zone outage like the group does.

use super::{
    placement, ActivityStatus, AutoScalingGroup, InstanceHealth, LifecycleState, ScalingProcess,
    Stopping,
};
use crate::time::Time;

/// A group's warm pool configuration, as AWS `PutWarmPool` takes it (pool state `Running`:
/// a local instance is a process, so there is no stopped or hibernated state to keep).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WarmPool {
    /// Instances the pool keeps however large the group is (AWS `MinSize`, default 0).
    pub min_size: u32,
    /// Instances in service plus in the pool the group prepares for (AWS
    /// `MaxGroupPreparedCapacity`); `None` means the group's `max_size`.
    pub max_group_prepared_capacity: Option<u32>,
    /// Whether scale-in returns instances to the pool instead of terminating them (AWS
    /// `InstanceReusePolicy.ReuseOnScaleIn`).
    pub reuse_on_scale_in: bool,
}

impl WarmPool {
    /// In-service plus pooled instances prepared for: `max_group_prepared_capacity`, else
    /// the group's `max_size` (AWS).
    pub fn prepared_capacity(&self, max_size: u32) -> u32 {
        self.max_group_prepared_capacity.unwrap_or(max_size)
    }
}

/// The warm pool as `DescribeWarmPool` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WarmPoolStatus {
    /// Its configuration.
    pub config: WarmPool,
    /// How many instances it should hold now.
    pub desired_size: u32,
    /// How many it holds or is preparing (launching, waiting for hooks, or returning).
    pub size: u32,
}

impl AutoScalingGroup {
    /// The warm pool's configuration and size, or `None` when the group has none.
    pub fn warm_pool(&self) -> Option<WarmPoolStatus> {
        let config = self.spec.warm_pool?;
        Some(WarmPoolStatus {
            config,
            desired_size: u32::try_from(self.warm_pool_target()).unwrap_or(u32::MAX),
            size: u32::try_from(self.warm_pool_count()).unwrap_or(u32::MAX),
        })
    }

    /// How many instances the pool should hold now (0 without a pool).
    pub(super) fn warm_pool_target(&self) -> usize {
        self.spec.warm_pool.map_or(0, |p| {
            let prepared = p.prepared_capacity(self.spec.max_size);
            p.min_size.max(prepared.saturating_sub(self.desired)) as usize
        })
    }

    /// Members in the pool or on their way back to it.
    fn warm_pool_count(&self) -> usize {
        self.members.iter().filter(|m| m.counts_for_pool()).count()
    }

    /// Whether the pool lacks instances (so a launch back-off must wake the group).
    pub(super) fn warm_pool_short(&self) -> bool {
        self.warm_pool_count() < self.warm_pool_target()
    }

    /// Brings the pool to its size (part of `reconcile`): replaces instances of an older
    /// launch template version, launches what is missing, trims the extra.
    pub(super) fn reconcile_warm_pool(&mut self, now: Time) {
        let version = self.spec.launch_template_version;
        if !self.is_suspended(ScalingProcess::Terminate) {
            while let Some(i) = self
                .members
                .iter()
                .position(|m| m.in_warm_pool() && m.instance.launch_template_version != version)
            {
                let cause = format!(
                    "warm pool instance {} was started from launch template version {}; the \
                     group now launches version {version}",
                    self.members[i].instance.id, self.members[i].instance.launch_template_version
                );
                self.start_terminating(now, i, cause);
            }
        }
        let target = self.warm_pool_target();
        let mut count = self.warm_pool_count();
        while count < target
            && !self.is_suspended(ScalingProcess::Launch)
            && self.launch_not_before.is_none()
        {
            let zones = self.zones_in_service();
            let Some(zone) = placement::choose_zone(
                &zones,
                |z| {
                    self.members
                        .iter()
                        .filter(|m| m.counts_for_pool() && m.instance.zone == z)
                        .count()
                },
                |z| self.zone_failed_recently(now, z),
            )
            .map(str::to_string) else {
                break;
            };
            let cause = format!(
                "the warm pool holds {count} instance(s), fewer than its size {target}; \
                 preparing one"
            );
            self.launch_as(now, zone, cause, None, LifecycleState::WarmedPending);
            count += 1;
        }
        while count > target && !self.is_suspended(ScalingProcess::Terminate) {
            let Some(i) = self.choose_victim_among(now, None, |m| m.in_warm_pool()) else {
                break;
            };
            let cause =
                format!("the warm pool holds {count} instance(s), more than its size {target}");
            self.start_terminating(now, i, cause);
            count -= 1;
        }
    }

    /// Takes a running pool instance into service for a scale-out: from the zone with the
    /// fewest live instances among those the pool has one in. Launch hooks fire again as it
    /// leaves the pool. False when the pool has none ready.
    pub(super) fn take_from_warm_pool(&mut self, now: Time, live: usize) -> bool {
        let ready = |m: &super::Member| {
            m.instance.lifecycle == LifecycleState::WarmedRunning && m.stopping == Stopping::No
        };
        let zones: Vec<String> = self
            .zones_in_service()
            .into_iter()
            .filter(|z| {
                self.members
                    .iter()
                    .any(|m| ready(m) && m.instance.zone == *z)
            })
            .collect();
        let Some(zone) = placement::choose_zone(&zones, |z| self.live_in_zone(z), |_| false) else {
            return false;
        };
        let Some(i) = self
            .members
            .iter()
            .position(|m| ready(m) && m.instance.zone == zone)
        else {
            return false;
        };
        let cause = self.with_pending_cause(format!(
            "an instance was taken from the warm pool in response to a difference between \
             desired and actual capacity, increasing the capacity from {live} to {}",
            live + 1
        ));
        let id = self.members[i].instance.id.clone();
        self.activities.record(
            now,
            cause,
            format!("Launching an instance from the warm pool: {id} in {zone}"),
            ActivityStatus::Successful,
        );
        // AWS: an instance leaving the pool inherits the group's protection setting.
        self.members[i].instance.protected_from_scale_in = self.new_instances_protected;
        self.members[i].instance.initial = !self.started;
        self.begin_service(now, i);
        true
    }

    /// Whether a scale-in victim goes back to the pool instead of stopping: the pool reuses
    /// instances on scale-in and this one runs the current launch template version.
    pub(super) fn reuses_on_scale_in(&self, i: usize) -> bool {
        let m = &self.members[i];
        self.spec.warm_pool.is_some_and(|p| p.reuse_on_scale_in)
            && m.instance.lifecycle == LifecycleState::InService
            && m.instance.launch_template_version == self.spec.launch_template_version
    }

    /// Puts a drained instance whose terminate hooks are done back into the pool.
    pub(super) fn return_to_pool(&mut self, now: Time, i: usize) {
        let m = &mut self.members[i];
        m.instance.lifecycle = LifecycleState::WarmedRunning;
        self.lifecycle_changes += 1;
        m.instance.health = InstanceHealth::Healthy;
        m.instance.in_service_at = None;
        m.stopping = Stopping::No;
        m.to_pool = false;
        m.healthy_at = None;
        m.unhealthy_report = None;
        m.replacing = false;
        m.replace_since = None;
        if let Some(a) = m.terminate_activity.take() {
            self.activities.finish(
                a,
                now,
                ActivityStatus::Successful,
                Some(" — back in the warm pool"),
            );
        }
    }
}
