//! Instance refresh (AWS `StartInstanceRefresh`, §7.3): rolling replacement of every instance
//! the group had when the refresh started, never letting healthy in-service capacity fall below
//! the floor, ceil(min_healthy_percentage × desired capacity / 100).
//!
//! Each step waits until the group is whole (no launch in progress, the desired capacity
//! reached, every instance that is not being replaced healthy for the warm-up), then either
//! - terminates as many old instances at once as the floor leaves room for (their replacements
//!   are launched by the ordinary capacity difference, in the same zones), or
//! - when the floor leaves no room, launches a replacement first, one above the desired
//!   capacity and in the old instance's zone, and terminates the old instance once the new one
//!   is healthy and warm (AWS's launch-before-terminate, `MaxHealthyPercentage` > 100).
//!
//! So a group at its floor (e.g. 3 instances at 90 %) is replaced one at a time without ever
//! having fewer healthy instances, and `min_healthy_percentage = 0` replaces everything at once.
//!
//! Checkpoints pause the refresh once the share of replaced instances reaches each of the
//! `checkpoint_percentages` (and the group is whole and warm), for `checkpoint_delay`, so an
//! operator can look at the new version before the rest follows (or cancel). With
//! `auto_rollback`, a new instance that fails (its launch, its process, or its health checks)
//! turns the refresh into a rollback: new launches go back to the previous launch template
//! version and the instances already replaced are replaced again, by the same rolling rules.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{ActivityStatus, AutoScalingGroup, ScalingProcess, Surge};
use crate::id::InstanceId;
use crate::time::Time;

/// How long a refresh may go without being able to replace anything before it fails (AWS
/// retries blocked replacements for an hour).
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// AWS's default `CheckpointDelay`: how long a refresh waits at a checkpoint.
pub const DEFAULT_CHECKPOINT_DELAY: Duration = Duration::from_secs(3600);

/// How to run an instance refresh, as AWS `RefreshPreferences`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshPreferences {
    /// Share of the desired capacity (0..=100) that must stay healthy and in service while
    /// instances are replaced; AWS's default is 90. 100 replaces one at a time, launching
    /// first; 0 replaces everything at once.
    pub min_healthy_percentage: u32,
    /// How long a new instance must have been healthy before the refresh counts it as done and
    /// moves on (AWS `InstanceWarmup`; defaults to the group's default instance warm-up).
    pub instance_warmup: Duration,
    /// Shares of replaced instances (ascending, 1..=100) at which the refresh pauses for
    /// `checkpoint_delay` (AWS `CheckpointPercentages`); empty: no pauses.
    pub checkpoint_percentages: Vec<u32>,
    /// How long each checkpoint pauses (AWS `CheckpointDelay`, default one hour).
    pub checkpoint_delay: Duration,
    /// Whether a failing new instance rolls the refresh back to the previous launch template
    /// version (AWS `AutoRollback`); without it the group keeps replacing failed instances.
    pub auto_rollback: bool,
}

impl RefreshPreferences {
    /// Preferences with AWS's defaults for everything but the floor and the warm-up.
    pub fn new(min_healthy_percentage: u32, instance_warmup: Duration) -> Self {
        RefreshPreferences {
            min_healthy_percentage,
            instance_warmup,
            checkpoint_percentages: Vec::new(),
            checkpoint_delay: DEFAULT_CHECKPOINT_DELAY,
            auto_rollback: false,
        }
    }
}

/// Where an instance refresh is, as AWS reports its `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RefreshStatus {
    /// Accepted, not yet begun (e.g. the Launch or Terminate process is suspended).
    Pending,
    /// Replacing instances.
    InProgress,
    /// Every instance the group had at the start was replaced.
    Successful,
    /// Stopped by an operator; instances already replaced stay (no rollback).
    Cancelled,
    /// Gave up: nothing could be replaced for an hour, or a new instance failed and there was
    /// no previous version to roll back to.
    Failed,
    /// A new instance failed: the instances already replaced are being replaced again with the
    /// previous launch template version.
    RollbackInProgress,
    /// The rollback put every instance back on the previous launch template version.
    RollbackSuccessful,
    /// The rollback could not finish (nothing could be replaced for an hour).
    RollbackFailed,
}

impl RefreshStatus {
    /// The AWS name, e.g. `"InProgress"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshStatus::Pending => "Pending",
            RefreshStatus::InProgress => "InProgress",
            RefreshStatus::Successful => "Successful",
            RefreshStatus::Cancelled => "Cancelled",
            RefreshStatus::Failed => "Failed",
            RefreshStatus::RollbackInProgress => "RollbackInProgress",
            RefreshStatus::RollbackSuccessful => "RollbackSuccessful",
            RefreshStatus::RollbackFailed => "RollbackFailed",
        }
    }

    /// Whether the refresh is still running (a second one is refused meanwhile).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RefreshStatus::Pending | RefreshStatus::InProgress | RefreshStatus::RollbackInProgress
        )
    }
}

/// One instance refresh and its progress, as `DescribeInstanceRefreshes` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRefresh {
    /// Its id, e.g. `ir-0a1b2c3d4e5f`.
    pub id: String,
    /// Where it is.
    pub status: RefreshStatus,
    /// What it is doing or waiting for, or why it ended, for a person.
    pub status_reason: String,
    /// The preferences it runs with.
    pub preferences: RefreshPreferences,
    /// When it was started.
    pub start_time: Time,
    /// When it ended; `None` while active.
    pub end_time: Option<Time>,
    /// Instances the group had at the start (the ones to replace).
    pub instances_total: u32,
    /// Of those, how many are still in service, waiting for their replacement.
    pub instances_to_update: u32,
    /// Share of `instances_total` replaced so far, 0..=100.
    pub percentage_complete: u32,
    /// The launch template version the refresh rolls out (the group's when it started).
    pub launch_template_version: u64,
    /// The version a rollback returns to: the newest older version among the instances it
    /// started with; `None` when they all already had the new one.
    pub previous_launch_template_version: Option<u64>,
    /// Until when the refresh waits at a checkpoint; `None` when it is not at one.
    pub checkpoint_until: Option<Time>,
    /// Why it is rolling back (or rolled back), once a new instance failed.
    pub rollback_reason: Option<String>,
}

/// Why an instance refresh request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// Only one refresh runs at a time (AWS `InstanceRefreshInProgress`).
    #[error("instance refresh {id} is already in progress; cancel it or wait for it to end")]
    InProgress {
        /// The running refresh.
        id: String,
    },
    /// `min_healthy_percentage` must lie in 0..=100.
    #[error("min_healthy_percentage {0} is outside 0..=100")]
    MinHealthyPercentage(u32),
    /// Checkpoints must be ascending, each in 1..=100 (AWS `CheckpointPercentages`).
    #[error("checkpoint_percentages {0:?} must be ascending, each in 1..=100")]
    CheckpointPercentages(Vec<u32>),
    /// There is no active refresh to cancel (AWS `ActiveInstanceRefreshNotFound`).
    #[error("no instance refresh is in progress")]
    NotInProgress,
}

/// A refresh as the group tracks it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RefreshRun {
    info: InstanceRefresh,
    /// The instances to replace that the group still has (terminating ones included).
    to_replace: BTreeSet<InstanceId>,
    /// The activity recording the whole refresh.
    activity: u64,
    /// When it last launched or terminated for the refresh (or started).
    last_progress: Time,
    /// When a waiting step can next move on: a warm-up ending, or the stall deadline.
    wake_at: Option<Time>,
    /// How many of the checkpoints were reached (their pauses started).
    checkpoints_reached: usize,
}

impl AutoScalingGroup {
    /// Starts replacing every live instance (AWS `StartInstanceRefresh`): `cause` names who,
    /// e.g. "an operator". Refused while another refresh is active or when
    /// `min_healthy_percentage` exceeds 100. Instances launched after this call (replacements,
    /// scale-outs) already use the group's current launch template version.
    pub fn start_instance_refresh(
        &mut self,
        now: Time,
        preferences: RefreshPreferences,
        cause: impl Into<String>,
    ) -> Result<InstanceRefresh, RefreshError> {
        if preferences.min_healthy_percentage > 100 {
            return Err(RefreshError::MinHealthyPercentage(
                preferences.min_healthy_percentage,
            ));
        }
        let c = &preferences.checkpoint_percentages;
        if c.iter().any(|&p| p == 0 || p > 100) || c.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RefreshError::CheckpointPercentages(c.clone()));
        }
        if let Some(run) = self.refresh.as_ref().filter(|r| r.info.status.is_active()) {
            return Err(RefreshError::InProgress {
                id: run.info.id.clone(),
            });
        }
        let to_replace: BTreeSet<InstanceId> = self
            .members
            .iter()
            .filter(|m| m.is_live())
            .map(|m| m.instance.id.clone())
            .collect();
        let id = format!(
            "ir-{}",
            self.ids.next_id().as_str().trim_start_matches("i-")
        );
        let total = u32::try_from(to_replace.len()).unwrap_or(u32::MAX);
        let version = self.spec.launch_template_version;
        let previous = self
            .members
            .iter()
            .filter(|m| to_replace.contains(&m.instance.id))
            .map(|m| m.instance.launch_template_version)
            .filter(|&v| v != version)
            .max();
        let activity = self.activities.record(
            now,
            format!(
                "{} started instance refresh {id} (min_healthy_percentage {}, instance_warmup \
                 {:?})",
                cause.into(),
                preferences.min_healthy_percentage,
                preferences.instance_warmup
            ),
            format!(
                "Instance refresh {id}: replacing {total} instance(s) of group {}",
                self.spec.name
            ),
            ActivityStatus::InProgress,
        );
        self.refresh = Some(RefreshRun {
            info: InstanceRefresh {
                id,
                status: RefreshStatus::Pending,
                status_reason: "waiting to start".to_string(),
                preferences,
                start_time: now,
                end_time: None,
                instances_total: total,
                instances_to_update: total,
                percentage_complete: if total == 0 { 100 } else { 0 },
                launch_template_version: version,
                previous_launch_template_version: previous,
                checkpoint_until: None,
                rollback_reason: None,
            },
            to_replace,
            activity,
            last_progress: now,
            wake_at: None,
            checkpoints_reached: 0,
        });
        self.reconcile(now);
        self.instance_refresh()
            .cloned()
            .ok_or(RefreshError::NotInProgress)
    }

    /// Stops the active refresh (AWS `CancelInstanceRefresh`): no further replacements;
    /// instances already replaced stay, terminations already started finish, and a replacement
    /// launched ahead of its old instance becomes ordinary capacity (scale-in trims the extra).
    pub fn cancel_instance_refresh(
        &mut self,
        now: Time,
        cause: impl Into<String>,
    ) -> Result<InstanceRefresh, RefreshError> {
        let Some(mut run) = self.refresh.take_if(|r| r.info.status.is_active()) else {
            return Err(RefreshError::NotInProgress);
        };
        let replaced = run
            .info
            .instances_total
            .saturating_sub(run.info.instances_to_update);
        let reason = format!(
            "{} cancelled it after {replaced} of {} instance(s) were replaced; those stay",
            cause.into(),
            run.info.instances_total
        );
        self.finish_refresh(now, &mut run, RefreshStatus::Cancelled, reason);
        let info = run.info.clone();
        self.refresh = Some(run);
        self.reconcile(now);
        Ok(info)
    }

    /// The latest instance refresh (active or ended), if one was ever started.
    pub fn instance_refresh(&self) -> Option<&InstanceRefresh> {
        self.refresh.as_ref().map(|r| &r.info)
    }

    pub(super) fn refresh_is_active(&self) -> bool {
        self.refresh
            .as_ref()
            .is_some_and(|r| r.info.status.is_active())
    }

    /// When the active refresh wants `handle_timeout`.
    pub(super) fn refresh_wake_at(&self) -> Option<Time> {
        self.refresh
            .as_ref()
            .filter(|r| r.info.status.is_active())
            .and_then(|r| r.wake_at)
    }

    /// Moves the active refresh on as far as the group's state allows (part of `reconcile`).
    pub(super) fn refresh_step(&mut self, now: Time) {
        let Some(mut run) = self.refresh.take() else {
            return;
        };
        if run.info.status.is_active() {
            self.advance_refresh(now, &mut run);
            let remaining = self.old_live(&run);
            run.info.instances_to_update = remaining;
            run.info.percentage_complete = if matches!(
                run.info.status,
                RefreshStatus::Successful | RefreshStatus::RollbackSuccessful
            ) {
                100
            } else {
                percent_replaced(run.info.instances_total, remaining)
            };
        }
        self.refresh = Some(run);
    }

    fn advance_refresh(&mut self, now: Time, run: &mut RefreshRun) {
        run.wake_at = None;
        if let Some(p) = [ScalingProcess::Launch, ScalingProcess::Terminate]
            .into_iter()
            .find(|p| self.is_suspended(*p))
        {
            run.info.status_reason = format!("paused: the {p} process is suspended");
            return;
        }
        if run.info.status == RefreshStatus::Pending {
            run.info.status = RefreshStatus::InProgress;
        }
        let rolling_back = run.info.status == RefreshStatus::RollbackInProgress;
        let members = &self.members;
        run.to_replace
            .retain(|id| members.iter().any(|m| m.instance.id == *id));
        let warmup = run.info.preferences.instance_warmup;

        // Replacements launched ahead that are now warm: their old instances go.
        let warm: Vec<(InstanceId, InstanceId)> = self
            .members
            .iter()
            .filter(|m| m.is_warm(now, warmup))
            .filter_map(|m| match &m.surge {
                Some(Surge::Refresh { replaces }) => {
                    Some((m.instance.id.clone(), replaces.clone()))
                }
                _ => None,
            })
            .collect();
        for (new_id, old_id) in warm {
            if let Some(i) = self.index_of(&new_id) {
                self.members[i].surge = None;
            }
            let victim = self
                .index_of(&old_id)
                .filter(|&i| is_old_live(run, &self.members[i]))
                .or_else(|| self.choose_old(now, run));
            if let Some(v) = victim {
                let detail = format!("its replacement {new_id} is healthy and warm");
                self.terminate_old(now, run, v, &detail);
            }
            run.last_progress = now;
        }

        if now >= run.last_progress + STALL_TIMEOUT {
            let reason = format!(
                "nothing could be replaced for {STALL_TIMEOUT:?} (last: {})",
                run.info.status_reason
            );
            let status = if rolling_back {
                RefreshStatus::RollbackFailed
            } else {
                RefreshStatus::Failed
            };
            self.finish_refresh(now, run, status, reason);
            return;
        }
        let stall_at = run.last_progress + STALL_TIMEOUT;
        let mut grace_wake = None;
        if !rolling_back && run.info.preferences.auto_rollback {
            match self.new_instance_failing_checks(now, run) {
                Ok(wake) => grace_wake = wake,
                Err(id) => {
                    let reason = format!(
                        "new instance {id} failed its health checks (its target group still \
                         reports it unhealthy after the {:?} grace period)",
                        self.spec.health_check_grace_period
                    );
                    self.start_rollback(now, run, reason);
                    // Now rolling back (or failed): take the rollback's first step at once.
                    if run.info.status.is_active() {
                        self.advance_refresh(now, run);
                    }
                    return;
                }
            }
        }
        if let Some((reason, warm_at)) = self.refresh_wait(now, run, warmup) {
            run.info.status_reason = reason;
            run.wake_at = [warm_at, grace_wake, Some(stall_at)]
                .into_iter()
                .flatten()
                .min();
            return;
        }
        if run.to_replace.is_empty() {
            let (status, reason) = if rolling_back {
                let reason = run.info.rollback_reason.as_deref().unwrap_or("");
                let version = self.spec.launch_template_version;
                let what = match run.info.instances_total {
                    0 => format!("no instance had to be replaced; new ones use version {version}"),
                    n => format!("all {n} instance(s) run launch template version {version} again"),
                };
                (
                    RefreshStatus::RollbackSuccessful,
                    format!("rolled back ({reason}): {what}"),
                )
            } else {
                (
                    RefreshStatus::Successful,
                    format!("all {} instance(s) were replaced", run.info.instances_total),
                )
            };
            self.finish_refresh(now, run, status, reason);
            return;
        }
        let old_live = self.old_live(run);
        if !rolling_back && self.at_checkpoint(now, run, old_live) {
            return;
        }
        if old_live == 0 {
            run.info.status_reason = format!(
                "waiting for {} replaced instance(s) to finish terminating",
                run.to_replace.len()
            );
            run.wake_at = Some(stall_at);
            return;
        }

        let p = run.info.preferences.min_healthy_percentage;
        let floor = (p as usize * self.desired as usize).div_ceil(100);
        let healthy = self
            .members
            .iter()
            .filter(|m| m.is_healthy_in_service())
            .count();
        let room = healthy.saturating_sub(floor).min(old_live as usize);
        if room > 0 {
            // Terminate-first, within the floor; the capacity difference launches replacements.
            let mut replaced = Vec::new();
            for _ in 0..room {
                let Some(v) = self.choose_old(now, run) else {
                    break;
                };
                replaced.push(self.members[v].instance.id.to_string());
                let detail = format!(
                    "at least {floor} instance(s) stay healthy (min_healthy_percentage {p})"
                );
                self.terminate_old(now, run, v, &detail);
            }
            self.pending_cause = Some(format!(
                "instance refresh {}: replacing {}",
                run.info.id,
                replaced.join(", ")
            ));
            run.info.status_reason = format!(
                "replacing {} instance(s) while at least {floor} stay healthy",
                replaced.len()
            );
        } else {
            // No room under the floor: launch the replacement first, in the old one's zone.
            let Some(v) = self.choose_old(now, run) else {
                return;
            };
            let old = &self.members[v].instance;
            let (old_id, old_zone, from) = (
                old.id.clone(),
                old.zone.clone(),
                old.launch_template_version,
            );
            let zone = if self.zones_in_service().contains(&old_zone) {
                Some(old_zone)
            } else {
                self.placement_zone(now)
            };
            let Some(zone) = zone else {
                run.info.status_reason = "waiting for a zone that takes launches".to_string();
                run.wake_at = Some(stall_at);
                return;
            };
            let cause = format!(
                "instance refresh {}: launching a replacement for {old_id} before terminating \
                 it ({}), to keep at least {floor} instance(s) healthy (min_healthy_percentage \
                 {p})",
                run.info.id,
                version_change(from, self.spec.launch_template_version)
            );
            let new_id = self.launch_in(
                now,
                zone,
                cause,
                Some(Surge::Refresh {
                    replaces: old_id.clone(),
                }),
            );
            run.info.status_reason = format!(
                "launched {new_id} to replace {old_id}; waiting for it to be healthy and warm"
            );
        }
        run.last_progress = now;
        run.wake_at = Some(now + STALL_TIMEOUT);
    }

    /// A new instance its target groups still call unhealthy once its grace period is over
    /// (`Err`: it failed — also in a group whose health check type is `process`, which would
    /// not replace it and the refresh would only wait); else when the earliest grace period of
    /// one they call unhealthy now ends.
    fn new_instance_failing_checks(
        &self,
        now: Time,
        run: &RefreshRun,
    ) -> Result<Option<Time>, InstanceId> {
        let grace = self.spec.health_check_grace_period;
        let mut wake: Option<Time> = None;
        for m in self.members.iter().filter(|m| {
            m.is_live()
                && m.target_unhealthy
                && m.instance.launch_template_version == run.info.launch_template_version
                && !run.to_replace.contains(&m.instance.id)
        }) {
            match m.grace_end(grace) {
                Some(end) if now >= end => return Err(m.instance.id.clone()),
                Some(end) => wake = Some(wake.map_or(end, |t| t.min(end))),
                None => {}
            }
        }
        Ok(wake)
    }

    /// Why the refresh cannot take its next step yet, and when a warm-up ends (the earliest
    /// time waiting could be over without another event); `None` when it can.
    fn refresh_wait(
        &self,
        now: Time,
        run: &RefreshRun,
        warmup: Duration,
    ) -> Option<(String, Option<Time>)> {
        if let Some(m) = self
            .members
            .iter()
            .find(|m| m.instance.lifecycle.is_launching())
        {
            return Some((
                format!("waiting for instance {} to launch", m.instance.id),
                None,
            ));
        }
        // One surge at a time: an AZRebalance move under way finishes first.
        if let Some(m) = self
            .members
            .iter()
            .find(|m| matches!(m.surge, Some(super::Surge::Rebalance { .. })))
        {
            return Some((
                format!(
                    "waiting for AZRebalance to finish moving instance {}",
                    m.instance.id
                ),
                None,
            ));
        }
        let waiting: Vec<&super::Member> = self
            .members
            .iter()
            .filter(|m| {
                m.is_live() && !run.to_replace.contains(&m.instance.id) && !m.is_warm(now, warmup)
            })
            .collect();
        if let Some(first) = waiting.first() {
            let warm_at = waiting
                .iter()
                .filter_map(|m| m.healthy_at.map(|t| t + warmup))
                .min();
            return Some((
                format!(
                    "waiting for instance {} to be healthy and warm ({warmup:?} warm-up)",
                    first.instance.id
                ),
                warm_at,
            ));
        }
        if self.capacity_count() < self.desired as usize {
            return Some((
                "waiting for the group to reach its desired capacity".to_string(),
                None,
            ));
        }
        None
    }

    /// The next old instance to replace: the zone with the most old instances first, then the
    /// termination policies.
    fn choose_old(&self, now: Time, run: &RefreshRun) -> Option<usize> {
        self.choose_victim_among(now, None, |m| is_old_live(run, m))
    }

    fn terminate_old(&mut self, now: Time, run: &RefreshRun, i: usize, detail: &str) {
        let old = &self.members[i].instance;
        let cause = format!(
            "instance refresh {}: replacing {} ({}); {detail}",
            run.info.id,
            old.id,
            version_change(
                old.launch_template_version,
                self.spec.launch_template_version
            )
        );
        self.start_terminating(now, i, cause);
    }

    fn finish_refresh(
        &mut self,
        now: Time,
        run: &mut RefreshRun,
        status: RefreshStatus,
        reason: String,
    ) {
        run.info.status = status;
        run.info.end_time = Some(now);
        run.wake_at = None;
        let activity_status = match status {
            RefreshStatus::Successful => ActivityStatus::Successful,
            RefreshStatus::Cancelled => ActivityStatus::Cancelled,
            _ => ActivityStatus::Failed,
        };
        self.activities.finish(
            run.activity,
            now,
            activity_status,
            Some(&format!(" — {} ({reason})", status.as_str())),
        );
        run.info.status_reason = reason;
        if status == RefreshStatus::Successful {
            // AWS replaces the warm pool after the in-service instances: pool instances older
            // than the refresh go, and the pool refills with fresh ones.
            while let Some(i) = self
                .members
                .iter()
                .position(|m| m.in_warm_pool() && m.instance.launched_at < run.info.start_time)
            {
                let cause = format!(
                    "instance refresh {} replaced the in-service instances; replacing warm pool \
                     instance {} too",
                    run.info.id, self.members[i].instance.id
                );
                self.start_terminating(now, i, cause);
            }
        }
        run.info.checkpoint_until = None;
        let what = format!("ended ({})", status.as_str());
        self.settle_refresh_surges(now, run, &what);
    }

    /// A replacement launched ahead of its old instance, when the refresh ends or turns into a
    /// rollback: once healthy it is ordinary capacity (scale-in trims the extra); before, it is
    /// the extra, and it goes (so that trimming never takes a healthy instance for an unproven
    /// one).
    fn settle_refresh_surges(&mut self, now: Time, run: &RefreshRun, what: &str) {
        let surges: Vec<(usize, bool)> = (0..self.members.len())
            .filter(|&i| matches!(self.members[i].surge, Some(Surge::Refresh { .. })))
            .map(|i| (i, self.members[i].is_healthy_in_service()))
            .collect();
        for &(i, healthy) in surges.iter().rev() {
            self.members[i].surge = None;
            let id = self.members[i].instance.id.clone();
            let why = format!(
                "instance refresh {} {what} with {id} launched ahead of the instance it was \
                 to replace",
                run.info.id
            );
            if healthy {
                self.pending_cause = Some(why);
            } else {
                self.start_terminating(now, i, format!("{why}; it is not healthy yet"));
            }
        }
    }
}

impl AutoScalingGroup {
    /// Whether the refresh is paused at a checkpoint (entering one when the replaced share
    /// just reached it); sets the reason and the wake-up time when it is.
    fn at_checkpoint(&mut self, now: Time, run: &mut RefreshRun, old_live: u32) -> bool {
        if let Some(until) = run.info.checkpoint_until {
            if now < until {
                run.wake_at = Some(until);
                return true;
            }
            run.info.checkpoint_until = None;
        }
        let total = run.info.instances_total;
        if total == 0 {
            return false;
        }
        let done = percent_replaced(total, old_live);
        let checkpoints = &run.info.preferences.checkpoint_percentages;
        let reached = checkpoints.iter().take_while(|&&c| c <= done).count();
        if reached <= run.checkpoints_reached {
            return false;
        }
        run.checkpoints_reached = reached;
        let checkpoint = checkpoints[reached - 1];
        let delay = run.info.preferences.checkpoint_delay;
        let until = now + delay;
        run.info.checkpoint_until = Some(until);
        // The pause is not a stall.
        run.last_progress = until;
        run.wake_at = Some(until);
        run.info.status_reason = format!(
            "at checkpoint {checkpoint}% ({done}% replaced): waiting {delay:?} before going on \
             (cancel to stop here)"
        );
        self.activities.record(
            now,
            format!(
                "instance refresh {} reached its checkpoint at {checkpoint}% ({done}% of {total} \
                 instance(s) replaced)",
                run.info.id
            ),
            format!("Instance refresh {}: pausing for {delay:?}", run.info.id),
            ActivityStatus::Successful,
        );
        true
    }

    /// A new instance failed (`what`: its launch, its process or its health checks). With
    /// `auto_rollback` the running refresh becomes a rollback to the previous launch template
    /// version; with nothing to go back to it fails. Old instances failing do not count, nor
    /// do instances killed by a drill (they are not failures of the new version).
    pub(super) fn refresh_saw_failure(
        &mut self,
        now: Time,
        id: &InstanceId,
        version: u64,
        what: &str,
    ) {
        let Some(mut run) = self.refresh.take() else {
            return;
        };
        if run.info.status == RefreshStatus::InProgress
            && run.info.preferences.auto_rollback
            && version == run.info.launch_template_version
            && !run.to_replace.contains(id)
        {
            let reason = format!("new instance {id} {what}");
            self.start_rollback(now, &mut run, reason);
        }
        self.refresh = Some(run);
    }

    fn start_rollback(&mut self, now: Time, run: &mut RefreshRun, reason: String) {
        let Some(previous) = run.info.previous_launch_template_version else {
            let why = format!(
                "{reason}, and there is no earlier launch template version to roll back to"
            );
            self.finish_refresh(now, run, RefreshStatus::Failed, why);
            return;
        };
        self.settle_refresh_surges(now, run, "is rolling back");
        let new_version = run.info.launch_template_version;
        self.spec.launch_template_version = previous;
        run.to_replace = self
            .members
            .iter()
            .filter(|m| m.is_live() && m.instance.launch_template_version == new_version)
            .map(|m| m.instance.id.clone())
            .collect();
        let total = u32::try_from(run.to_replace.len()).unwrap_or(u32::MAX);
        run.info.status = RefreshStatus::RollbackInProgress;
        run.info.instances_total = total;
        run.info.instances_to_update = total;
        run.info.percentage_complete = if total == 0 { 100 } else { 0 };
        run.info.checkpoint_until = None;
        run.info.status_reason =
            format!("rolling back to launch template version {previous}: {reason}");
        run.info.rollback_reason = Some(reason.clone());
        run.last_progress = now;
        self.pending_cause = Some(format!(
            "instance refresh {} is rolling back ({reason})",
            run.info.id
        ));
        self.activities.record(
            now,
            format!(
                "instance refresh {} rolls back automatically because {reason}",
                run.info.id
            ),
            format!(
                "Rolling back instance refresh {}: {total} instance(s) of version {new_version} \
                 go back to version {previous}",
                run.info.id
            ),
            ActivityStatus::Successful,
        );
    }
}

impl AutoScalingGroup {
    /// How many of the instances the refresh has to replace are still serving.
    fn old_live(&self, run: &RefreshRun) -> u32 {
        let n = self.members.iter().filter(|m| is_old_live(run, m)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The share (0..=100) of `total` instances replaced while `remaining` still serve.
fn percent_replaced(total: u32, remaining: u32) -> u32 {
    (total.saturating_sub(remaining) * 100)
        .checked_div(total)
        .map_or(100, |p| p.min(100))
}

/// Whether the member is one the refresh still has to replace and it is still serving.
fn is_old_live(run: &RefreshRun, m: &super::Member) -> bool {
    run.to_replace.contains(&m.instance.id) && m.is_live() && m.surge.is_none()
}

/// "launch template version 1 → 2", or "launch template version 2, unchanged".
fn version_change(from: u64, to: u64) -> String {
    if from == to {
        format!("launch template version {to}, unchanged")
    } else {
        format!("launch template version {from} → {to}")
    }
}
