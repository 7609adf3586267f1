//! Spot interruptions (AWS §7.4): a notice names the moment EC2 takes a Spot instance back.
//! The group drains the instance in time — when its replacement is healthy (Capacity
//! Rebalancing: the replacement launches at the notice) or, at the latest, its target groups'
//! deregistration delay plus its stop timeout before the deadline (then the replacement
//! launches as it leaves) — and at the deadline the instance is gone, stopped or not.

use std::time::Duration;

use super::{ActivityStatus, AutoScalingGroup, GroupAction, InstanceHealth, LifecycleState};
use super::{Member, Stopping};
use crate::id::InstanceId;
use crate::pricing::PurchaseOption;
use crate::time::Time;

/// A Spot instance's interruption notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Interruption {
    /// When EC2 takes it back.
    pub(super) deadline: Time,
    /// Capacity Rebalancing replaced it at the notice: it no longer counts as capacity.
    pub(super) rebalanced: bool,
    /// The deadline passed and the instance was killed.
    pub(super) reclaimed: bool,
}

/// Why a Spot interruption notice was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpotError {
    /// No such instance in the group.
    #[error("no instance `{0}`")]
    NoInstance(String),
    /// Only Spot instances are interrupted.
    #[error("instance {0} is {1}, not spot: only Spot instances get interruption notices")]
    NotSpot(String, PurchaseOption),
    /// The instance is already leaving.
    #[error("instance {0} is not in service (it is terminating or in the warm pool)")]
    NotInService(String),
    /// A notice is already running.
    #[error("instance {0} already has an interruption notice")]
    AlreadyNoticed(String),
}

impl Member {
    /// The member's next drain start (`lead` before the deadline) or, once it stops, its
    /// deadline, while a Spot interruption notice it got is not yet reclaimed.
    pub(super) fn spot_wake_at(&self, lead: Duration) -> Option<Time> {
        let int = self.interruption.filter(|i| !i.reclaimed)?;
        match self.stopping {
            Stopping::No => self.drain_at(lead),
            _ => Some(int.deadline),
        }
    }

    /// When the interrupted member must start draining: `lead` before its deadline.
    fn drain_at(&self, lead: Duration) -> Option<Time> {
        let i = self.interruption?;
        Some(Time::ZERO + i.deadline.as_duration().saturating_sub(lead))
    }
}

impl AutoScalingGroup {
    /// A Spot interruption notice for `id`: EC2 takes it back at `now + notice`. Recorded as
    /// an activity with `cause`; with Capacity Rebalancing its replacement launches at once.
    /// Returns the deadline.
    pub fn interrupt_spot(
        &mut self,
        now: Time,
        id: &InstanceId,
        notice: Duration,
        cause: &str,
    ) -> Result<Time, SpotError> {
        let i = self
            .index_of(id)
            .ok_or_else(|| SpotError::NoInstance(id.to_string()))?;
        let rebalance = self
            .spec
            .instances_distribution
            .is_some_and(|d| d.capacity_rebalance);
        let m = &mut self.members[i];
        if m.instance.purchase_option != PurchaseOption::Spot {
            return Err(SpotError::NotSpot(
                id.to_string(),
                m.instance.purchase_option,
            ));
        }
        if !m.is_live() || m.stopping != Stopping::No {
            return Err(SpotError::NotInService(id.to_string()));
        }
        if m.interruption.is_some() {
            return Err(SpotError::AlreadyNoticed(id.to_string()));
        }
        let deadline = now + notice;
        m.interruption = Some(Interruption {
            deadline,
            rebalanced: rebalance,
            reclaimed: false,
        });
        let zone = m.instance.zone.clone();
        let secs = notice.as_secs();
        let then = if rebalance {
            "capacity rebalance launches its replacement now and drains it once the replacement \
             is healthy"
        } else {
            "it is drained before the deadline and replaced as it leaves"
        };
        self.activities.record(
            now,
            format!("{cause}: spot instance {id} is reclaimed in {secs} s; {then}"),
            format!("Spot interruption notice: {id} in {zone}"),
            ActivityStatus::Successful,
        );
        if rebalance {
            self.pending_cause = Some(format!(
                "capacity rebalance: spot instance {id} is reclaimed in {secs} s"
            ));
        }
        if self.reconciled {
            self.reconcile(now);
        }
        Ok(deadline)
    }

    /// Drains interrupted instances whose time has come and takes back the ones whose
    /// deadline passed. Part of every reconcile.
    pub(super) fn spot_step(&mut self, now: Time) {
        let lead = self.spec.interruption_drain;
        let desired = self.desired as usize;
        let replacements_ready = self
            .members
            .iter()
            .filter(|m| m.is_capacity() && m.is_healthy_in_service())
            .count()
            >= desired;
        for i in 0..self.members.len() {
            let m = &self.members[i];
            let Some(int) = m.interruption else { continue };
            if int.reclaimed {
                continue;
            }
            if now >= int.deadline {
                self.reclaim(now, i);
                continue;
            }
            if m.stopping != Stopping::No {
                continue;
            }
            let due = m.drain_at(lead).is_some_and(|t| now >= t);
            if !(due || (int.rebalanced && replacements_ready)) {
                continue;
            }
            let id = m.instance.id.clone();
            let left = int.deadline.saturating_since(now).as_secs();
            let why = if due {
                format!("its deadline is {left} s away")
            } else {
                "its replacement is healthy".to_string()
            };
            let cause =
                format!("spot instance {id} is taken out of service before it is reclaimed: {why}");
            if !int.rebalanced {
                self.pending_cause = Some(format!("{cause} — replacing it"));
            }
            self.start_terminating(now, i, cause);
        }
    }

    /// The deadline came: EC2 has the instance back, whatever it was doing (SIGKILL, even
    /// after a stop signal it has not answered).
    fn reclaim(&mut self, now: Time, i: usize) {
        let has_tg = self.spec.has_target_groups;
        let m = &mut self.members[i];
        match m.interruption.as_mut() {
            Some(int) if !int.reclaimed => int.reclaimed = true,
            _ => return,
        }
        let id = m.instance.id.clone();
        let registered = has_tg
            && m.instance.lifecycle == LifecycleState::InService
            && m.stopping == Stopping::No;
        if m.terminate_activity.is_none() {
            m.terminate_activity = Some(self.activities.record(
                now,
                format!("spot instance {id} was reclaimed at its interruption deadline"),
                format!("Terminating instance: {id} in {}", m.instance.zone),
                ActivityStatus::InProgress,
            ));
        }
        m.instance.lifecycle = LifecycleState::Terminating;
        self.lifecycle_changes += 1;
        m.instance.health = InstanceHealth::Unhealthy;
        m.stopping = Stopping::Killing;
        if registered {
            self.actions
                .push_back(GroupAction::DeregisterTargets { id: id.clone() });
        }
        self.actions.push_back(GroupAction::Kill { id });
    }

    /// The live instances' purchase options: (On-Demand, Spot), capacity only.
    pub(super) fn capacity_split(&self) -> (u32, u32) {
        let mut split = (0, 0);
        for m in self.members.iter().filter(|m| m.is_capacity()) {
            match m.instance.purchase_option {
                PurchaseOption::OnDemand => split.0 += 1,
                PurchaseOption::Spot => split.1 += 1,
            }
        }
        split
    }

    /// The purchase option of the next launch toward capacity (AWS mixed instances policy).
    pub(super) fn next_purchase_option(&self) -> PurchaseOption {
        match self.spec.instances_distribution {
            Some(d) => {
                let (od, spot) = self.capacity_split();
                d.next_launch(od, spot)
            }
            None => PurchaseOption::OnDemand,
        }
    }

    /// The purchase option scale-in should take, to keep the distribution's split.
    pub(super) fn scale_in_preference(&self) -> Option<PurchaseOption> {
        let d = self.spec.instances_distribution?;
        let (od, spot) = self.capacity_split();
        d.next_scale_in(od, spot)
    }

    /// The instance's interruption deadline, if it has a notice.
    pub fn interruption_deadline(&self, id: &InstanceId) -> Option<Time> {
        self.index_of(id)
            .and_then(|i| self.members[i].interruption)
            .map(|int| int.deadline)
    }

    /// Every instance under an interruption notice, with its deadline (one pass: asking
    /// [`interruption_deadline`](Self::interruption_deadline) per instance is quadratic).
    pub fn interruption_deadlines(&self) -> impl Iterator<Item = (&InstanceId, Time)> {
        self.members
            .iter()
            .filter_map(|m| Some((&m.instance.id, m.interruption?.deadline)))
    }
}
