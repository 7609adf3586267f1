//! The simulated world around the real `Cluster`: instances that boot, serve, crash and stop;
//! a front door (the load balancer, or DNS when the group has no target group) that spreads
//! the scenario's traffic; health checks answered by whether the instance answers; and the
//! scenario's events. Time is virtual: one run is a function of its scenario, config and seed.
//!
//! The cluster is driven as `flotilla up` drives it (crates/runtime/src/run.rs and
//! executor.rs): `handle_timeout` at `poll_timeout`, every effect from `poll_effect` carried
//! out, and its results fed back through `handle_*`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use flotilla_config::scenario::{EventKind, Scenario};
use flotilla_config::Config;
use flotilla_control::{
    Cluster, Effect, InstanceId, LifecycleState, ProbeResult, SplitMix64, TargetState, Time,
};

use crate::summary::{cause_kind, Second, Summary};
use accounting::Books;

mod accounting;
mod events;
mod front;

/// Longest the run waits for the group's initial instances before its first second (a
/// group that cannot start in that time starts the run as it is).
const PRELUDE_LIMIT: Duration = Duration::from_secs(1800);

/// Why a run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The config has no group, or several and the scenario names none.
    #[error("{0}")]
    Group(String),
    /// A zone outage names a zone the cluster does not have.
    #[error(
        "the scenario's zone outage names zone `{0}`, which is not one of the cluster's ({1})"
    )]
    UnknownZone(String, String),
    /// The control plane kept asking for the same moment (a bug, reported instead of a hang).
    #[error("the simulation made no progress at {0:?}")]
    Stuck(Time),
}

/// What happens to the world at a moment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A launched instance finished booting.
    Booted(InstanceId),
    /// A launch into a zone that is down fails.
    LaunchFailed(InstanceId),
    /// An instance's process ended (stopped, killed or crashed), with its status.
    Exited(InstanceId, &'static str),
    /// The instance crashes (if it still runs).
    Crash(InstanceId),
    /// A zone comes back.
    ZoneUp(String),
    /// EC2's status checks find the instances of a zone that is down impaired.
    StatusCheck(String),
}

/// An instance of the world (launched and not yet exited).
struct Inst {
    zone: String,
    /// Requests per second at 100 % CPU.
    capacity: f64,
    /// Where it listens, once booted.
    addr: Option<SocketAddr>,
    /// Unreachable (its zone is down).
    dead: bool,
}

struct World<'a> {
    sc: &'a Scenario,
    cluster: Cluster,
    group: String,
    /// The group's target groups; empty: clients reach the instances through DNS.
    target_groups: Vec<String>,
    rng: SplitMix64,
    now: Time,
    /// Scenario second 0 (after the prelude).
    origin: Time,
    events: BinaryHeap<Reverse<(Time, u64, Ev)>>,
    seq: u64,
    instances: BTreeMap<InstanceId, Inst>,
    by_address: BTreeMap<SocketAddr, InstanceId>,
    /// Zones down until when.
    zones_down: BTreeMap<String, Time>,
    /// Every target group's routing list as last published.
    routed: BTreeMap<String, Vec<(SocketAddr, InstanceId, TargetState)>>,
    next_host: u32,
    books: Books,
    /// Whether alike seconds go to the cluster as roll-ups (see [`Feed`]).
    rollups: bool,
    /// Changes to what clients can reach (routing, instances): the front door is found again.
    changes: u64,
    /// The front door as found at a count of `changes`.
    front: Option<(u64, std::rc::Rc<front::Front>)>,
}

/// How a run reports each second's traffic to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// One roll-up per target group when every healthy target took the same traffic and the
    /// group's policies read only what roll-ups keep exactly
    /// ([`Cluster::rollups_exact`]); per target otherwise. The same decisions, at O(1) a
    /// second in the cluster instead of O(targets).
    RollUps,
    /// Every target's second, as `flotilla up` reports them (to compare against).
    PerTarget,
}

/// Runs `scenario` on `config` (with `seed` instead of the scenario's, when given); the
/// summary and one row per simulated second.
pub fn simulate(
    scenario: &Scenario,
    config: &Config,
    seed: Option<u64>,
) -> Result<(Summary, Vec<Second>), SimError> {
    simulate_recorded(scenario, config, seed, &mut |_, _| {})
}

/// What a run shows its observer (see [`simulate_recorded`]).
#[derive(Debug)]
pub enum Tap<'a> {
    /// The samples the cluster was handed for a second.
    Samples(&'a flotilla_control::Samples),
    /// An activity of a group, as the cluster reported it.
    Activity(&'a str, &'a flotilla_control::Activity),
}

/// [`simulate`], showing `record` every second's samples as the cluster gets them and every
/// activity it reports (to replay the same metric series through another driver and compare
/// the decisions).
pub fn simulate_recorded(
    scenario: &Scenario,
    config: &Config,
    seed: Option<u64>,
    record: &mut dyn FnMut(Time, Tap<'_>),
) -> Result<(Summary, Vec<Second>), SimError> {
    simulate_fed(scenario, config, seed, Feed::RollUps, record)
}

/// [`simulate_recorded`], reporting traffic as `feed` says.
pub fn simulate_fed(
    scenario: &Scenario,
    config: &Config,
    seed: Option<u64>,
    feed: Feed,
    record: &mut dyn FnMut(Time, Tap<'_>),
) -> Result<(Summary, Vec<Second>), SimError> {
    let seed = seed.unwrap_or(scenario.seed);
    let group = pick_group(scenario, config)?;
    for e in &scenario.events {
        if let EventKind::ZoneOutage { zone, .. } = &e.kind {
            if !config.cluster.zones.contains(zone) {
                return Err(SimError::UnknownZone(
                    zone.clone(),
                    config.cluster.zones.join(", "),
                ));
            }
        }
    }
    let spec = config.cluster_spec(|a| a);
    let target_groups = spec
        .groups
        .get(&group)
        .map(|g| g.target_groups.clone())
        .unwrap_or_default();
    let cluster = Cluster::new(spec, seed, Time::ZERO);
    let rollups =
        feed == Feed::RollUps && target_groups.len() == 1 && cluster.rollups_exact(&group);
    let mut w = World {
        sc: scenario,
        cluster,
        group,
        target_groups,
        rng: SplitMix64::new(seed),
        now: Time::ZERO,
        origin: Time::ZERO,
        events: BinaryHeap::new(),
        seq: 0,
        instances: BTreeMap::new(),
        by_address: BTreeMap::new(),
        zones_down: BTreeMap::new(),
        routed: BTreeMap::new(),
        next_host: 1,
        books: Books::new(scenario.slo_p99),
        rollups,
        changes: 0,
        front: None,
    };
    w.drain(record);
    if scenario.warm {
        w.prelude(record)?;
    }
    let total = scenario.duration.as_secs();
    for s in 0..total {
        let now = w.origin + Duration::from_secs(s);
        w.scenario_events(now, record);
        w.advance(now, record)?;
        if w.books.rows() <= s as usize {
            // The cluster did not ask for this second's samples: book it all the same.
            w.serve(now, false, record);
        }
        w.idle_draining(record);
    }
    Ok(w.books.finish(total))
}

fn pick_group(scenario: &Scenario, config: &Config) -> Result<String, SimError> {
    let names: Vec<&String> = config.auto_scaling_groups.keys().collect();
    match (&scenario.group, names.as_slice()) {
        (Some(g), _) if config.auto_scaling_groups.contains_key(g) => Ok(g.clone()),
        (Some(g), _) => Err(SimError::Group(format!(
            "the scenario's group `{g}` is not in the config (it has {})",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        (None, [one]) => Ok((*one).clone()),
        (None, []) => Err(SimError::Group(
            "the config has no auto scaling group".into(),
        )),
        (None, _) => Err(SimError::Group(
            "the config has several auto scaling groups: name one with `group` in the scenario"
                .into(),
        )),
    }
}

type Record<'r> = &'r mut dyn FnMut(Time, Tap<'_>);

impl World<'_> {
    fn schedule(&mut self, at: Time, e: Ev) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    /// Runs the cluster before the scenario's first second until the group's initial
    /// instances serve: the day being simulated starts on a service that was running.
    fn prelude(&mut self, record: Record<'_>) -> Result<(), SimError> {
        let mut now = Time::ZERO;
        while now.as_duration() < PRELUDE_LIMIT {
            now += Duration::from_secs(1);
            self.origin = now + Duration::from_secs(1);
            self.advance(now, record)?;
            self.idle_draining(record);
            if self.settled() {
                break;
            }
        }
        self.origin = now + Duration::from_secs(1);
        self.books.reset_counters();
        Ok(())
    }

    /// The group has its desired capacity in service, and (behind a load balancer) healthy.
    fn settled(&self) -> bool {
        let Some(g) = self.cluster.group(&self.group) else {
            return true;
        };
        let desired = g.asg.desired_capacity() as usize;
        let in_service = g
            .asg
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .count();
        let serving = if self.target_groups.is_empty() {
            in_service
        } else {
            self.routable()
                .iter()
                .filter(|t| t.2 == TargetState::Healthy)
                .count()
        };
        in_service >= desired && serving >= desired
    }

    /// Delivers events and timeouts up to `until`, in order, carrying out every effect.
    fn advance(&mut self, until: Time, record: Record<'_>) -> Result<(), SimError> {
        let mut guard = 0u32;
        loop {
            let next_event = self.events.peek().map(|Reverse((t, _, _))| *t);
            let timeout = self.cluster.poll_timeout();
            let next = match (next_event, timeout) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            guard += 1;
            if guard > 1_000_000 {
                return Err(SimError::Stuck(self.now));
            }
            self.now = next.max(self.now);
            if next_event == Some(next) {
                if let Some(Reverse((_, _, e))) = self.events.pop() {
                    self.deliver(e);
                }
            } else {
                self.cluster.handle_timeout(self.now);
            }
            self.drain(record);
        }
        self.now = until;
        Ok(())
    }

    fn drain(&mut self, record: Record<'_>) {
        while let Some(e) = self.cluster.poll_effect() {
            self.carry_out(e, record);
        }
    }

    fn carry_out(&mut self, e: Effect, record: Record<'_>) {
        let now = self.now;
        match e {
            Effect::Launch(r) => self.launch(*r),
            Effect::Stop { id } => self.schedule(
                now + Duration::from_secs(1),
                Ev::Exited(id, "exit status 0"),
            ),
            Effect::Kill { id } => self.schedule(now, Ev::Exited(id, "killed")),
            Effect::Probe {
                target_group,
                target,
            } => {
                let up = self
                    .by_address
                    .get(&target)
                    .and_then(|id| self.instances.get(id))
                    .is_some_and(|i| !i.dead);
                let result = if up {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure {
                        reason: "Target.Timeout".into(),
                    }
                };
                self.cluster
                    .handle_probe_result(now, &target_group, target, result);
            }
            Effect::PublishTargets {
                target_group,
                targets,
            } => {
                let list = targets
                    .into_iter()
                    .filter_map(|t| Some((t.address, t.instance?, t.state)))
                    .collect();
                self.routed.insert(target_group, list);
                self.changes += 1;
            }
            Effect::CollectSamples => self.serve(now, true, record),
            Effect::Activity { group, activity } => {
                record(now, Tap::Activity(&group, &activity));
                let scaled = activity.description.starts_with("Setting desired capacity");
                if group == self.group && scaled && now >= self.origin {
                    self.books.scaled(activity.id, cause_kind(&activity.cause));
                }
                self.books.instances_changed();
                self.changes += 1;
            }
            _ => {}
        }
    }

    /// A launch: boots in the scenario's boot time, or fails at once in a zone that is down.
    fn launch(&mut self, r: flotilla_control::LaunchRequest) {
        let now = self.now;
        let m = &self.sc.instance;
        let capacity = m.capacity_of(&r.template.instance_type);
        let jitter = m.boot_jitter.as_secs_f64() * (2.0 * self.rng.unit() - 1.0);
        let boot = (m.boot_time.as_secs_f64() + jitter).max(0.0);
        let inst = Inst {
            zone: r.zone.clone(),
            capacity,
            addr: None,
            dead: false,
        };
        self.instances.insert(r.id.clone(), inst);
        self.books.instances_changed();
        self.changes += 1;
        if self.zones_down.contains_key(&r.zone) {
            self.schedule(now, Ev::LaunchFailed(r.id));
        } else {
            self.schedule(now + Duration::from_secs_f64(boot), Ev::Booted(r.id));
        }
    }

    fn deliver(&mut self, e: Ev) {
        let now = self.now;
        match e {
            Ev::Booted(id) => {
                let Some(inst) = self.instances.get_mut(&id) else {
                    return; // stopped before it came up
                };
                if self.zones_down.contains_key(&inst.zone) {
                    self.instances.remove(&id);
                    self.cluster
                        .handle_launch_failed(now, &id, "the zone is down");
                    return;
                }
                self.next_host += 1;
                let ip = Ipv4Addr::from(0x0a00_0000 + self.next_host);
                let addr = SocketAddr::from((ip, 80));
                inst.addr = Some(addr);
                self.by_address.insert(addr, id.clone());
                self.cluster.handle_launched(now, &id, addr);
                self.schedule_crash(&id);
            }
            Ev::LaunchFailed(id) => {
                if self.instances.remove(&id).is_some() {
                    self.cluster.handle_launch_failed(
                        now,
                        &id,
                        "InsufficientInstanceCapacity: the zone is down",
                    );
                }
            }
            Ev::Exited(id, status) => self.exit(&id, status),
            Ev::Crash(id) => {
                if self.instances.get(&id).is_some_and(|i| !i.dead) {
                    self.exit(&id, "crashed (signal 9)");
                }
            }
            Ev::ZoneUp(zone) => self.zone_up(&zone),
            Ev::StatusCheck(zone) => self.status_check(&zone),
        }
        self.books.instances_changed();
        self.changes += 1;
    }

    fn exit(&mut self, id: &InstanceId, status: &str) {
        if let Some(inst) = self.instances.remove(id) {
            self.changes += 1;
            if let Some(a) = inst.addr {
                self.by_address.remove(&a);
            }
            self.cluster.handle_instance_exited(self.now, id, status);
        }
    }
}
