//! Scale-in: which member goes (zone balance, then the termination policies) and how it is
//! taken out of service.

use super::*;

impl AutoScalingGroup {
    /// The scale-in victim: zone balance, then the termination policies, among the live
    /// capacity not protected from scale-in.
    pub(super) fn choose_victim(&self, now: Time) -> Option<usize> {
        let prefer = self.scale_in_preference();
        self.choose_victim_among(now, prefer, |m| {
            m.is_capacity() && !m.instance.protected_from_scale_in
        })
    }

    /// [`choose_victim`](Self::choose_victim)'s rules applied to the members `eligible` admits;
    /// inside the zone chosen, instances bought as `prefer` go first (a mixed instances group
    /// keeps its split).
    pub(super) fn choose_victim_among(
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
    pub(super) fn start_terminating(&mut self, now: Time, i: usize, cause: String) {
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
