//! Keeping live instances equal to the desired capacity: which zone gets the next launch, backoff
//! after a failed one, and the launch itself.

use super::*;

impl AutoScalingGroup {
    /// Removes a pending instance whose launch failed and arms the back-off.
    pub(super) fn launch_failed(&mut self, now: Time, i: usize, note: &str) {
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
    pub(super) fn arm_launch_backoff(&mut self, now: Time, zone: String) {
        self.launch_failures = self.launch_failures.saturating_add(1);
        let exp = self.launch_failures.saturating_sub(1).min(16);
        let backoff = MIN_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
        self.launch_not_before = Some(now + backoff);
        self.zone_failed_at.retain(|(z, _)| *z != zone);
        self.zone_failed_at.push((zone, now));
    }

    /// Brings the group toward its desired state: acts on unhealthy reports whose grace ended,
    /// then launches or terminates the difference.
    pub(super) fn reconcile(&mut self, now: Time) {
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

    pub(super) fn with_pending_cause(&self, body: String) -> String {
        match &self.pending_cause {
            Some(why) => format!("{why}; {body}"),
            None => body,
        }
    }

    pub(super) fn launch_one(&mut self, now: Time, live: usize) -> bool {
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
    pub(super) fn placement_zone(&self, now: Time) -> Option<String> {
        placement::choose_zone(
            &self.zones_in_service(),
            |z| self.live_in_zone(z),
            |z| self.zone_failed_recently(now, z),
        )
        .map(str::to_string)
    }

    /// Whether a launch into `zone` failed less than [`MAX_BACKOFF`] ago: placement tries it
    /// last and AZRebalance does not move instances into it.
    pub(super) fn zone_failed_recently(&self, now: Time, zone: &str) -> bool {
        self.zone_failed_at
            .iter()
            .any(|(z, t)| z == zone && now < *t + MAX_BACKOFF)
    }

    /// Launches one instance into `zone` for the group, recording `cause`; returns its id.
    pub(super) fn launch_in(
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
    pub(super) fn launch_as(
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
}
