//! What happens to one instance: launched, failed, exited, healthy or not, drained; each moves it
//! along the lifecycle drawn in the module above.

use super::*;

impl AutoScalingGroup {
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
    pub(super) fn begin_service(&mut self, now: Time, i: usize) {
        if self.start_hooks(now, i, LifecycleTransition::Launching) {
            self.members[i].instance.lifecycle = LifecycleState::PendingWait;
            self.lifecycle_changes += 1;
        } else {
            self.enter_service(now, i);
        }
    }

    /// Member `i` goes InService: registered with the target groups, its grace period starts.
    pub(super) fn enter_service(&mut self, now: Time, i: usize) {
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
    pub(super) fn after_drain(&mut self, now: Time, i: usize) {
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
    pub(super) fn stop_or_return(&mut self, now: Time, i: usize) {
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
}
