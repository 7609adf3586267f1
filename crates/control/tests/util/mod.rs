//! A stand-in for the runtime (like quinn-proto's `tests/util.rs`): it drives the real
//! [`Cluster`] — one group `web`, behind a target group `web` when the spec has target groups
//! — and plays the world around it in virtual time: processes start and stop after
//! configurable delays, and the target group's probes are answered by a small health model.
//! Everything between the machines (registration, draining, verdicts) is the cluster's own.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use flotilla_control::policy::predictive::LoadHour;
use flotilla_control::{
    AutoScalingGroup, AutoScalingGroupConfig, Cluster, ClusterSpec, Durable, Effect, GroupSpec,
    HealthCheckSpec, HealthCheckType, InstanceId, InstanceRefreshSettings, LaunchTemplate,
    LifecycleState, ProbeResult, Samples, TargetGroupSpec, TargetSample, TargetState,
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
        instances_distribution: None,
        interruption_drain: Duration::ZERO,
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn at(s: u64) -> Time {
    Time::ZERO + secs(s)
}

/// A launch template the harness "runs".
pub fn template() -> LaunchTemplate {
    LaunchTemplate {
        command: vec!["app".into()],
        env: BTreeMap::new(),
        working_dir: ".".into(),
        stop_signal: Default::default(),
        stop_timeout: secs(10),
        instance_type: "t3.micro".into(),
        user_data: None,
        image: None,
    }
}

/// The cluster spec of one group as `spec` describes it (`drain` is the target group's
/// deregistration delay).
pub fn cluster_spec(spec: &GroupSpec, drain: Duration) -> ClusterSpec {
    let mut cs = ClusterSpec {
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        ..ClusterSpec::default()
    };
    cs.launch_templates.insert("web".into(), template());
    let config = AutoScalingGroupConfig {
        launch_template: "web".into(),
        target_groups: if spec.has_target_groups {
            vec!["web".into()]
        } else {
            Vec::new()
        },
        zones: spec.zones.clone(),
        min_size: spec.min_size,
        max_size: spec.max_size,
        desired_capacity: spec.desired_capacity,
        health_check_type: spec.health_check_type,
        health_check_grace_period: spec.health_check_grace_period,
        default_instance_warmup: None,
        default_cooldown: secs(300),
        termination_policies: spec.termination_policies.clone(),
        new_instances_protected_from_scale_in: false,
        scaling_policies: Vec::new(),
        scheduled_actions: Vec::new(),
        lifecycle_hooks: spec.lifecycle_hooks.clone(),
        warm_pool: spec.warm_pool,
        instance_refresh: InstanceRefreshSettings::default(),
        instances_distribution: spec.instances_distribution,
    };
    cs.groups.insert(spec.name.clone(), config);
    if spec.has_target_groups {
        cs.target_groups.insert(
            "web".into(),
            TargetGroupSpec {
                // One probe per registration that matters here: the harness answers it when
                // its model decides, and the next is a day away.
                health_check: HealthCheckSpec {
                    interval: secs(86_400 * 30),
                    timeout: secs(5),
                    healthy_threshold: 1,
                    unhealthy_threshold: 1,
                },
                deregistration_delay: drain,
                targets: Vec::new(),
            },
        );
    }
    cs
}

#[derive(Clone, Debug)]
enum Event {
    Launched(InstanceId),
    LaunchFailed(InstanceId),
    Exited(InstanceId),
    Probe(SocketAddr),
}

/// Plays the runtime for one group.
pub struct Driver {
    pub cluster: Cluster,
    pub now: Time,
    /// Time from Launch to `handle_launched` (or `handle_launch_failed`).
    pub launch_delay: Duration,
    /// Time from Stop to `handle_instance_exited`.
    pub stop_delay: Duration,
    /// Launches into these zones fail.
    pub failing_zones: BTreeSet<String>,
    /// Every effect of interest, as (time, kind, instance): launch, register, deregister,
    /// terminate, kill.
    pub log: Vec<(Time, &'static str, InstanceId)>,
    /// Instances registered with the target group (not draining).
    pub registered: BTreeSet<InstanceId>,
    /// Time from registration to the probe's answer: healthy, or unhealthy for a failing
    /// version; `None`: the probe is never answered.
    pub health_delay: Option<Duration>,
    /// Registered instances the target group reports healthy.
    pub healthy: BTreeSet<InstanceId>,
    /// Fewest healthy in-service instances seen after any step, once set to `Some`.
    pub lowest_healthy: Option<usize>,
    /// Instances launched from these launch template versions fail their health checks.
    pub failing_versions: BTreeSet<u64>,
    /// The launch template version each launched instance was started from.
    pub versions: BTreeMap<InstanceId, u64>,
    /// Requests per second the load balancer spreads evenly over the healthy targets,
    /// reported in every second's samples.
    pub traffic: f64,
    /// Hours of load history the cluster made durable: (group, metric, hour).
    pub load_hours: Vec<(String, flotilla_control::metrics::Metric, LoadHour)>,
    /// Every launch as (time, zone).
    launched_in: Vec<(Time, String)>,
    addresses: BTreeMap<InstanceId, SocketAddr>,
    by_address: BTreeMap<SocketAddr, InstanceId>,
    next_port: u16,
    events: Vec<(Time, u64, Event)>,
    seq: u64,
}

impl Driver {
    /// A driver whose target group drains for 5 s.
    pub fn new(spec: GroupSpec) -> Self {
        Self::with_drain(spec, secs(5))
    }

    pub fn with_drain(spec: GroupSpec, drain: Duration) -> Self {
        Self::with_cluster_spec(cluster_spec(&spec, drain))
    }

    /// A driver of the cluster `cs` (one group `web`, built with [`cluster_spec`] and then
    /// changed, e.g. given scaling policies).
    pub fn with_cluster_spec(cs: ClusterSpec) -> Self {
        Driver {
            cluster: Cluster::new(cs, 42, Time::ZERO),
            now: Time::ZERO,
            launch_delay: secs(2),
            stop_delay: secs(1),
            failing_zones: BTreeSet::new(),
            log: Vec::new(),
            registered: BTreeSet::new(),
            health_delay: None,
            healthy: BTreeSet::new(),
            lowest_healthy: None,
            failing_versions: BTreeSet::new(),
            versions: BTreeMap::new(),
            traffic: 0.0,
            load_hours: Vec::new(),
            launched_in: Vec::new(),
            addresses: BTreeMap::new(),
            by_address: BTreeMap::new(),
            next_port: 10_000,
            events: Vec::new(),
            seq: 0,
        }
    }

    /// The group's machine, to read.
    pub fn group(&self) -> &AutoScalingGroup {
        self.cluster.group("web").map(|g| g.asg).expect("the group")
    }

    /// The group's machine, to poke directly (its actions are carried out at the next pump).
    pub fn group_mut(&mut self) -> &mut AutoScalingGroup {
        self.cluster.group_machine_mut("web").expect("the group")
    }

    /// Runs `f` on the group's machine at the current time (its actions are carried out at
    /// the next pump, as with [`group_mut`](Self::group_mut)).
    pub fn with_group<R>(&mut self, f: impl FnOnce(&mut AutoScalingGroup, Time) -> R) -> R {
        let now = self.now;
        f(self.group_mut(), now)
    }

    fn schedule(&mut self, delay: Duration, e: Event) {
        self.seq += 1;
        self.events.push((self.now + delay, self.seq, e));
    }

    /// Lets the cluster pick up what happened and carries out its effects.
    pub fn pump(&mut self) {
        self.cluster.handle_timeout(self.now);
        self.drain_effects();
    }

    fn drain_effects(&mut self) {
        while let Some(e) = self.cluster.poll_effect() {
            self.carry_out(e);
        }
    }

    fn carry_out(&mut self, e: Effect) {
        match e {
            Effect::Launch(r) => {
                self.log.push((self.now, "launch", r.id.clone()));
                self.versions
                    .insert(r.id.clone(), r.launch_template_version);
                self.launched_in.push((self.now, r.zone.clone()));
                let e = if self.failing_zones.contains(&r.zone) {
                    Event::LaunchFailed(r.id)
                } else {
                    Event::Launched(r.id)
                };
                self.schedule(self.launch_delay, e);
            }
            Effect::Stop { id } => {
                self.log.push((self.now, "terminate", id.clone()));
                self.schedule(self.stop_delay, Event::Exited(id));
            }
            Effect::Kill { id } => {
                self.log.push((self.now, "kill", id.clone()));
                self.events
                    .retain(|e| !matches!(&e.2, Event::Exited(x) if *x == id));
                self.schedule(Duration::ZERO, Event::Exited(id));
            }
            Effect::Probe { target, .. } => {
                if let Some(d) = self.health_delay {
                    self.schedule(d, Event::Probe(target));
                }
            }
            Effect::PublishTargets { targets, .. } => self.published(targets),
            Effect::Persist(Durable::LoadHour {
                group,
                metric,
                hour,
            }) => self.load_hours.push((group, metric, hour)),
            Effect::CollectSamples => {
                let wall = jiff::Timestamp::UNIX_EPOCH
                    .checked_add(self.now.as_duration())
                    .expect("a virtual time within jiff's range");
                let samples = self.samples();
                self.cluster.handle_samples(self.now, wall, samples);
            }
            _ => {}
        }
    }

    /// This second's traffic, spread evenly over the healthy targets.
    fn samples(&self) -> Samples {
        let healthy: Vec<SocketAddr> = self
            .healthy
            .iter()
            .filter_map(|id| self.addresses.get(id).copied())
            .collect();
        let each = (self.traffic / healthy.len().max(1) as f64).round() as u64;
        let targets = healthy
            .into_iter()
            .map(|address| TargetSample {
                target_group: "web".into(),
                address,
                requests: each,
                target_5xx: 0,
                response_times: vec![(0.01, each)],
            })
            .collect();
        Samples {
            targets,
            ..Samples::default()
        }
    }

    /// Registration and health as the data plane would see it.
    fn published(&mut self, targets: Vec<flotilla_control::RoutedTarget>) {
        let mut registered = BTreeSet::new();
        let mut healthy = BTreeSet::new();
        for t in targets {
            let Some(id) = t.instance else { continue };
            if t.state == TargetState::Draining {
                if self.registered.contains(&id) {
                    self.log.push((self.now, "deregister", id.clone()));
                }
                continue;
            }
            if !self.registered.contains(&id) {
                self.log.push((self.now, "register", id.clone()));
            }
            if t.state == TargetState::Healthy {
                healthy.insert(id.clone());
            }
            registered.insert(id);
        }
        self.registered = registered;
        self.healthy = healthy;
    }

    /// Advances virtual time to `until`, delivering events and timeouts in order.
    pub fn run_until(&mut self, until: Time) {
        self.pump();
        for _ in 0..1_000_000 {
            let next_event = self.events.iter().map(|e| (e.0, e.1)).min();
            let timeout = self.cluster.poll_timeout();
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
                    .expect("the event just found");
                let (_, _, e) = self.events.remove(pos);
                self.deliver(e);
            } else {
                self.cluster.handle_timeout(self.now);
            }
            self.drain_effects();
            self.watch_floor();
        }
        self.now = self.now.max(until);
        self.pump();
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self, e: Event) {
        let now = self.now;
        match e {
            Event::Launched(id) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], self.next_port));
                self.next_port += 1;
                self.addresses.insert(id.clone(), addr);
                self.by_address.insert(addr, id.clone());
                self.cluster.handle_launched(now, &id, addr);
            }
            Event::LaunchFailed(id) => self.cluster.handle_launch_failed(now, &id, "zone outage"),
            Event::Exited(id) => self
                .cluster
                .handle_instance_exited(now, &id, "exit status 0"),
            Event::Probe(addr) => {
                let failing = self
                    .by_address
                    .get(&addr)
                    .and_then(|id| self.versions.get(id))
                    .is_some_and(|v| self.failing_versions.contains(v));
                let result = if failing {
                    ProbeResult::Failure {
                        reason: "Target.ResponseCodeMismatch".into(),
                    }
                } else {
                    ProbeResult::Success
                };
                self.cluster.handle_probe_result(now, "web", addr, result);
            }
        }
    }

    /// Instances in service that the target group reports healthy (all in-service ones for a
    /// group without target groups).
    pub fn healthy_in_service(&self) -> usize {
        let tg = self.group().spec().has_target_groups;
        self.group()
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
        self.cluster.handle_instance_exited(self.now, id, status);
        self.drain_effects();
    }

    /// Live (pending or in-service, healthy) instances per zone, zones with none included.
    pub fn zone_counts(&self) -> Vec<usize> {
        ZONES
            .iter()
            .map(|z| {
                self.group()
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
        self.group()
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .map(|i| i.id.clone())
            .collect()
    }

    pub fn id_in_zone(&self, zone: &str) -> InstanceId {
        self.group()
            .instances()
            .find(|i| i.zone == zone)
            .expect("an instance in the zone")
            .id
            .clone()
    }

    /// Actions logged since index `from`, as (time, kind, id).
    pub fn actions_since(&self, from: usize) -> Vec<(Time, &'static str, InstanceId)> {
        self.log[from..].to_vec()
    }

    /// The first action of `kind` logged since index `from`: (time, instance).
    pub fn first(&self, from: usize, kind: &str) -> (Time, InstanceId) {
        self.log[from..]
            .iter()
            .find(|a| a.1 == kind)
            .map(|(t, _, id)| (*t, id.clone()))
            .unwrap_or_else(|| panic!("no {kind} since {from}: {:?}", &self.log[from..]))
    }

    pub fn launches(&self) -> Vec<(Time, String)> {
        self.launched_in.clone()
    }

    pub fn zones_of(&self) -> BTreeMap<InstanceId, String> {
        self.group()
            .instances()
            .map(|i| (i.id.clone(), i.zone.clone()))
            .collect()
    }
}
