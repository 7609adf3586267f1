//! A load balancer node's own view of its targets: the instances the assignments register in
//! each target group (plus the config's static targets), health-checked by this node with the
//! same [`TargetGroupHealth`] machine `flotilla up` uses, drained with the target group's
//! deregistration delay when they leave, and voted on so the leader learns what this node sees.
//!
//! It keeps working on what it last knew when the store is away: targets are only added or
//! removed by [`LbTargets::set_targets`], never because nothing was heard.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use crate::cluster::{RoutedTarget, TargetGroupSpec};
use crate::health::{HealthAction, ProbeResult, TargetGroupHealth, TargetState};
use crate::id::InstanceId;
use crate::time::Time;

/// An instance target as the assignments name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbTarget {
    /// Where it listens.
    pub address: SocketAddr,
    /// The instance.
    pub instance: InstanceId,
    /// Its zone.
    pub zone: String,
}

/// Something for the load balancer node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbAction {
    /// Run one health check with the target group's settings; answer with
    /// [`LbTargets::handle_probe_result`].
    Probe {
        /// The target group.
        target_group: String,
        /// The target.
        target: SocketAddr,
    },
    /// Route the target group by this list from now on.
    Publish {
        /// The target group.
        target_group: String,
        /// Every registered or draining target, with this node's view of its health.
        targets: Vec<RoutedTarget>,
    },
    /// Tell the leader this node's verdict (`health/<tg>/<key>/<node>`).
    Vote {
        /// The target group.
        target_group: String,
        /// The instance id, or the address of a static target.
        key: String,
        /// The verdict.
        healthy: bool,
        /// Why not, when unhealthy.
        reason: String,
    },
    /// Withdraw this node's vote: the target is gone.
    Unvote {
        /// The target group.
        target_group: String,
        /// The instance id or address.
        key: String,
    },
}

#[derive(Debug)]
struct Group {
    health: TargetGroupHealth,
    spec: TargetGroupSpec,
    /// The instance behind each instance target, with its zone.
    instances: BTreeMap<SocketAddr, (InstanceId, std::sync::Arc<str>)>,
    dirty: bool,
}

/// Every target group of a load balancer node.
#[derive(Debug, Default)]
pub struct LbTargets {
    groups: BTreeMap<String, Group>,
    actions: VecDeque<LbAction>,
}

impl LbTargets {
    /// Takes the config's target groups: new ones are added with their static targets,
    /// changed health checks apply in place, removed ones go.
    pub fn configure(&mut self, now: Time, specs: &BTreeMap<String, TargetGroupSpec>) {
        self.groups.retain(|name, _| specs.contains_key(name));
        for (name, spec) in specs {
            match self.groups.get_mut(name) {
                Some(g) => {
                    g.health
                        .update_spec(spec.health_check, spec.deregistration_delay);
                    for t in &spec.targets {
                        g.health.register(now, *t);
                    }
                    g.spec = spec.clone();
                }
                None => {
                    let mut health =
                        TargetGroupHealth::new(spec.health_check, spec.deregistration_delay);
                    for t in &spec.targets {
                        health.register(now, *t);
                    }
                    let g = Group {
                        health,
                        spec: spec.clone(),
                        instances: BTreeMap::new(),
                        dirty: true,
                    };
                    self.groups.insert(name.clone(), g);
                }
            }
        }
        self.drain_machines();
    }

    /// The instance targets `tg` should route to now: new ones are registered (checked at
    /// once), ones no longer listed drain.
    pub fn set_targets(&mut self, now: Time, tg: &str, targets: &[LbTarget]) {
        let Some(g) = self.groups.get_mut(tg) else {
            return;
        };
        let wanted: BTreeMap<SocketAddr, &LbTarget> =
            targets.iter().map(|t| (t.address, t)).collect();
        let gone: Vec<SocketAddr> = g
            .instances
            .keys()
            .filter(|a| !wanted.contains_key(a) && !g.spec.targets.contains(a))
            .copied()
            .collect();
        for addr in gone {
            g.health.deregister(now, addr);
        }
        for (addr, t) in wanted {
            let fresh = g.instances.get(&addr).map(|(id, _)| id) != Some(&t.instance)
                || g.health
                    .state(addr)
                    .is_none_or(|s| s == TargetState::Draining);
            if fresh {
                g.instances
                    .insert(addr, (t.instance.clone(), t.zone.as_str().into()));
                g.health.register(now, addr);
            }
        }
        self.drain_machines();
    }

    /// Publishes `tg`'s targets again: the data plane rebuilt it (new balancing settings) and
    /// holds none until told.
    pub fn republish(&mut self, tg: &str) {
        if let Some(g) = self.groups.get_mut(tg) {
            g.dirty = true;
        }
        self.drain_machines();
    }

    /// A probe came back.
    pub fn handle_probe_result(
        &mut self,
        now: Time,
        tg: &str,
        target: SocketAddr,
        result: ProbeResult,
    ) {
        if let Some(g) = self.groups.get_mut(tg) {
            g.health.handle_probe_result(now, target, result);
        }
        self.drain_machines();
    }

    /// Nothing is in flight to a draining target any more: it is gone now.
    pub fn handle_target_idle(&mut self, now: Time, tg: &str, target: SocketAddr) {
        if let Some(g) = self.groups.get_mut(tg) {
            g.health.handle_target_idle(now, target);
        }
        self.drain_machines();
    }

    /// Probes due, probes timed out, drains ended.
    pub fn handle_timeout(&mut self, now: Time) {
        for g in self.groups.values_mut() {
            if g.health.poll_timeout().is_some_and(|t| t <= now) {
                g.health.handle_timeout(now);
            }
        }
        self.drain_machines();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.groups
            .values()
            .filter_map(|g| g.health.poll_timeout())
            .min()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<LbAction> {
        self.actions.pop_front()
    }

    /// Targets draining now, for a driver that reports when they are idle.
    pub fn draining_targets(&self) -> Vec<(String, SocketAddr)> {
        self.groups
            .iter()
            .flat_map(|(name, g)| {
                g.health
                    .targets()
                    .filter(|t| t.state == TargetState::Draining)
                    .map(move |t| (name.clone(), t.target))
            })
            .collect()
    }

    /// A target group's health machine, for status pages.
    pub fn health(&self, tg: &str) -> Option<&TargetGroupHealth> {
        self.groups.get(tg).map(|g| &g.health)
    }

    /// Turns the health machines' actions into this node's, then publishes changed groups.
    fn drain_machines(&mut self) {
        for (name, g) in self.groups.iter_mut() {
            while let Some(action) = g.health.poll_action() {
                match action {
                    HealthAction::Probe { target } => self.actions.push_back(LbAction::Probe {
                        target_group: name.clone(),
                        target,
                    }),
                    HealthAction::StateChanged {
                        target, to, reason, ..
                    } => {
                        g.dirty = true;
                        let key = g
                            .instances
                            .get(&target)
                            .map_or_else(|| target.to_string(), |(id, _)| id.to_string());
                        let vote = match to {
                            TargetState::Healthy => Some(true),
                            TargetState::Unhealthy => Some(false),
                            _ => None,
                        };
                        if let Some(healthy) = vote {
                            self.actions.push_back(LbAction::Vote {
                                target_group: name.clone(),
                                key,
                                healthy,
                                reason: reason.map(|r| r.into_owned()).unwrap_or_default(),
                            });
                        } else if to == TargetState::Unused {
                            g.instances.remove(&target);
                            self.actions.push_back(LbAction::Unvote {
                                target_group: name.clone(),
                                key,
                            });
                        }
                    }
                    HealthAction::DrainComplete { .. } => g.dirty = true,
                }
            }
            if g.dirty {
                g.dirty = false;
                self.actions.push_back(LbAction::Publish {
                    target_group: name.clone(),
                    targets: routed(g),
                });
            }
        }
    }
}

/// The routing list of a group, as the data plane takes it.
fn routed(g: &Group) -> Vec<RoutedTarget> {
    g.health
        .states()
        .filter(|(_, state)| *state != TargetState::Unused)
        .map(|(address, state)| {
            let (instance, zone) = match g.instances.get(&address) {
                Some((id, zone)) => (Some(id.clone()), Some(zone.clone())),
                None => (None, None),
            };
            RoutedTarget {
                address,
                instance,
                zone,
                state,
            }
        })
        .collect()
}
