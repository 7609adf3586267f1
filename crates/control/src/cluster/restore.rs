//! After a restart (or a change of leader): what operators set before, and the instances still
//! running, taken back in.

use std::collections::BTreeMap;

use crate::group::ScalingProcess;
use crate::metrics::Metric;
use crate::policy::predictive::LoadHour;
use crate::time::Time;

use super::effect::{durable_state, Durable, Effect, InstanceRecord};
use super::forwards::WeightOverride;
use super::spec::RuleKey;
use super::{Cluster, Member};

/// What an earlier run made durable.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Desired capacities operators set, per group.
    pub desired: BTreeMap<String, u32>,
    /// Scaling processes operators suspended, per group.
    pub suspended: BTreeMap<String, Vec<ScalingProcess>>,
    /// Weights operators (or canary rollbacks) set on forward actions.
    pub weight_overrides: Vec<(RuleKey, WeightOverride)>,
    /// Hours of load history per group and metric (what predictive scaling learned).
    pub load_history: BTreeMap<String, Vec<(Metric, LoadHour)>>,
}

impl Cluster {
    /// Takes back what operators set before a restart: an operator's desired capacity wins
    /// over the file's while inside min..max; suspended processes are suspended again (before
    /// the first reconcile, so a suspended Launch launches nothing); weight overrides the file
    /// still agrees with apply again. Call before the first `handle_timeout`.
    pub fn restore(&mut self, now: Time, restored: Restored) {
        for (name, d) in &restored.desired {
            let Some(g) = self.groups.get_mut(name) else {
                continue;
            };
            let spec = g.asg.spec().clone();
            if (spec.min_size..=spec.max_size).contains(d) {
                if *d != spec.desired_capacity {
                    tracing::info!(
                        group = name.as_str(),
                        restored = d,
                        config = spec.desired_capacity,
                        "restoring the desired capacity {d} an operator set before the restart"
                    );
                    // Nothing ran yet: the group starts over as if created at this size.
                    let mut s = spec;
                    s.desired_capacity = *d;
                    let protect = g.config.new_instances_protected_from_scale_in;
                    g.asg = super::watched::Watched::new(crate::group::AutoScalingGroup::new(
                        s, g.id_seed, now,
                    ));
                    // Members adopted before this (against the call order) are dropped with
                    // the old machine: forget them. Before any, there is nothing to forget.
                    self.garbage |= !self.members.is_empty();
                    g.asg.set_new_instances_protected_from_scale_in(protect);
                }
            } else {
                tracing::warn!(
                    group = name.as_str(),
                    restored = d,
                    min = spec.min_size,
                    max = spec.max_size,
                    "the desired capacity an operator set before the restart is outside the \
                     config's bounds; using the config's"
                );
                self.effects.push_back(Effect::Persist(Durable::Desired {
                    group: name.clone(),
                    desired: None,
                }));
            }
        }
        for (name, processes) in &restored.suspended {
            let Some(g) = self.groups.get_mut(name) else {
                continue;
            };
            for p in processes {
                g.asg.suspend_process(*p);
            }
            if !processes.is_empty() {
                let names: Vec<&str> = processes.iter().map(|p| p.as_str()).collect();
                tracing::info!(
                    group = name.as_str(),
                    "restoring the scaling processes an operator suspended before the restart: {}",
                    names.join(", ")
                );
            }
        }
        self.forwards
            .restore(now, restored.weight_overrides, &mut self.effects);
        for (name, hours) in &restored.load_history {
            let Some(g) = self.groups.get_mut(name) else {
                continue;
            };
            let mut by_metric: BTreeMap<Metric, Vec<LoadHour>> = BTreeMap::new();
            for (metric, hour) in hours {
                by_metric.entry(*metric).or_default().push(*hour);
            }
            for (metric, hours) in by_metric {
                g.controller.restore_history(metric, &hours);
            }
        }
    }

    /// Takes in an instance an earlier run left running, as its durable record describes it
    /// (`lifecycle`: the state to adopt it into). Returns false when its group is gone or
    /// full: the driver then stops it.
    pub fn adopt(&mut self, now: Time, instance: InstanceRecord) -> bool {
        let InstanceRecord {
            id,
            group,
            zone,
            address,
            launch_template_version,
            protected_from_scale_in,
            lifecycle,
            purchase_option,
        } = instance;
        if self.members.contains_key(&id) {
            return false; // every member of every group is in this map
        }
        let Some(g) = self.groups.get_mut(&group) else {
            return false;
        };
        let zone_of_adopted: std::sync::Arc<str> = zone.as_str().into();
        let taken = g.asg.adopt_unknown_instance(
            now,
            id.clone(),
            zone,
            Time::ZERO,
            (launch_template_version, purchase_option),
            lifecycle,
        );
        if !taken {
            return false;
        }
        if protected_from_scale_in {
            g.asg.set_instance_protection(now, &id, true);
        }
        Self::continue_template_versions(g, launch_template_version);
        self.durable.insert(id.clone(), durable_state(lifecycle));
        self.members.insert(
            id.clone(),
            Member {
                group,
                zone: zone_of_adopted,
                address: Some(address),
            },
        );
        self.by_address.insert(address, id);
        true
    }

    /// Adopted instances may carry a launch template version above the one this run started
    /// with: the group continues from the newest of them, with the file's template as that
    /// version, so new launches are not taken for older than the running instances.
    /// `adopted` is the version the instance just adopted runs: the group's version is already
    /// at least every other member's (this runs at each adoption), so only it can be newer.
    fn continue_template_versions(g: &mut super::GroupState, adopted: u64) {
        let current = g.asg.spec().launch_template_version;
        if adopted <= current {
            return;
        }
        if let Some(t) = g.templates.remove(&current) {
            g.templates.insert(adopted, t);
        }
        g.asg.set_launch_template_version(adopted);
    }
}
