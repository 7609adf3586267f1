//! Replacing unhealthy instances (AWS §5.3): terminate, then launch a replacement, at most
//! max(1, 10 % of desired) at a time, the next batch once the new instances passed their
//! initial health check.
//!
//! A replacement counts against the batch until its *new* instance is healthy, not until the
//! old one is gone: an old instance whose host cannot confirm the stop (cluster mode: its
//! agent died with it, and the host's lease has not expired yet) would otherwise hold the batch
//! until the host is declared lost, while the group's other dead instances wait. What keeps a
//! group-wide failure from wiping the group out is unchanged: replacements that do not become
//! healthy (the application itself is broken, or a whole zone is cut off from the balancers)
//! never free their slot, so the next instance waits for the old one's exit as before.

use super::{AutoScalingGroup, InstanceHealth, ScalingProcess, Stopping};
use crate::time::Time;

impl AutoScalingGroup {
    /// How many unhealthy instances may be in replacement at once: max(1, 10 % of desired).
    pub(super) fn replace_limit(&self) -> usize {
        (self.desired as usize / 10).max(1)
    }

    /// Replacements still in the batch: old instances being replaced that cannot be matched
    /// with an instance launched since they were picked that is healthy in service (each new
    /// instance matches one old one, oldest pick first).
    pub(super) fn replacements_in_flight(&self) -> usize {
        // Asked after every event (poll_timeout): nothing to match most of the time.
        if !self.members.iter().any(|m| m.replacing) {
            return 0;
        }
        let mut fresh: Vec<Time> = self
            .members
            .iter()
            .filter(|m| m.is_healthy_in_service())
            .map(|m| m.instance.launched_at)
            .collect();
        fresh.sort_unstable();
        let mut picked: Vec<Option<Time>> = self
            .members
            .iter()
            .filter(|m| m.replacing)
            .map(|m| m.replace_since)
            .collect();
        picked.sort_unstable();
        let mut in_flight = 0;
        for since in picked {
            let matched = since.and_then(|t| fresh.iter().position(|l| *l >= t));
            match matched {
                Some(i) => {
                    fresh.remove(i);
                }
                None => in_flight += 1,
            }
        }
        in_flight
    }

    /// Acts on unhealthy reports whose grace period has ended, replacing at most
    /// [`replace_limit`](Self::replace_limit) instances at a time so a group-wide health-check
    /// failure does not wipe out every instance at once.
    pub(super) fn replace_unhealthy(&mut self, now: Time) {
        if self.is_suspended(ScalingProcess::ReplaceUnhealthy)
            || self.is_suspended(ScalingProcess::Terminate)
        {
            return;
        }
        let grace = self.spec.health_check_grace_period;
        let limit = self.replace_limit();
        loop {
            let in_flight = self.replacements_in_flight();
            if in_flight >= limit {
                return;
            }
            let due = self.members.iter().position(|m| {
                m.unhealthy_report.is_some()
                    && m.stopping == Stopping::No
                    && m.grace_end(grace).is_some_and(|t| now >= t)
            });
            let Some(i) = due else { return };
            let m = &mut self.members[i];
            let reason = m.unhealthy_report.take().unwrap_or_default();
            m.instance.health = InstanceHealth::Unhealthy;
            m.replacing = true;
            m.replace_since = Some(now);
            let cause = format!(
                "instance {} was taken out of service because its target group health check \
                 failed: {reason} — replacing it",
                m.instance.id
            );
            let (id, version) = (m.instance.id.clone(), m.instance.launch_template_version);
            self.pending_cause = Some(cause.clone());
            self.start_terminating(now, i, cause);
            let what = format!("failed its health checks ({reason})");
            self.refresh_saw_failure(now, &id, version, &what);
        }
    }
}
