//! Lifecycle hooks (AWS §7.1, `PutLifecycleHook`): an instance waits in `pending:wait` after
//! its process started and before it is registered, or in `terminating:wait` after it was
//! drained and before its stop signal, until the application completes the action (AWS
//! `CompleteLifecycleAction`) or the heartbeat timeout applies the hook's default result.
//!
//! Every hook of the transition waits at once; the instance moves on when none is left.
//! On launch, ABANDON from any hook ends the wait: the instance is terminated (no terminate
//! hooks: it never served) and replaced, with the launch back-off, as AWS throttles launches
//! after repeated hook failures. On terminate, ABANDON skips the remaining hooks; either
//! result terminates. A heartbeat (AWS `RecordLifecycleActionHeartbeat`) restarts the
//! timeout, never past the global cap of min(48 h, 100 × heartbeat timeout) from the start.

use std::time::Duration;

use super::{ActivityStatus, AutoScalingGroup, LifecycleState, Stopping};
use crate::id::InstanceId;
use crate::time::Time;

/// AWS's absolute limit on one lifecycle wait, however many heartbeats it gets.
const MAX_GLOBAL_TIMEOUT: Duration = Duration::from_secs(48 * 3600);

/// Which transition a hook holds up, as AWS `LifecycleTransition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LifecycleTransition {
    /// `autoscaling:EC2_INSTANCE_LAUNCHING`: after the process started, before it is
    /// registered (also when it enters or leaves the warm pool).
    Launching,
    /// `autoscaling:EC2_INSTANCE_TERMINATING`: after it was drained, before the stop signal.
    Terminating,
}

impl LifecycleTransition {
    /// The admin API's name: `launching` or `terminating`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleTransition::Launching => "launching",
            LifecycleTransition::Terminating => "terminating",
        }
    }
}

/// How a lifecycle action ends, as AWS `LifecycleActionResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LifecycleActionResult {
    /// Go on: a launching instance goes into service, a terminating one is stopped.
    Continue,
    /// Give up: a launching instance is terminated and replaced; a terminating one skips its
    /// remaining terminate hooks and is stopped.
    Abandon,
}

impl LifecycleActionResult {
    /// The admin API's name: `continue` or `abandon`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleActionResult::Continue => "continue",
            LifecycleActionResult::Abandon => "abandon",
        }
    }
}

/// One lifecycle hook of a group, as AWS `PutLifecycleHook` takes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleHook {
    /// Its name, unique in the group; completions and heartbeats name it.
    pub name: String,
    /// The transition it holds up.
    pub transition: LifecycleTransition,
    /// How long the instance waits without a completion or heartbeat (AWS default 3600 s).
    pub heartbeat_timeout: Duration,
    /// What happens when the timeout passes (AWS default ABANDON).
    pub default_result: LifecycleActionResult,
}

/// A lifecycle action in progress, for the admin API.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleAction {
    /// The waiting instance.
    pub instance_id: InstanceId,
    /// The hook it waits for.
    pub hook: String,
    /// The transition held up.
    pub transition: LifecycleTransition,
    /// When the default result applies unless a heartbeat or completion comes first.
    pub timeout_at: Time,
    /// What happens then.
    pub default_result: LifecycleActionResult,
}

/// Why a completion or heartbeat was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleActionError {
    /// The group has no such instance.
    #[error("the group has no instance `{0}`")]
    UnknownInstance(String),
    /// The instance is not waiting for that hook (it never was, or it already moved on).
    #[error("instance {instance} is not waiting for lifecycle hook `{hook}`")]
    NotWaiting {
        /// The instance named.
        instance: String,
        /// The hook named.
        hook: String,
    },
}

/// One hook an instance still waits for.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct HookTimer {
    hook: String,
    heartbeat_timeout: Duration,
    default_result: LifecycleActionResult,
    timeout_at: Time,
    give_up_at: Time,
}

impl HookTimer {
    fn due_at(&self) -> Time {
        self.timeout_at.min(self.give_up_at)
    }
}

/// An instance's wait in `pending:wait` or `terminating:wait`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct HookWait {
    transition: LifecycleTransition,
    timers: Vec<HookTimer>,
    abandoned: bool,
    activity: u64,
}

impl super::Member {
    /// When the member's next lifecycle hook timeout passes, while it waits on hooks.
    pub(super) fn hooks_wake_at(&self) -> Option<Time> {
        let w = self.hooks.as_ref()?;
        w.timers.iter().map(HookTimer::due_at).min()
    }
}

impl AutoScalingGroup {
    /// Starts member `i`'s wait for the group's hooks on `transition`; false when it has none
    /// (the caller moves the instance on at once).
    pub(super) fn start_hooks(
        &mut self,
        now: Time,
        i: usize,
        transition: LifecycleTransition,
    ) -> bool {
        let timers: Vec<HookTimer> = self
            .spec
            .lifecycle_hooks
            .iter()
            .filter(|h| h.transition == transition)
            .map(|h| HookTimer {
                hook: h.name.clone(),
                heartbeat_timeout: h.heartbeat_timeout,
                default_result: h.default_result,
                timeout_at: now + h.heartbeat_timeout,
                give_up_at: now + MAX_GLOBAL_TIMEOUT.min(h.heartbeat_timeout.saturating_mul(100)),
            })
            .collect();
        if timers.is_empty() {
            return false;
        }
        let m = &self.members[i];
        let names: Vec<String> = timers
            .iter()
            .map(|t| {
                format!(
                    "{} (heartbeat timeout {:?}, default result {})",
                    t.hook,
                    t.heartbeat_timeout,
                    t.default_result.as_str()
                )
            })
            .collect();
        let activity = self.activities.record(
            now,
            format!(
                "instance {} reached the {} transition, which has lifecycle hooks; complete \
                 them with POST /v1/groups/{}/lifecycle-actions",
                m.instance.id,
                transition.as_str(),
                self.spec.name
            ),
            format!(
                "Waiting for lifecycle hooks of {} in {}: {}",
                m.instance.id,
                m.instance.zone,
                names.join(", ")
            ),
            ActivityStatus::InProgress,
        );
        self.members[i].hooks = Some(HookWait {
            transition,
            timers,
            abandoned: false,
            activity,
        });
        true
    }

    /// Ends one hook's wait for an instance (AWS `CompleteLifecycleAction`); when it was the
    /// last (or an ABANDON on launch), the instance moves on at once.
    pub fn complete_lifecycle_action(
        &mut self,
        now: Time,
        id: &InstanceId,
        hook: &str,
        result: LifecycleActionResult,
    ) -> Result<(), LifecycleActionError> {
        let (i, t) = self.waiting_timer(id, hook)?;
        self.end_hook(now, i, t, result, "completed");
        self.reconcile(now);
        Ok(())
    }

    /// Restarts one hook's heartbeat timeout for an instance (AWS
    /// `RecordLifecycleActionHeartbeat`), never past the global cap; returns the new time
    /// the default result applies.
    pub fn record_lifecycle_action_heartbeat(
        &mut self,
        now: Time,
        id: &InstanceId,
        hook: &str,
    ) -> Result<Time, LifecycleActionError> {
        let i = self
            .index_of(id)
            .ok_or_else(|| LifecycleActionError::UnknownInstance(id.to_string()))?;
        let timer = self.members[i]
            .hooks
            .as_mut()
            .and_then(|w| w.timers.iter_mut().find(|t| t.hook == hook))
            .ok_or_else(|| not_waiting(id, hook))?;
        timer.timeout_at = now + timer.heartbeat_timeout;
        Ok(timer.due_at())
    }

    /// Every lifecycle action in progress, in instance order.
    pub fn lifecycle_actions(&self) -> Vec<LifecycleAction> {
        self.members
            .iter()
            .filter_map(|m| m.hooks.as_ref().map(|w| (m, w)))
            .flat_map(|(m, w)| {
                w.timers.iter().map(|t| LifecycleAction {
                    instance_id: m.instance.id.clone(),
                    hook: t.hook.clone(),
                    transition: w.transition,
                    timeout_at: t.due_at(),
                    default_result: t.default_result,
                })
            })
            .collect()
    }

    /// Applies the default result of every hook whose timeout has passed (part of
    /// `reconcile`).
    pub(super) fn hook_timeouts(&mut self, now: Time) {
        loop {
            let due = self.members.iter().enumerate().find_map(|(i, m)| {
                let w = m.hooks.as_ref()?;
                let t = w.timers.iter().position(|t| now >= t.due_at())?;
                Some((i, t, w.timers[t].default_result))
            });
            let Some((i, t, result)) = due else { return };
            self.end_hook(now, i, t, result, "timed out (default result)");
        }
    }

    /// Ends a member's wait without a result (it exited, its zone went down, or it is being
    /// terminated while it waited to launch).
    pub(super) fn cancel_hooks(&mut self, now: Time, i: usize, why: &str) {
        if let Some(w) = self.members[i].hooks.take() {
            self.activities.finish(
                w.activity,
                now,
                ActivityStatus::Cancelled,
                Some(&format!(" — {why}")),
            );
        }
    }

    fn waiting_timer(
        &self,
        id: &InstanceId,
        hook: &str,
    ) -> Result<(usize, usize), LifecycleActionError> {
        let i = self
            .index_of(id)
            .ok_or_else(|| LifecycleActionError::UnknownInstance(id.to_string()))?;
        self.members[i]
            .hooks
            .as_ref()
            .and_then(|w| w.timers.iter().position(|t| t.hook == hook))
            .map(|t| (i, t))
            .ok_or_else(|| not_waiting(id, hook))
    }

    /// Removes timer `t` of member `i`'s wait with `result`; moves the instance on when the
    /// wait is over.
    fn end_hook(
        &mut self,
        now: Time,
        i: usize,
        t: usize,
        result: LifecycleActionResult,
        how: &str,
    ) {
        let Some(w) = self.members[i].hooks.as_mut() else {
            return;
        };
        let timer = w.timers.remove(t);
        if result == LifecycleActionResult::Abandon {
            w.abandoned = true;
            // Launch: any ABANDON decides. Terminate: ABANDON skips the remaining hooks.
            w.timers.clear();
        }
        let note = format!(" — {} {how}: {}", timer.hook, result.as_str());
        if !w.timers.is_empty() {
            return;
        }
        let Some(w) = self.members[i].hooks.take() else {
            return;
        };
        let status = if w.abandoned {
            ActivityStatus::Failed
        } else {
            ActivityStatus::Successful
        };
        self.activities.finish(w.activity, now, status, Some(&note));
        self.hooks_done(now, i, w.transition, w.abandoned);
    }

    /// Moves member `i` on once its wait is over.
    fn hooks_done(
        &mut self,
        now: Time,
        i: usize,
        transition: LifecycleTransition,
        abandoned: bool,
    ) {
        let m = &self.members[i];
        let (id, zone, state) = (
            m.instance.id.clone(),
            m.instance.zone.clone(),
            m.instance.lifecycle,
        );
        match transition {
            LifecycleTransition::Launching if abandoned => {
                let cause = format!(
                    "a launch lifecycle hook of instance {id} ended with ABANDON — terminating \
                     and replacing it"
                );
                if state == LifecycleState::PendingWait {
                    self.pending_cause = Some(cause.clone());
                }
                self.arm_launch_backoff(now, zone);
                self.start_terminating(now, i, cause);
            }
            LifecycleTransition::Launching => match state {
                LifecycleState::WarmedPendingWait => {
                    self.members[i].instance.lifecycle = LifecycleState::WarmedRunning;
                    self.lifecycle_changes += 1;
                }
                _ => self.enter_service(now, i),
            },
            LifecycleTransition::Terminating => {
                if self.members[i].stopping == Stopping::Hooks {
                    self.stop_or_return(now, i);
                }
            }
        }
    }
}

fn not_waiting(id: &InstanceId, hook: &str) -> LifecycleActionError {
    LifecycleActionError::NotWaiting {
        instance: id.to_string(),
        hook: hook.to_string(),
    }
}
