//! One step of a running refresh: replace old instances batch by batch while enough capacity
//! is healthy, wait for warm-up, and finish (AWS §5.8).

use super::*;

impl AutoScalingGroup {
    pub(super) fn advance_refresh(&mut self, now: Time, run: &mut RefreshRun) {
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
    pub(super) fn new_instance_failing_checks(
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
    pub(super) fn refresh_wait(
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
            .find(|m| matches!(m.surge, Some(Surge::Rebalance { .. })))
        {
            return Some((
                format!(
                    "waiting for AZRebalance to finish moving instance {}",
                    m.instance.id
                ),
                None,
            ));
        }
        let waiting: Vec<&crate::group::Member> = self
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
    pub(super) fn choose_old(&self, now: Time, run: &RefreshRun) -> Option<usize> {
        self.choose_victim_among(now, None, |m| is_old_live(run, m))
    }

    pub(super) fn terminate_old(&mut self, now: Time, run: &RefreshRun, i: usize, detail: &str) {
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

    pub(super) fn finish_refresh(
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
    pub(super) fn settle_refresh_surges(&mut self, now: Time, run: &RefreshRun, what: &str) {
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
