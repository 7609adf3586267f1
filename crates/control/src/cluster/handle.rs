//! Events from the driver: what happened to the instances and targets it runs for us.

use std::net::SocketAddr;

use crate::health::{ProbeResult, TargetState};
use crate::id::InstanceId;
use crate::time::Time;

use super::effect::{durable_state, Durable, Effect, InstanceRecord};
use super::Cluster;

impl Cluster {
    /// An instance the cluster asked for is running and listens at `address`.
    pub fn handle_launched(&mut self, now: Time, id: &InstanceId, address: SocketAddr) {
        let Some(member) = self.members.get_mut(id) else {
            return; // not ours (any more): the exit event will clean up the process
        };
        let group = member.group.clone();
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if !g.asg.instances().any(|i| &i.id == id) {
            return; // the group gave up on it meanwhile
        }
        member.address = Some(address);
        self.by_address.insert(address, id.clone());
        g.asg.handle_launched(now, id);
        if let Some(i) = g.asg.instances().find(|i| &i.id == id) {
            let lifecycle = durable_state(i.lifecycle);
            self.durable.insert(id.clone(), lifecycle);
            self.effects
                .push_back(Effect::Persist(Durable::Instance(InstanceRecord {
                    id: id.clone(),
                    group,
                    zone: i.zone.clone(),
                    address,
                    launch_template_version: i.launch_template_version,
                    protected_from_scale_in: i.protected_from_scale_in,
                    lifecycle,
                    purchase_option: i.purchase_option,
                })));
        }
        self.pump(now);
    }

    /// An instance could not be started; `reason` goes into the activity.
    pub fn handle_launch_failed(&mut self, now: Time, id: &InstanceId, reason: &str) {
        if let Some(g) = self.group_of_mut(id) {
            g.asg.handle_launch_failed(now, id, reason);
        }
        self.pump(now);
    }

    /// An instance's process ended, asked to or not; `status` says how ("exit status 1").
    pub fn handle_instance_exited(&mut self, now: Time, id: &InstanceId, status: &str) {
        if let Some(g) = self.group_of_mut(id) {
            g.asg.handle_instance_exited(now, id, status);
        }
        self.pump(now);
    }

    /// A health check the cluster asked for came back.
    pub fn handle_probe_result(
        &mut self,
        now: Time,
        target_group: &str,
        target: SocketAddr,
        result: ProbeResult,
    ) {
        if let Some(tg) = self.target_groups.get_mut(target_group) {
            tg.health.handle_probe_result(now, target, result);
        }
        self.pump(now);
    }

    /// The data plane has no request in flight to a draining target any more: its draining
    /// ends early.
    pub fn handle_target_idle(&mut self, now: Time, target_group: &str, target: SocketAddr) {
        if let Some(tg) = self.target_groups.get_mut(target_group) {
            tg.health.handle_target_idle(now, target);
        }
        self.pump(now);
    }

    /// Targets that drain now, for a driver that watches their in-flight requests and reports
    /// [`handle_target_idle`](Self::handle_target_idle).
    pub fn draining_targets(&self) -> impl Iterator<Item = (&str, SocketAddr)> + '_ {
        self.target_groups.iter().flat_map(|(name, tg)| {
            tg.health
                .targets()
                .filter(|t| t.state == TargetState::Draining)
                .map(move |t| (name.as_str(), t.target))
        })
    }

    /// The data plane holds `count` requests for `target_group` for want of a routable
    /// target; an empty group behind it scales from zero.
    pub fn handle_held_requests(&mut self, now: Time, target_group: &str, count: usize) {
        if let Some(tg) = self.target_groups.get_mut(target_group) {
            tg.held = count;
        }
        self.scale_from_zero(now);
        self.pump(now);
    }

    /// The target groups whose requests the data plane holds (see
    /// [`Effect::HoldRequests`]).
    pub fn holding_target_groups(&self) -> impl Iterator<Item = &str> + '_ {
        self.target_groups
            .iter()
            .filter(|(_, tg)| tg.holds)
            .map(|(n, _)| n.as_str())
    }
}
