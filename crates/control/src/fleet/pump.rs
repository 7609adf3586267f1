//! The cluster's effects in fleet terms: a launch becomes an assignment on the host placement
//! picks, a stop or kill a change of the assignment's state, a probe a question to the load
//! balancer nodes' votes, a routing table the assignments' registrations, and the instance
//! facts `flotilla up` keeps in SQLite the assignment's own fields.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::cluster::{Durable, Effect, LaunchRequest, RoutedTarget};
use crate::health::TargetState;
use crate::id::InstanceId;
use crate::time::Time;

use super::{Assignment, AssignmentState, Fleet, FleetEffect};

impl Fleet {
    /// Drains the cluster's effects into fleet effects until it is quiet, then writes the
    /// assignments that changed.
    pub(crate) fn pump(&mut self, now: Time) {
        // Room for what the cluster queued, at once (a new leader's first cycle queues
        // 20,000; growing by doubling copied the queue each time).
        self.effects.reserve(self.cluster.pending_effects());
        while let Some(effect) = self.cluster.poll_effect() {
            match effect {
                Effect::Launch(request) => self.launch(now, *request),
                Effect::Stop { id } => self.set_state(&id, AssignmentState::Stop),
                Effect::Kill { id } => self.set_state(&id, AssignmentState::Kill),
                Effect::Probe {
                    target_group,
                    target,
                } => self.probe(now, &target_group, target),
                Effect::PublishTargets {
                    target_group,
                    targets,
                } => self.registrations(&target_group, targets),
                Effect::Persist(durable) => self.persist(durable),
                other => self.effects.push_back(FleetEffect::Cluster(other)),
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty {
            if let Some(a) = self.assigned.get(&id) {
                self.effects
                    .push_back(FleetEffect::Put(Assignment::clone(a)));
            }
        }
    }

    /// Places a launch on a host of its zone, or fails it (the group retries, preferring
    /// another zone, after its back-off).
    fn launch(&mut self, now: Time, request: LaunchRequest) {
        let LaunchRequest {
            group,
            id,
            zone,
            launch_template_version,
            template,
        } = request;
        let Some(host) = self.hosts.place(&group, &zone, |h| self.suspect(h)) else {
            let reason = format!("no compute host in {zone} has a free slot");
            self.cluster.handle_launch_failed(now, &id, &reason);
            return;
        };
        tracing::info!(group = group.as_str(), instance = %id, zone = zone.as_str(), host = host.as_str(), "placed");
        self.hosts.assign(&host, &id, &group);
        let purchase_option = self
            .cluster
            .find_instance(&id)
            .map(|(_, i)| i.purchase_option)
            .unwrap_or_default();
        let a = Box::new(Assignment {
            id: id.clone(),
            host,
            group,
            zone,
            launch_template_version,
            template,
            state: AssignmentState::Run,
            address: None,
            target_groups: BTreeSet::new(),
            lifecycle: crate::group::LifecycleState::Pending,
            protected_from_scale_in: false,
            purchase_option,
        });
        self.assigned.insert(id.clone(), a);
        self.dirty.insert(id);
    }

    /// Whether the load balancer nodes fail every instance `host` runs (at least one): its
    /// agent may be dead with them while its lease has not run out. No new instance goes
    /// there; it takes work again once one of its instances passes, or after it comes back.
    pub(crate) fn suspect(&self, host: &str) -> bool {
        let mut launched = self
            .hosts
            .instances_of(host)
            .into_iter()
            .filter(|id| self.assigned.get(id).is_some_and(|a| a.address.is_some()))
            .peekable();
        launched.peek().is_some() && launched.all(|id| self.votes.failing(id.as_str()))
    }

    /// Stop or kill (a kill is never softened back into a stop).
    pub(crate) fn set_state(&mut self, id: &InstanceId, state: AssignmentState) {
        let Some(a) = self.assigned.get_mut(id) else {
            return;
        };
        if a.state == state || a.state == AssignmentState::Kill {
            return;
        }
        a.state = state;
        self.dirty.insert(id.clone());
    }

    /// The key votes on a target are filed under: its instance, or its address (as text, in
    /// an id's clothes: a copy of an instance's id is a count, not an allocation).
    pub(crate) fn vote_key(&self, target: SocketAddr) -> InstanceId {
        self.cluster
            .instance_at(target)
            .map_or_else(|| InstanceId::from(target.to_string()), InstanceId::clone)
    }

    /// Answers a probe from the votes, or lets it wait for one.
    fn probe(&mut self, now: Time, tg: &str, target: SocketAddr) {
        let key = self.vote_key(target);
        match self.votes.verdict(tg, key.as_str()) {
            Some(result) => self.cluster.handle_probe_result(now, tg, target, result),
            None => self.votes.wait(tg, key, target),
        }
    }

    /// Which instances a target group routes to now: registered ones (any health), not
    /// draining ones. A routing table is published on every health change, so the change is
    /// found by walking it beside the previous one (both in address order) rather than by
    /// rebuilding the set of registered instances each time.
    fn registrations(&mut self, tg: &str, targets: Vec<RoutedTarget>) {
        let previous = self.published.get(tg);
        let changes = match previous {
            Some(before) if is_address_ordered(before) && is_address_ordered(&targets) => {
                registration_changes(before, &targets)
            }
            _ => self.registration_changes_from_set(tg, &targets),
        };
        // Kept as published (the effect is consumed here): no copy of the table.
        match self.published.get_mut(tg) {
            Some(list) => *list = targets,
            None => {
                self.published.insert(tg.to_string(), targets);
            }
        }
        let set = self.registered.entry(tg.to_string()).or_default();
        for (id, now_registered) in &changes {
            if *now_registered {
                set.insert(id.clone());
            } else {
                set.remove(id);
            }
        }
        for (id, now_registered) in changes {
            let Some(a) = self.assigned.get_mut(&id) else {
                continue;
            };
            // A new leader's first table lists what its assignments already say: no copy of
            // the name for each of them.
            let changed = if now_registered {
                !a.target_groups.contains(tg) && a.target_groups.insert(tg.to_string())
            } else {
                a.target_groups.remove(tg)
            };
            if changed {
                self.dirty.insert(id);
            }
        }
    }

    /// The changes against the registered set (the first table published for `tg`, e.g.
    /// by a new leader whose set came from the previous leader's assignments).
    fn registration_changes_from_set(
        &self,
        tg: &str,
        targets: &[RoutedTarget],
    ) -> Vec<(InstanceId, bool)> {
        let empty = BTreeSet::new();
        let before = self.registered.get(tg).unwrap_or(&empty);
        let now = targets
            .iter()
            .filter(|t| is_registered(t.state))
            .filter_map(|t| t.instance.as_ref());
        let mut changes: Vec<(InstanceId, bool)> = Vec::new();
        let mut kept = 0;
        for id in now.clone() {
            if before.contains(id) {
                kept += 1;
            } else {
                changes.push((id.clone(), true));
            }
        }
        if kept < before.len() {
            // Some went (a new leader's first table usually keeps every one: no set then).
            let now: BTreeSet<&InstanceId> = now.collect();
            let gone = before.iter().filter(|id| !now.contains(id));
            changes.extend(gone.map(|id| (id.clone(), false)));
        }
        changes
    }

    /// Instance facts go into their assignments; operator intents to the executor.
    fn persist(&mut self, durable: Durable) {
        match durable {
            Durable::Instance(r) => {
                if let Some(a) = self.assigned.get_mut(&r.id) {
                    a.address = Some(r.address);
                    a.lifecycle = r.lifecycle;
                    a.protected_from_scale_in = r.protected_from_scale_in;
                    a.launch_template_version = r.launch_template_version;
                    self.dirty.insert(r.id);
                }
            }
            Durable::Protection { id, protected } => {
                if let Some(a) = self.assigned.get_mut(&id) {
                    a.protected_from_scale_in = protected;
                    self.dirty.insert(id);
                }
            }
            Durable::Lifecycle { id, state } => {
                if let Some(a) = self.assigned.get_mut(&id) {
                    a.lifecycle = state;
                    self.dirty.insert(id);
                }
            }
            Durable::InstanceGone { id } => self.forget(&id),
            other => self
                .effects
                .push_back(FleetEffect::Cluster(Effect::Persist(other))),
        }
    }

    /// Drops an instance's assignment (its agent stops the process if one still runs).
    pub(crate) fn forget(&mut self, id: &InstanceId) {
        let Some(a) = self.assigned.remove(id) else {
            return;
        };
        self.hosts.release(&a.host, id);
        for set in self.registered.values_mut() {
            set.remove(id);
        }
        self.votes.forget(id.as_str());
        self.dirty.remove(id);
        self.effects.push_back(FleetEffect::Delete {
            host: a.host,
            id: id.clone(),
        });
    }

    /// Drops the assignment of an instance the cluster no longer has.
    pub(crate) fn forget_if_gone(&mut self, id: &InstanceId) {
        if self.assigned.contains_key(id) && self.cluster.find_instance(id).is_none() {
            self.forget(id);
        }
    }

    /// A host's grace passed: each of its instances is reported gone (a running one as an
    /// unexpected exit, one still launching as a failed launch), so its group replaces it.
    pub(crate) fn lose_host(&mut self, now: Time, host: &str) {
        let down = self.hosts.down_for(now, host);
        let ids = self.hosts.instances_of(host);
        tracing::warn!(
            host,
            instances = ids.len(),
            down_secs = down.as_secs(),
            "host lost: no lease for longer than host_lost_grace; replacing its instances"
        );
        let status = format!("host {host} lost: no heartbeat for {}s", down.as_secs());
        for id in ids {
            let launched = self.assigned.get(&id).is_some_and(|a| a.address.is_some());
            if launched {
                self.cluster.handle_instance_exited(now, &id, &status);
            } else {
                self.cluster.handle_launch_failed(now, &id, &status);
            }
            self.pump(now);
            // Whatever the cluster still knows of it (nothing, normally) is forgotten too:
            // the host is gone, and its agent stops the process should it come back.
            self.forget(&id);
        }
    }
}

/// The instance behind `t` while it is registered.
fn registered(t: &RoutedTarget) -> Option<&InstanceId> {
    t.instance.as_ref().filter(|_| is_registered(t.state))
}

/// A target the data plane routes to (any health), as opposed to a draining or unused one.
fn is_registered(state: TargetState) -> bool {
    matches!(
        state,
        TargetState::Initial | TargetState::Healthy | TargetState::Unhealthy
    )
}

fn is_address_ordered(targets: &[RoutedTarget]) -> bool {
    targets.windows(2).all(|w| w[0].address < w[1].address)
}

/// Instances that stopped (`false`) or started (`true`) being registered between two routing
/// tables in address order: one merge walk, removals first.
fn registration_changes(
    before: &[RoutedTarget],
    after: &[RoutedTarget],
) -> Vec<(InstanceId, bool)> {
    let (mut gone, mut new) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < after.len() {
        let (old, now) = match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b.address == a.address => {
                i += 1;
                j += 1;
                (registered(b), registered(a))
            }
            (Some(b), Some(a)) if b.address < a.address => {
                i += 1;
                (registered(b), None)
            }
            (Some(b), None) => {
                i += 1;
                (registered(b), None)
            }
            (_, Some(a)) => {
                j += 1;
                (None, registered(a))
            }
            (None, None) => break,
        };
        if old != now {
            gone.extend(old.cloned().map(|id| (id, false)));
            new.extend(now.cloned().map(|id| (id, true)));
        }
    }
    gone.extend(new);
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16, id: &str, state: TargetState) -> RoutedTarget {
        RoutedTarget {
            address: SocketAddr::from(([10, 0, 0, 1], port)),
            instance: Some(InstanceId::from(id.to_string())),
            zone: Some("az-a".into()),
            state,
        }
    }

    #[test]
    fn merge_walk_finds_what_registration_changed() {
        use TargetState::*;
        let before = [
            target(1, "i-1", Healthy),
            target(2, "i-2", Unhealthy),
            target(3, "i-3", Healthy),
            target(5, "i-5", Initial),
        ];
        let after = [
            target(1, "i-1", Unhealthy), // health changed: still registered
            target(2, "i-2", Draining),  // deregistered
            target(4, "i-4", Initial),   // new
            target(5, "i-9", Healthy),   // another instance at a reused address
        ];
        let id = |s: &str| InstanceId::from(s.to_string());
        assert_eq!(
            registration_changes(&before, &after),
            vec![
                (id("i-2"), false),
                (id("i-3"), false),
                (id("i-5"), false),
                (id("i-4"), true),
                (id("i-9"), true),
            ]
        );
        assert!(registration_changes(&after, &after).is_empty());
        assert!(is_address_ordered(&after));
        assert!(!is_address_ordered(&[after[1].clone(), after[0].clone()]));
    }
}
