//! A tiny stand-in for the runtime (like quinn-proto's `tests/util.rs`): it plays processes and
//! target groups in virtual time, answering the group's actions after configurable delays.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla_control::{
    AutoScalingGroup, GroupAction, GroupSpec, HealthCheckType, InstanceId, LifecycleState,
    TerminationPolicy, Time,
};

pub const ZONES: [&str; 3] = ["az-a", "az-b", "az-c"];

/// A group spec over the three zones with no target groups and process health checks.
pub fn spec(min: u32, max: u32, desired: u32) -> GroupSpec {
    GroupSpec {
        name: "web".into(),
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        min_size: min,
        max_size: max,
        desired_capacity: desired,
        health_check_type: HealthCheckType::Process,
        health_check_grace_period: Duration::from_secs(10),
        termination_policies: vec![TerminationPolicy::Default],
        launch_template_version: 1,
        has_target_groups: false,
        lifecycle_hooks: Vec::new(),
        warm_pool: None,
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn at(s: u64) -> Time {
    Time::ZERO + secs(s)
}

#[derive(Clone, Debug)]
enum Event {
    Launched(InstanceId),
    LaunchFailed(InstanceId),
    Drained(InstanceId),
    Exited(InstanceId),
    Unhealthy(InstanceId),
    Healthy(InstanceId),
}

/// Plays the runtime for one group.
pub struct Driver {
    pub group: AutoScalingGroup,
    pub now: Time,
    /// Time from Launch to `handle_launched` (or `handle_launch_failed`).
    pub launch_delay: Duration,
    /// Time from DeregisterTargets to `handle_drained`.
    pub drain_delay: Duration,
    /// Time from Terminate to `handle_instance_exited`.
    pub stop_delay: Duration,
    /// Launches into these zones fail.
    pub failing_zones: BTreeSet<String>,
    /// Every action the group emitted, with the time it was read.
    pub log: Vec<(Time, GroupAction)>,
    /// Instances currently registered with the (pretend) target group.
    pub registered: BTreeSet<InstanceId>,
    /// Time from RegisterTargets to the target group reporting the instance healthy; `None`:
    /// the target group never reports.
    pub health_delay: Option<Duration>,
    /// Registered instances the target group reports healthy.
    pub healthy: BTreeSet<InstanceId>,
    /// Fewest healthy in-service instances seen after any step, once set to `Some`.
    pub lowest_healthy: Option<usize>,
    /// Instances launched from these launch template versions fail their health checks (a
    /// broken release): the target group reports them unhealthy instead of healthy.
    pub failing_versions: BTreeSet<u64>,
    /// The launch template version each launched instance was started from.
    pub versions: BTreeMap<InstanceId, u64>,
    events: Vec<(Time, u64, Event)>,
    seq: u64,
}

impl Driver {
    pub fn new(spec: GroupSpec) -> Self {
        Driver {
            group: AutoScalingGroup::new(spec, 42, Time::ZERO),
            now: Time::ZERO,
            launch_delay: secs(2),
            drain_delay: secs(5),
            stop_delay: secs(1),
            failing_zones: BTreeSet::new(),
            log: Vec::new(),
            registered: BTreeSet::new(),
            health_delay: None,
            healthy: BTreeSet::new(),
            lowest_healthy: None,
            failing_versions: BTreeSet::new(),
            versions: BTreeMap::new(),
            events: Vec::new(),
            seq: 0,
        }
    }

    fn schedule(&mut self, delay: Duration, e: Event) {
        self.seq += 1;
        self.events.push((self.now + delay, self.seq, e));
    }

    /// Reads every queued action and schedules the runtime's answers.
    pub fn pump(&mut self) {
        while let Some(a) = self.group.poll_action() {
            self.log.push((self.now, a.clone()));
            match a {
                GroupAction::Launch {
                    id,
                    zone,
                    launch_template_version,
                } => {
                    self.versions.insert(id.clone(), launch_template_version);
                    let e = if self.failing_zones.contains(&zone) {
                        Event::LaunchFailed(id)
                    } else {
                        Event::Launched(id)
                    };
                    self.schedule(self.launch_delay, e);
                }
                GroupAction::RegisterTargets { id } => {
                    self.registered.insert(id.clone());
                    if let Some(d) = self.health_delay {
                        let failing = self
                            .versions
                            .get(&id)
                            .is_some_and(|v| self.failing_versions.contains(v));
                        let e = if failing {
                            Event::Unhealthy(id)
                        } else {
                            Event::Healthy(id)
                        };
                        self.schedule(d, e);
                    }
                }
                GroupAction::DeregisterTargets { id } => {
                    self.registered.remove(&id);
                    self.healthy.remove(&id);
                    self.schedule(self.drain_delay, Event::Drained(id));
                }
                GroupAction::Terminate { id } => self.schedule(self.stop_delay, Event::Exited(id)),
                GroupAction::Kill { id } => {
                    self.events
                        .retain(|e| !matches!(&e.2, Event::Exited(x) if *x == id));
                    self.schedule(Duration::ZERO, Event::Exited(id));
                }
            }
        }
    }

    /// Advances virtual time to `until`, delivering events and timeouts in order.
    pub fn run_until(&mut self, until: Time) {
        for _ in 0..100_000 {
            self.pump();
            let next_event = self.events.iter().map(|e| (e.0, e.1)).min();
            let timeout = self.group.poll_timeout();
            let next = match (next_event.map(|e| e.0), timeout) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            assert!(
                next >= self.now,
                "time went backwards: {next:?} < {:?}",
                self.now
            );
            self.now = next;
            if let Some((t, seq)) = next_event.filter(|e| e.0 == next) {
                let pos = self
                    .events
                    .iter()
                    .position(|e| e.0 == t && e.1 == seq)
                    .unwrap();
                let (_, _, e) = self.events.remove(pos);
                self.deliver(e);
            } else {
                self.group.handle_timeout(self.now);
            }
            self.watch_floor();
        }
        self.pump();
        self.now = self.now.max(until);
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self, e: Event) {
        let now = self.now;
        match e {
            Event::Launched(id) => self.group.handle_launched(now, &id),
            Event::LaunchFailed(id) => self.group.handle_launch_failed(now, &id, "zone outage"),
            Event::Drained(id) => self.group.handle_drained(now, &id),
            Event::Exited(id) => self.group.handle_instance_exited(now, &id, "exit status 0"),
            Event::Unhealthy(id) => {
                if self.registered.contains(&id) {
                    self.group
                        .handle_target_health(now, &id, false, "Target.ResponseCodeMismatch");
                }
            }
            Event::Healthy(id) => {
                if self.registered.contains(&id) {
                    self.healthy.insert(id.clone());
                    self.group.handle_target_health(now, &id, true, "");
                }
            }
        }
    }

    /// Instances in service that the target group reports healthy (all in-service ones for a
    /// group without target groups).
    pub fn healthy_in_service(&self) -> usize {
        let tg = self.group.spec().has_target_groups;
        self.group
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .filter(|i| !tg || self.healthy.contains(&i.id))
            .count()
    }

    fn watch_floor(&mut self) {
        if let Some(low) = self.lowest_healthy {
            self.lowest_healthy = Some(low.min(self.healthy_in_service()));
        }
    }

    /// Pretends the process of `id` died on its own.
    pub fn kill(&mut self, id: &InstanceId, status: &str) {
        self.events
            .retain(|e| !matches!(&e.2, Event::Exited(x) if x == id));
        self.group.handle_instance_exited(self.now, id, status);
        self.pump();
    }

    /// Live (pending or in-service, healthy) instances per zone, zones with none included.
    pub fn zone_counts(&self) -> Vec<usize> {
        ZONES
            .iter()
            .map(|z| {
                self.group
                    .instances()
                    .filter(|i| {
                        i.zone == *z
                            && matches!(
                                i.lifecycle,
                                LifecycleState::Pending | LifecycleState::InService
                            )
                    })
                    .count()
            })
            .collect()
    }

    pub fn in_service(&self) -> Vec<InstanceId> {
        self.group
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .map(|i| i.id.clone())
            .collect()
    }

    pub fn id_in_zone(&self, zone: &str) -> InstanceId {
        self.group
            .instances()
            .find(|i| i.zone == zone)
            .unwrap()
            .id
            .clone()
    }

    /// Actions logged since index `from`, as (time, kind, id).
    pub fn actions_since(&self, from: usize) -> Vec<(Time, &'static str, InstanceId)> {
        self.log[from..]
            .iter()
            .map(|(t, a)| match a {
                GroupAction::Launch { id, .. } => (*t, "launch", id.clone()),
                GroupAction::RegisterTargets { id } => (*t, "register", id.clone()),
                GroupAction::DeregisterTargets { id } => (*t, "deregister", id.clone()),
                GroupAction::Terminate { id } => (*t, "terminate", id.clone()),
                GroupAction::Kill { id } => (*t, "kill", id.clone()),
            })
            .collect()
    }

    pub fn launches(&self) -> Vec<(Time, String)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                GroupAction::Launch { zone, .. } => Some((*t, zone.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn zones_of(&self) -> BTreeMap<InstanceId, String> {
        self.group
            .instances()
            .map(|i| (i.id.clone(), i.zone.clone()))
            .collect()
    }
}
