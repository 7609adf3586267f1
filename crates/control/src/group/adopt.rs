//! Adopting instances that are already running (a restart, a new leader): they join the group
//! in the state they report, with an activity each.

use super::*;

impl AutoScalingGroup {
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
}
