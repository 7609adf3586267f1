//! Operator commands (admin API, CLI, and later the AWS API and cluster peers): each is
//! checked, applied to the machine it concerns, made durable where it must survive a restart,
//! and followed by a pump so its effects are queued at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::group::{
    CapacityError, InstanceRefresh, LifecycleAction, LifecycleActionError, LifecycleActionResult,
    RefreshError, ScalingProcess,
};
use crate::id::InstanceId;
use crate::time::Time;
use crate::zones::{ZoneDrill, ZoneError, ZoneStatus};

use super::effect::{Durable, Effect};
use super::forwards::WeightsError;
use super::spec::{RefreshOverrides, RuleKey};
use super::Cluster;

/// Why an operator command was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// No group of that name.
    #[error("no auto scaling group named `{0}`")]
    NoGroup(String),
    /// No instance of that id.
    #[error("no instance with id `{0}`")]
    NoInstance(String),
    /// The instance cannot be terminated now.
    #[error("instance {0} is not in service (it is pending, unhealthy or already terminating)")]
    NotInService(String),
    /// The capacity is outside the group's bounds.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// An instance refresh cannot start or be cancelled.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// A zone drill cannot start or end.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// A lifecycle action cannot be completed or extended.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleActionError),
    /// Weights cannot be set.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A Spot interruption notice was refused.
    #[error(transparent)]
    Spot(crate::group::SpotError),
}

/// What terminating an instance did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terminated {
    /// The instance's group.
    pub group: String,
    /// The group's desired capacity afterwards.
    pub desired_capacity: u32,
    /// Whether a replacement launches (the desired capacity did not drop).
    pub replaced: bool,
}

impl Cluster {
    fn group_mut(&mut self, name: &str) -> Result<&mut super::GroupState, OperatorError> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| OperatorError::NoGroup(name.to_string()))
    }

    /// Sets a group's desired capacity (AWS `SetDesiredCapacity`); durable.
    pub fn set_desired_capacity(
        &mut self,
        now: Time,
        group: &str,
        desired: u32,
    ) -> Result<(), OperatorError> {
        let g = self.group_mut(group)?;
        // `set_desired_capacity` words the rest: "… set desired capacity from N to M".
        g.asg.set_desired_capacity(now, desired, "an operator")?;
        self.effects.push_back(Effect::Persist(Durable::Desired {
            group: group.to_string(),
            desired: Some(desired),
        }));
        self.pump(now);
        Ok(())
    }

    /// Takes an instance out of service (AWS `TerminateInstanceInAutoScalingGroup`).
    pub fn terminate_instance(
        &mut self,
        now: Time,
        id: &InstanceId,
        decrement_desired: bool,
    ) -> Result<Terminated, OperatorError> {
        let group = self
            .groups
            .iter()
            .find(|(_, g)| g.asg.instances().any(|i| &i.id == id))
            .map(|(name, _)| name.clone())
            .ok_or_else(|| OperatorError::NoInstance(id.to_string()))?;
        let g = self.group_mut(&group)?;
        let before = g.asg.desired_capacity();
        if !g
            .asg
            .terminate_instance(now, id, decrement_desired, "an operator")
        {
            return Err(OperatorError::NotInService(id.to_string()));
        }
        let desired = g.asg.desired_capacity();
        if desired != before {
            self.effects.push_back(Effect::Persist(Durable::Desired {
                group: group.clone(),
                desired: Some(desired),
            }));
        }
        self.pump(now);
        Ok(Terminated {
            group,
            desired_capacity: desired,
            replaced: desired == before,
        })
    }

    /// Sets or clears an instance's scale-in protection; returns its group. Durable.
    pub fn set_instance_protection(
        &mut self,
        now: Time,
        id: &InstanceId,
        protected: bool,
    ) -> Result<String, OperatorError> {
        let group = self
            .groups
            .iter_mut()
            .find_map(|(name, g)| {
                g.asg
                    .set_instance_protection(now, id, protected)
                    .then(|| name.clone())
            })
            .ok_or_else(|| OperatorError::NoInstance(id.to_string()))?;
        tracing::info!(group = group.as_str(), instance = %id, protected, "an operator changed scale-in protection");
        self.effects.push_back(Effect::Persist(Durable::Protection {
            id: id.clone(),
            protected,
        }));
        self.pump(now);
        Ok(group)
    }

    /// Suspends exactly `wanted` of a group's scaling processes, resuming the others (AWS
    /// `SuspendProcesses`/`ResumeProcesses`). Durable.
    pub fn set_suspended_processes(
        &mut self,
        now: Time,
        group: &str,
        wanted: &BTreeSet<ScalingProcess>,
    ) -> Result<(), OperatorError> {
        let g = self.group_mut(group)?;
        for p in ScalingProcess::ALL {
            if wanted.contains(&p) {
                g.asg.suspend_process(p);
            } else if g.asg.is_suspended(p) {
                g.asg.resume_process(now, p);
            }
        }
        let processes = g.asg.suspended_processes().collect();
        self.effects.push_back(Effect::Persist(Durable::Suspended {
            group: group.to_string(),
            processes,
        }));
        self.pump(now);
        Ok(())
    }

    /// Starts an instance refresh with the group's preferences, `overrides` applied.
    pub fn start_instance_refresh(
        &mut self,
        now: Time,
        group: &str,
        overrides: RefreshOverrides,
    ) -> Result<InstanceRefresh, OperatorError> {
        let g = self.group_mut(group)?;
        let preferences = g.config.refresh_preferences(overrides);
        let r = g
            .asg
            .start_instance_refresh(now, preferences, "an operator")?;
        self.pump(now);
        Ok(r)
    }

    /// Cancels the group's running instance refresh.
    pub fn cancel_instance_refresh(
        &mut self,
        now: Time,
        group: &str,
    ) -> Result<InstanceRefresh, OperatorError> {
        let r = self
            .group_mut(group)?
            .asg
            .cancel_instance_refresh(now, "an operator")?;
        self.pump(now);
        Ok(r)
    }

    /// Starts (`Some(duration)`) or ends (`None`) a zone outage or zonal shift drill, applied
    /// to every group and target group at once.
    pub fn zone_drill(
        &mut self,
        now: Time,
        zone: &str,
        drill: ZoneDrill,
        duration: Option<Duration>,
    ) -> Result<ZoneStatus, OperatorError> {
        let status = match duration {
            Some(d) => self.zones.start(now, zone, drill, d)?,
            None => self.zones.end(zone, drill)?,
        };
        self.pump(now);
        Ok(status)
    }

    /// Completes a waiting lifecycle action (AWS `CompleteLifecycleAction`).
    pub fn complete_lifecycle_action(
        &mut self,
        now: Time,
        group: &str,
        id: &InstanceId,
        hook: &str,
        result: LifecycleActionResult,
    ) -> Result<(), OperatorError> {
        self.group_mut(group)?
            .asg
            .complete_lifecycle_action(now, id, hook, result)?;
        tracing::info!(group, instance = %id, hook, result = result.as_str(), "lifecycle action completed");
        self.pump(now);
        Ok(())
    }

    /// Extends a waiting lifecycle action's timeout (AWS `RecordLifecycleActionHeartbeat`);
    /// returns the action as it now stands.
    pub fn record_lifecycle_action_heartbeat(
        &mut self,
        now: Time,
        group: &str,
        id: &InstanceId,
        hook: &str,
    ) -> Result<Option<LifecycleAction>, OperatorError> {
        let g = self.group_mut(group)?;
        g.asg.record_lifecycle_action_heartbeat(now, id, hook)?;
        let action = g
            .asg
            .lifecycle_actions()
            .into_iter()
            .find(|a| &a.instance_id == id && a.hook == hook);
        self.pump(now);
        Ok(action)
    }

    /// Sets (`Some`) or resets to the file's (`None`) the weights of `lb`'s forward action
    /// `rule` on the listener `listener` names (its port or bind address, needed only when
    /// several listeners have the rule). Durable. Returns the action's key.
    pub fn set_weights(
        &mut self,
        now: Time,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
        weights: Option<&BTreeMap<String, u32>>,
    ) -> Result<RuleKey, OperatorError> {
        let key = self.forwards.resolve(lb, rule, listener)?.clone();
        let o = match weights {
            Some(w) => Some(self.forwards.operator_override(&key, w)?),
            None => None,
        };
        tracing::info!(
            load_balancer = lb,
            listener = %key.listener,
            rule = key.rule().as_str(),
            weights = ?o.as_ref().map(|o| &o.weights),
            "an operator {} weights",
            if o.is_some() { "shifted" } else { "reset to the config's" }
        );
        self.forwards.set(now, &key, o, &mut self.effects);
        self.pump(now);
        Ok(key)
    }

    /// The forward action an operator names (see [`set_weights`](Self::set_weights)).
    pub fn resolve_forward(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<&RuleKey, OperatorError> {
        Ok(self.forwards.resolve(lb, rule, listener)?)
    }
}
