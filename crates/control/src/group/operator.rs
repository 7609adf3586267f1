//! Changes from outside the group's own reconciling: desired capacity (an operator, a scaling
//! policy, a scheduled action), its bounds, one instance terminated, suspended processes and
//! scale-in protection.

use super::*;

impl AutoScalingGroup {
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
}
