//! Checkpoints (pauses at a percentage replaced) and automatic rollback on failure.

use super::*;

impl AutoScalingGroup {
    /// Whether the refresh is paused at a checkpoint (entering one when the replaced share
    /// just reached it); sets the reason and the wake-up time when it is.
    pub(super) fn at_checkpoint(&mut self, now: Time, run: &mut RefreshRun, old_live: u32) -> bool {
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
    pub(in crate::group) fn refresh_saw_failure(
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

    pub(super) fn start_rollback(&mut self, now: Time, run: &mut RefreshRun, reason: String) {
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

    /// How many of the instances the refresh has to replace are still serving.
    pub(super) fn old_live(&self, run: &RefreshRun) -> u32 {
        let n = self.members.iter().filter(|m| is_old_live(run, m)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}
