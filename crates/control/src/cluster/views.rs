//! Read-only views for the operator surface: what the API, the CLI and the dashboard show.

use crate::controller::ScalingController;
use crate::group::{AutoScalingGroup, Instance};
use crate::health::TargetGroupHealth;
use crate::id::InstanceId;
use crate::zones::ZoneDrills;

use super::forwards::ForwardStatus;
use super::spec::{AutoScalingGroupConfig, RuleKey};
use super::Cluster;

/// One group as the operator surface reads it.
#[derive(Clone, Copy, Debug)]
pub struct GroupView<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its machine: instances, activities, refresh, warm pool, suspended processes.
    pub asg: &'a AutoScalingGroup,
    /// Its policies' states.
    pub controller: &'a ScalingController,
    /// What the config says of it.
    pub config: &'a AutoScalingGroupConfig,
}

impl Cluster {
    /// Every group, by name.
    pub fn groups(&self) -> impl Iterator<Item = GroupView<'_>> + '_ {
        self.groups.iter().map(|(name, g)| GroupView {
            name,
            asg: &g.asg,
            controller: &g.controller,
            config: &g.config,
        })
    }

    /// One group.
    pub fn group(&self, name: &str) -> Option<GroupView<'_>> {
        let (name, g) = self.groups.get_key_value(name)?;
        Some(GroupView {
            name,
            asg: &g.asg,
            controller: &g.controller,
            config: &g.config,
        })
    }

    /// Direct access to one group's machine, for unit tests of that machine and for fault
    /// injection in simulations; a driver never needs it (its effects are picked up at the
    /// next call that pumps, e.g. [`handle_timeout`](Cluster::handle_timeout)).
    pub fn group_machine_mut(&mut self, name: &str) -> Option<&mut AutoScalingGroup> {
        self.groups.get_mut(name).map(|g| &mut *g.asg)
    }

    /// The names of the target groups.
    pub fn target_group_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.target_groups.keys().map(String::as_str)
    }

    /// A target group's health machine.
    pub fn target_group_health(&self, name: &str) -> Option<&TargetGroupHealth> {
        self.target_groups.get(name).map(|t| &t.health)
    }

    /// The zones and their drills.
    pub fn zones(&self) -> &ZoneDrills {
        &self.zones
    }

    /// An instance and its group's name.
    pub fn find_instance(&self, id: &InstanceId) -> Option<(&str, &Instance)> {
        self.groups.iter().find_map(|(name, g)| {
            g.asg
                .instances()
                .find(|i| &i.id == id)
                .map(|i| (name.as_str(), i))
        })
    }

    /// A forward action's weights and rollback.
    pub fn forward(&self, rule: &RuleKey) -> Option<ForwardStatus<'_>> {
        self.forwards.status(rule)
    }
}
