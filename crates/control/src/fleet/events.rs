//! What the leader sees in the store, fed to the fleet: hosts coming and going, agents'
//! observations, load balancer nodes' votes, the store's reachability, and — when a leader
//! takes over — the assignments an earlier leader made.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::cluster::InstanceRecord;
use crate::id::InstanceId;
use crate::time::Time;

use super::hosts::HostSpec;
use super::{Assignment, AssignmentState, Fleet, FleetEffect, Observed, Vote};

impl Fleet {
    /// A host registered (`Some`) or its registration went with its lease (`None`). A host
    /// that comes back after it was declared lost takes new instances; its agent stops the
    /// ones that were replaced meanwhile (their assignments are gone).
    pub fn handle_host(&mut self, now: Time, name: &str, spec: Option<HostSpec>) {
        match spec {
            Some(spec) => {
                if self.hosts.up(name, spec) {
                    tracing::info!(
                        host = name,
                        "a lost host is back; its agent drains the instances that were replaced"
                    );
                }
            }
            None => {
                tracing::warn!(host = name, "host lease gone; host_lost_grace starts");
                self.hosts.down(now, name);
            }
        }
        self.pump(now);
    }

    /// What `host`'s agent reports of an instance; `None` when the report went (with the
    /// agent's lease, or withdrawn): that alone says nothing about the process.
    pub fn handle_observation(
        &mut self,
        now: Time,
        host: &str,
        id: &InstanceId,
        observed: Option<Observed>,
    ) {
        let Some(a) = self.assigned.get(id).filter(|a| a.host == host) else {
            if matches!(observed, Some(Observed::Running { .. })) {
                // Runs without an assignment this leader knows (one a lost write left behind):
                // its assignment goes, and its agent stops it.
                tracing::warn!(host, instance = %id, "an instance runs without an assignment; stopping it");
                self.effects.push_back(FleetEffect::Delete {
                    host: host.to_string(),
                    id: id.clone(),
                });
            }
            return;
        };
        let launched = a.address.is_some();
        match observed {
            None | Some(Observed::Starting) => return,
            Some(Observed::Running { port }) => {
                if launched || a.state != AssignmentState::Run {
                    return;
                }
                let Some(ip) = self.hosts.address(host) else {
                    return;
                };
                self.cluster
                    .handle_launched(now, id, SocketAddr::new(ip, port));
                if self.cluster.instance_address(id).is_none() {
                    // The cluster gave up on this launch meanwhile: stop what started.
                    self.set_state(id, AssignmentState::Stop);
                }
            }
            Some(Observed::Exited { status }) => {
                if launched {
                    self.cluster.handle_instance_exited(now, id, &status);
                } else {
                    self.cluster.handle_launch_failed(now, id, &status);
                }
                self.pump(now);
                self.forget_if_gone(id);
            }
        }
        self.pump(now);
    }

    /// A load balancer node's vote on a target (`key`: the instance id, or the address of a
    /// static target), or its withdrawal. A probe waiting for it is answered now.
    pub fn handle_vote(&mut self, now: Time, tg: &str, key: &str, node: &str, vote: Option<Vote>) {
        self.votes.set(tg, key, node, vote);
        if let Some(target) = self.votes.take_pending(tg, key) {
            match self.votes.verdict(tg, key) {
                Some(result) => self.cluster.handle_probe_result(now, tg, target, result),
                None => self
                    .votes
                    .wait(tg, InstanceId::from(key.to_string()), target),
            }
        }
        self.pump(now);
    }

    /// The store became unreachable (`false`: no quorum, no leader lease renewal) or
    /// reachable again. While away nothing is decided; on return the probes that waited are
    /// answered from the votes before any timer can count them as timed out.
    pub fn handle_store(&mut self, now: Time, reachable: bool) {
        if reachable != self.paused {
            return;
        }
        self.paused = !reachable;
        if self.paused {
            tracing::warn!("the store is unreachable: holding every decision");
            return;
        }
        tracing::info!("the store is reachable again: deciding again");
        for (tg, key, target) in self.votes.take_all_pending() {
            match self.votes.verdict(&tg, key.as_str()) {
                Some(result) => self.cluster.handle_probe_result(now, &tg, target, result),
                None => self.votes.wait(&tg, key, target),
            }
        }
        self.pump(now);
    }

    /// Takes over an assignment an earlier leader made (call for every stored assignment
    /// before the first timeout). A running instance — its address stored or observed — is
    /// adopted by its group; one its group has no room for, or whose launch was never
    /// confirmed, is told to stop; one being stopped stays so until its agent reports the exit.
    pub fn adopt(&mut self, now: Time, mut a: Assignment, observed: Option<Observed>) {
        self.hosts.adopt(now, &a.host, &a.zone, &a.id, &a.group);
        if a.address.is_none() {
            if let (Some(Observed::Running { port }), Some(ip)) =
                (&observed, self.hosts.address(&a.host))
            {
                // Written back, so the next leader need not ask the agent again.
                a.address = Some(SocketAddr::new(ip, *port));
                self.dirty.insert(a.id.clone());
            }
        }
        let id = a.id.clone();
        let exited = matches!(observed, Some(Observed::Exited { .. }));
        let adopted = match (a.state, a.address, exited) {
            (AssignmentState::Run, Some(address), false) => self.cluster.adopt(
                now,
                InstanceRecord {
                    id: id.clone(),
                    group: a.group.clone(),
                    zone: a.zone.clone(),
                    address,
                    launch_template_version: a.launch_template_version,
                    protected_from_scale_in: a.protected_from_scale_in,
                    lifecycle: crate::cluster::durable_state(a.lifecycle),
                    purchase_option: a.purchase_option,
                },
            ),
            _ => false,
        };
        let stop = !adopted && a.state == AssignmentState::Run && !exited;
        // What the previous leader registered, so the first routing table published takes
        // back exactly what is no longer registered.
        for tg in &a.target_groups {
            // No copy of the name for every instance of a known target group.
            match self.registered.get_mut(tg) {
                Some(set) => {
                    set.insert(id.clone());
                }
                None => {
                    self.registered
                        .insert(tg.clone(), BTreeSet::from([id.clone()]));
                }
            }
        }
        self.assigned.insert(id.clone(), Box::new(a));
        if exited {
            self.forget(&id);
        } else if stop {
            tracing::info!(instance = %id, "an assignment of the previous leader is not adopted; stopping its instance");
            self.set_state(&id, AssignmentState::Stop);
        }
    }
}
