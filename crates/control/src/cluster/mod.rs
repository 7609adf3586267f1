//! The whole control plane as one sans-IO state machine: every auto scaling group with its
//! scaling controller, every target group's health, the zones and their drills, the weighted
//! forwards with their canary rollbacks, and the metrics they decide on.
//!
//! `flotilla up` drives it with real time, processes and probes; the simulation and the tests
//! drive it in virtual time; in cluster mode the elected leader drives it. None of them makes
//! a decision of its own: they carry out [`Effect`]s and report what happened.

mod cost;
mod effect;
mod flow;
mod forget;
mod forwards;
mod handle;
mod handover;
mod operator;
mod reconfigure;
mod restore;
mod retire;
mod rollup;
mod sampling;
mod spec;
mod views;
mod watched;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use crate::controller::ScalingController;
use crate::group::AutoScalingGroup;
use crate::hashing::FastMap;
use crate::health::TargetGroupHealth;
use crate::id::{InstanceId, SplitMix64};
use crate::metrics::MetricsStore;
use crate::pricing::PricingSpec;
use crate::template::LaunchTemplate;
use crate::time::Time;
use crate::zones::ZoneDrills;

pub use cost::{group_cost_per_hour, InstanceBill};
pub use effect::{durable_state, Durable, Effect, InstanceRecord, LaunchRequest, RoutedTarget};
pub use forwards::{ForwardStatus, WeightOverride, WeightSource, WeightsError};
pub use handover::SNAPSHOT_FORMAT;
pub use operator::{OperatorError, Terminated};
pub use restore::Restored;
pub use rollup::TargetGroupRollup;
pub use sampling::{LoadBalancerSample, Samples, TargetSample};
pub use spec::{
    AutoScalingGroupConfig, ClusterSpec, ForwardSpec, InstanceRefreshSettings, RefreshOverrides,
    RuleKey, TargetGroupSpec, WeightedTargetGroup,
};
pub use views::GroupView;

/// How many launch template versions a group remembers for rollbacks.
const KEPT_TEMPLATE_VERSIONS: usize = 8;

/// The control plane of one Flotilla installation.
///
/// # How to drive it
///
/// Like quinn-proto's `Connection`, it never reads a clock, opens a socket or draws a random
/// number; its driver does, in this order:
///
/// 1. Build it with [`Cluster::new`], then (after a restart) [`restore`](Self::restore) what
///    operators set and [`adopt`](Self::adopt) the instances still running — both before the
///    first timeout, so a suspended Launch launches nothing.
/// 2. Feed every event as it happens, with the current time: `handle_launched`,
///    `handle_launch_failed`, `handle_instance_exited`, `handle_probe_result`,
///    `handle_target_idle`, `handle_held_requests`, `handle_samples`, operator commands
///    (`set_desired_capacity`, `terminate_instance`, …) and config changes
///    ([`reconfigure`](Self::reconfigure)).
/// 3. After each call, drain [`poll_effect`](Self::poll_effect) until it returns `None` and
///    carry every [`Effect`] out (launch, stop, probe, publish a routing table, persist, …);
///    results come back as events (step 2).
/// 4. Sleep until [`poll_timeout`](Self::poll_timeout) or the next event, whichever is first;
///    at the timeout call [`handle_timeout`](Self::handle_timeout), then step 3 again.
///
/// Every decision — placement, scale-in victims, health verdicts, scaling, rollbacks, scale
/// from zero — happens inside; a driver that follows these steps cannot drift from the
/// simulation that tests it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    groups: BTreeMap<String, GroupState>,
    target_groups: BTreeMap<String, TargetGroupState>,
    /// Instances the groups launched, by id: their group and, once running, their address.
    members: FastMap<InstanceId, Member>,
    by_address: FastMap<SocketAddr, InstanceId>,
    /// Instances being drained: how many target groups still drain them.
    draining: FastMap<InstanceId, usize>,
    /// The durable state last written for each running instance.
    durable: FastMap<InstanceId, crate::group::LifecycleState>,
    zones: ZoneDrills,
    forwards: forwards::Forwards,
    metrics: MetricsStore,
    sampling: sampling::Sampling,
    launch_templates: BTreeMap<String, LaunchTemplate>,
    /// Prices and reservations.
    pricing: PricingSpec,
    /// Draws of the Spot interruption drill (seeded from `seed`, so runs replay).
    drill_rng: SplitMix64,
    effects: VecDeque<Effect>,
    seed: u64,
    /// Whether a restore or a reconfiguration calls for a pass over every instance (groups
    /// may have gone); otherwise only the ids the groups hand over are forgotten.
    garbage: bool,
    /// Addresses of forgotten instances that a target group still tracks (draining): their
    /// address stays mapped until the target groups let go of them too.
    #[serde(default)]
    lingering: Vec<SocketAddr>,
    /// Targets' health changes so far.
    health_changes: u64,
    /// The groups' lifecycle change count and the health change count when start-up
    /// progress was last checked.
    startup_seen: Option<(u64, u64)>,
    /// When start-up progress was last checked.
    startup_checked_at: Option<Time>,
    /// How many groups were ever added: varies each new group's id seed, so a group added by
    /// a reconfigure never shares instance ids with one that is still draining.
    groups_added: usize,
    /// Each group's cost per hour as last recorded, with the fleet's (removals, instances) it
    /// was computed for: a bill walks every instance, and the cost only moves when one comes
    /// or goes (or prices change, which clears it).
    #[serde(skip)]
    cost_cache: Option<CostCache>,
    /// When the series of gone instances and targets were last dropped.
    #[serde(skip)]
    pruned_at: Option<Time>,
    /// Routing tables published so far (a roll-up's members are found again after one).
    #[serde(skip)]
    routing_changes: u64,
    /// Per target group, the requests of roll-up seconds (see [`rollup`]); a driver that
    /// sends roll-ups (the simulator) never hands over, so they are not kept across one.
    #[serde(skip)]
    shares: FastMap<String, rollup::Shares>,
}

/// The fleet's (removals, instances) when costs were computed, and each group's cost per hour.
type CostCache = ((u64, usize), Vec<(String, f64)>);

/// One auto scaling group: its machine, its scaling controller and what it was built from.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct GroupState {
    pub(crate) asg: watched::Watched,
    pub(crate) controller: ScalingController,
    pub(crate) config: AutoScalingGroupConfig,
    /// The launch template versions this run has seen, newest last.
    pub(crate) templates: BTreeMap<u64, LaunchTemplate>,
    /// The seed of the group's instance ids.
    id_seed: u64,
    last_reported_activity: Option<u64>,
    /// Activities reported while in progress, to report again once finished.
    unfinished: Vec<u64>,
    /// Start-up progress: `None` once the group first had all its desired instances in
    /// service; until then the last (ready, desired) logged.
    startup: Option<(u32, u32)>,
    /// Removed from the spec: draining and stopping its instances; forgotten once it has none.
    pub(crate) retiring: bool,
    /// The group's lifecycle change count when its lifecycles were last made durable (`None`:
    /// never), so an event that changed none costs no pass over its instances.
    lifecycles_seen: Option<u64>,
}

/// One target group's health machine and what the data plane was last told.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct TargetGroupState {
    pub(crate) health: TargetGroupHealth,
    pub(crate) spec: TargetGroupSpec,
    /// The routing table must be published again.
    dirty: bool,
    /// Requests the data plane holds for want of a target (scale from zero).
    held: usize,
    /// Whether the data plane was told to hold requests.
    holds: bool,
    /// The instance and zone behind each instance target, kept from its registration: the
    /// routing table is published on every health change and must not look each one up.
    #[serde(skip)]
    routes: BTreeMap<SocketAddr, (InstanceId, std::sync::Arc<str>)>,
}

/// A launched instance's facts the groups do not keep.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Member {
    group: String,
    /// Its zone (an instance never moves); shared with every routing table that names it.
    zone: std::sync::Arc<str>,
    address: Option<SocketAddr>,
}

impl Cluster {
    /// A cluster running `spec`, its groups' instance ids drawn from `seed`, at `now`. Nothing
    /// launches before the first [`handle_timeout`](Self::handle_timeout).
    pub fn new(spec: ClusterSpec, seed: u64, now: Time) -> Self {
        let mut c = Cluster {
            groups: BTreeMap::new(),
            target_groups: BTreeMap::new(),
            members: FastMap::default(),
            by_address: FastMap::default(),
            draining: FastMap::default(),
            durable: FastMap::default(),
            zones: ZoneDrills::new(spec.zones.iter().cloned()),
            forwards: forwards::Forwards::default(),
            metrics: MetricsStore::default(),
            sampling: sampling::Sampling::new(now),
            launch_templates: spec.launch_templates.clone(),
            pricing: spec.pricing.clone(),
            drill_rng: SplitMix64::new(seed ^ 0x5107_1e55_d811_1000),
            effects: VecDeque::new(),
            seed,
            // No member yet: nothing a pass over them could find (a restore or a
            // reconfiguration that drops members asks for one).
            garbage: false,
            lingering: Vec::new(),
            health_changes: 0,
            startup_seen: None,
            startup_checked_at: None,
            groups_added: 0,
            cost_cache: None,
            pruned_at: None,
            routing_changes: 0,
            shares: FastMap::default(),
        };
        for (name, tg) in &spec.target_groups {
            c.add_target_group(now, name, tg.clone());
        }
        for (name, config) in &spec.groups {
            c.add_group(now, name, config.clone());
        }
        c.forwards.configure(now, &spec.forwards, &mut c.effects);
        for g in c.groups.values() {
            if g.config.min_size == 0 {
                for tg in &g.config.target_groups {
                    if let Some(t) = c.target_groups.get_mut(tg) {
                        t.holds = true;
                        c.effects.push_back(Effect::HoldRequests {
                            target_group: tg.clone(),
                        });
                    }
                }
            }
        }
        c.publish();
        c
    }

    fn add_target_group(&mut self, now: Time, name: &str, spec: TargetGroupSpec) {
        let mut health = TargetGroupHealth::new(spec.health_check, spec.deregistration_delay);
        for target in &spec.targets {
            health.register(now, *target);
        }
        self.target_groups.insert(
            name.to_string(),
            TargetGroupState {
                health,
                spec,
                dirty: true,
                held: 0,
                holds: false,
                routes: BTreeMap::new(),
            },
        );
    }

    /// Adds a group; the count of groups added so far varies the id seed so that groups never
    /// share instance ids (a group added by a reconfigure neither, while another drains; see
    /// [`crate::id::group_seed`]).
    fn add_group(&mut self, now: Time, name: &str, config: AutoScalingGroupConfig) {
        let index = self.groups_added;
        self.groups_added += 1;
        let seed = crate::id::group_seed(self.seed, index);
        let drain = self.interruption_lead(&config);
        let mut asg = AutoScalingGroup::new(config.group_spec(name, 1, drain), seed, now);
        asg.set_new_instances_protected_from_scale_in(config.new_instances_protected_from_scale_in);
        let mut templates = BTreeMap::new();
        if let Some(t) = self.launch_templates.get(&config.launch_template) {
            templates.insert(1, t.clone());
        }
        self.groups.insert(
            name.to_string(),
            GroupState {
                asg: watched::Watched::new(asg),
                controller: ScalingController::new(config.controller_spec(), now),
                config,
                templates,
                id_seed: seed,
                last_reported_activity: None,
                unfinished: Vec::new(),
                startup: Some((u32::MAX, u32::MAX)),
                retiring: false,
                lifecycles_seen: None,
            },
        );
    }

    /// The next thing to do, or `None` when there is nothing until the next event or timeout.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// How many effects [`poll_effect`](Self::poll_effect) has queued (a driver that turns
    /// them into its own makes room for all of them at once).
    pub(crate) fn pending_effects(&self) -> usize {
        self.effects.len()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let groups = self.groups.values().filter_map(|g| g.asg.poll_timeout());
        let tgs = self
            .target_groups
            .values()
            .filter_map(|tg| tg.health.poll_timeout());
        groups
            .chain(tgs)
            .chain(self.zones.poll_timeout())
            .chain(self.forwards.poll_timeout())
            .chain(self.sampling.next_sample())
            .min()
    }

    /// Lets every machine act on the time that has passed: group timers, probe schedules,
    /// draining deadlines, drill ends; asks for samples once a second.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.zones.poll_timeout().is_some_and(|t| t <= now) {
            self.zones.handle_timeout(now);
        }
        for g in self.groups.values_mut() {
            if g.asg.poll_timeout().is_some_and(|t| t <= now) {
                g.asg.handle_timeout(now);
            }
        }
        for tg in self.target_groups.values_mut() {
            if tg.health.poll_timeout().is_some_and(|t| t <= now) {
                tg.health.handle_timeout(now);
            }
        }
        if self.sampling.due(now) {
            self.effects.push_back(Effect::CollectSamples);
        }
        self.scale_from_zero(now);
        self.pump(now);
    }

    /// How long before a Spot interruption deadline an instance of `config`'s group starts
    /// draining: its target groups' longest deregistration delay plus its template's stop
    /// timeout, so it is drained and stopped by the deadline.
    fn interruption_lead(&self, config: &AutoScalingGroupConfig) -> std::time::Duration {
        let drain = config.drain_of(|tg| {
            let t = self.target_groups.get(tg)?;
            Some(t.spec.deregistration_delay)
        });
        let stop = self
            .launch_templates
            .get(&config.launch_template)
            .map(|t| t.stop_timeout)
            .unwrap_or_default();
        drain + stop
    }

    /// Records what `version` of `group`'s launch template is.
    fn record_template(g: &mut GroupState, version: u64, template: LaunchTemplate) {
        g.templates.insert(version, template);
        while g.templates.len() > KEPT_TEMPLATE_VERSIONS {
            g.templates.pop_first();
        }
    }

    /// Launches one instance in every empty group whose target groups hold requests (scale
    /// from zero, beyond AWS, which answers 503).
    fn scale_from_zero(&mut self, now: Time) {
        for (name, g) in self.groups.iter_mut() {
            if g.asg.desired_capacity() > 0 {
                continue;
            }
            let held = g.config.target_groups.iter().find_map(|tg| {
                let n = self.target_groups.get(tg)?.held;
                (n > 0).then_some((tg, n))
            });
            let Some((tg, n)) = held else {
                continue;
            };
            let cause = format!(
                "{n} request(s) arrived for target group {tg} while group {name} had no \
                 instances: scaling from zero; desired 0 → 1"
            );
            if let Err(e) = g.asg.scale_to(now, 1, cause) {
                tracing::warn!(group = name.as_str(), error = %e, "cannot scale from zero");
            }
        }
    }
}
