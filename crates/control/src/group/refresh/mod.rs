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

mod advance;
mod rollback;

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
