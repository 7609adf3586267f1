//! Forgetting what is gone: instances their group dropped, and the addresses no target group
//! tracks any more.

use crate::id::InstanceId;

use super::effect::{Durable, Effect};
use super::Cluster;

impl Cluster {
    /// Forgets instances their group no longer has, and addresses no target group lists.
    pub(super) fn collect_garbage(&mut self) {
        if self.garbage {
            self.collect_all_garbage();
            return;
        }
        // Exactly the instances the groups dropped: a pass over every instance per removal
        // made a lost host's replacements cost milliseconds each at 10,000.
        let mut gone = Vec::new();
        for (name, g) in self.groups.iter_mut() {
            if !g.asg.has_removed() {
                continue; // no mutable borrow: the group's kept wake-up stays
            }
            gone.extend(
                g.asg
                    .take_removed()
                    .into_iter()
                    .map(|id| (name.clone(), id)),
            );
        }
        for (group, id) in gone {
            self.forget(&group, &id);
        }
        if !self.lingering.is_empty() {
            self.forget_lingering();
        }
    }

    /// Forgets an instance its group dropped (unless it belongs to another group).
    fn forget(&mut self, group: &str, id: &InstanceId) {
        if self.members.get(id).is_none_or(|m| m.group != group) {
            return;
        }
        let Some(m) = self.members.remove(id) else {
            return;
        };
        self.draining.remove(id);
        self.durable.remove(id);
        let Some(address) = m.address else {
            return;
        };
        self.effects
            .push_back(Effect::Persist(Durable::InstanceGone { id: id.clone() }));
        if self.by_address.get(&address) == Some(id) {
            self.lingering.push(address);
        }
    }

    /// Unmaps the addresses of forgotten instances once no target group tracks them.
    fn forget_lingering(&mut self) {
        let (members, target_groups) = (&self.members, &self.target_groups);
        let by_address = &mut self.by_address;
        self.lingering.retain(|address| {
            let Some(id) = by_address.get(address) else {
                return false;
            };
            if members.contains_key(id) {
                return false; // the address went to a new instance
            }
            let tracked = target_groups
                .values()
                .any(|tg| tg.health.state(*address).is_some());
            if !tracked {
                by_address.remove(address);
            }
            tracked
        });
    }

    /// The whole pass, after a restore or a reconfiguration (groups may have gone): every
    /// member not in its group any more is forgotten.
    fn collect_all_garbage(&mut self) {
        self.garbage = false;
        for g in self.groups.values_mut() {
            g.asg.take_removed();
        }
        self.lingering.clear();
        // One pass over the groups' instances, not one per member: at thousands of instances
        // a scan per member made every event quadratic.
        let live: crate::hashing::FastMap<&InstanceId, &str> = self
            .groups
            .iter()
            .flat_map(|(name, g)| g.asg.instances().map(move |i| (&i.id, name.as_str())))
            .collect();
        let effects = &mut self.effects;
        self.members.retain(|id, m| {
            let keep = live.get(id).is_some_and(|g| *g == m.group);
            if !keep && m.address.is_some() {
                effects.push_back(Effect::Persist(Durable::InstanceGone { id: id.clone() }));
            }
            keep
        });
        let members = &self.members;
        self.draining.retain(|id, _| members.contains_key(id));
        self.durable.retain(|id, _| members.contains_key(id));
        let target_groups = &self.target_groups;
        self.by_address.retain(|addr, id| {
            members.contains_key(id)
                || target_groups
                    .values()
                    .any(|tg| tg.health.state(*addr).is_some())
        });
    }
}
