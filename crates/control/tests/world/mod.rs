//! The simulated world around the cluster: processes, probes, traffic, faults and operators,
//! all drawn from one seeded generator.

mod checks;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use flotilla_control::{
    AutoScalingGroup, Cluster, Effect, InstanceId, LifecycleActionResult, LifecycleState,
    ProbeResult, RefreshOverrides, Samples, ScalingProcess, TargetSample, Time, ZoneDrill,
};

pub use spec::{CANARY, MAX, MIN, ZONES};

/// SplitMix64: tiny, fast, good enough for choosing events.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug)]
enum Event {
    Launched(InstanceId),
    LaunchFailed(InstanceId),
    Exited(InstanceId),
    ProbeAnswer(String, SocketAddr),
}

/// Total requests per second: a slow wave, plus occasional bursts.
struct Traffic {
    base: f64,
    amplitude: f64,
    period: f64,
    burst: f64,
}

impl Traffic {
    fn at(&self, t: u64) -> f64 {
        let phase = (t as f64 / self.period) * std::f64::consts::TAU;
        (self.base + self.amplitude * phase.sin() + self.burst).max(0.0)
    }
}

/// The cluster and everything around it.
pub struct World {
    pub rng: Rng,
    pub now: Time,
    pub cluster: Cluster,
    events: Vec<(Time, u64, Event)>,
    seq: u64,
    /// Where each running instance listens.
    addresses: BTreeMap<InstanceId, SocketAddr>,
    by_address: BTreeMap<SocketAddr, InstanceId>,
    next_port: u16,
    /// Instances that hang on Stop (answer late).
    hangs: BTreeSet<InstanceId>,
    /// Instances whose health checks fail.
    sick: BTreeSet<InstanceId>,
    /// Whether the canary's targets answer 5xx.
    canary_bad: bool,
    traffic: Traffic,
    /// Faults and operators act only while this is on.
    disturbing: bool,
    /// What the data plane was last told, per target group: target → (instance, state).
    pub published: BTreeMap<String, Vec<flotilla_control::RoutedTarget>>,
    /// The weights in force of the canary forward.
    pub canary_weight: Option<u32>,
    /// Every launch the cluster asked for.
    pub launched: Vec<(Time, InstanceId, String)>,
    /// Instances stopped or killed.
    pub stopped: BTreeSet<InstanceId>,
    pub operator_actions: u32,
    pub rollbacks: usize,
    pub outages: usize,
    pub trace: Vec<String>,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let spec = spec::cluster(seed, &mut rng);
        let traffic = Traffic {
            base: 100.0 + rng.unit() * 400.0,
            amplitude: rng.unit() * 400.0,
            period: 20.0 + rng.unit() * 200.0,
            burst: 0.0,
        };
        let mut w = World {
            cluster: Cluster::new(spec, seed, Time::ZERO),
            rng,
            now: Time::ZERO,
            events: Vec::new(),
            seq: 0,
            addresses: BTreeMap::new(),
            by_address: BTreeMap::new(),
            next_port: 20_000,
            hangs: BTreeSet::new(),
            sick: BTreeSet::new(),
            canary_bad: false,
            traffic,
            disturbing: true,
            published: BTreeMap::new(),
            canary_weight: None,
            launched: Vec::new(),
            stopped: BTreeSet::new(),
            operator_actions: 0,
            rollbacks: 0,
            outages: 0,
            trace: Vec::new(),
        };
        w.cluster.handle_timeout(Time::ZERO);
        w.drain();
        w
    }

    pub fn group(&self) -> &AutoScalingGroup {
        self.cluster.group("web").map(|g| g.asg).expect("the group")
    }

    fn schedule(&mut self, delay: Duration, e: Event) {
        self.seq += 1;
        self.events.push((self.now + delay, self.seq, e));
    }

    /// Carries out every effect the cluster queued, checking each as it goes.
    fn drain(&mut self) {
        while let Some(e) = self.cluster.poll_effect() {
            self.check_effect(&e);
            self.carry_out(e);
        }
    }

    fn carry_out(&mut self, e: Effect) {
        match e {
            Effect::Launch(r) => {
                self.launched.push((self.now, r.id.clone(), r.zone.clone()));
                // Start-up takes 0-4 s; 5 % never come up.
                let delay = Duration::from_secs(self.rng.below(5));
                let ev = if self.rng.chance(50) {
                    Event::LaunchFailed(r.id)
                } else {
                    Event::Launched(r.id)
                };
                self.schedule(delay, ev);
            }
            Effect::Stop { id } => {
                self.stopped.insert(id.clone());
                let d = if self.hangs.contains(&id) {
                    10 + self.rng.below(30)
                } else {
                    self.rng.below(2)
                };
                self.schedule(Duration::from_secs(d), Event::Exited(id));
            }
            Effect::Kill { id } => {
                self.stopped.insert(id.clone());
                self.events
                    .retain(|e| !matches!(&e.2, Event::Exited(x) if *x == id));
                self.schedule(Duration::ZERO, Event::Exited(id));
            }
            // Answered within 0-1 s, or (rarely, while faults happen) not at all: the check
            // times out.
            Effect::Probe {
                target_group,
                target,
            } if !(self.disturbing && self.rng.chance(20)) => {
                let d = Duration::from_millis(self.rng.below(1000));
                self.schedule(d, Event::ProbeAnswer(target_group, target));
            }
            Effect::PublishTargets {
                target_group,
                targets,
            } => {
                self.published.insert(target_group, targets);
            }
            Effect::PublishWeights { weights, .. } => {
                self.canary_weight = weights.iter().find(|g| g.name == CANARY).map(|g| g.weight);
            }
            Effect::CollectSamples => {
                let samples = self.samples();
                let wall = jiff::Timestamp::UNIX_EPOCH
                    .checked_add(self.now.as_duration())
                    .expect("virtual time within jiff's range");
                self.cluster.handle_samples(self.now, wall, samples);
            }
            _ => {}
        }
    }

    /// This second's traffic: the web share spread over the routable web targets, the canary
    /// share over the canary's, 5xx from the canary when it is bad.
    fn samples(&mut self) -> Samples {
        let t = self.now.as_duration().as_secs();
        let total = self.traffic.at(t);
        let canary_share = f64::from(self.canary_weight.unwrap_or(0)) / 100.0;
        let mut targets = Vec::new();
        for (tg, share) in [("web", 1.0 - canary_share), (CANARY, canary_share)] {
            let routable: Vec<SocketAddr> = self
                .published
                .get(tg)
                .into_iter()
                .flatten()
                .filter(|t| t.state == flotilla_control::TargetState::Healthy)
                .map(|t| t.address)
                .collect();
            for address in &routable {
                let requests = (total * share / routable.len() as f64).round() as u64;
                let bad = tg == CANARY && self.canary_bad;
                targets.push(TargetSample {
                    target_group: tg.to_string(),
                    address: *address,
                    requests,
                    target_5xx: if bad { requests / 2 } else { 0 },
                    response_times: vec![(0.01, requests)],
                });
            }
        }
        Samples {
            targets,
            ..Samples::default()
        }
    }

    fn deliver_due(&mut self) {
        loop {
            let Some(pos) = self
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.0 <= self.now)
                .min_by_key(|(_, e)| (e.0, e.1))
                .map(|(i, _)| i)
            else {
                return;
            };
            let (at, _, e) = self.events.remove(pos);
            let now = at.max(self.now);
            match e {
                Event::Launched(id) => {
                    let addr = SocketAddr::from(([10, 0, 0, 1], self.next_port));
                    self.next_port = self.next_port.wrapping_add(1).max(20_000);
                    self.addresses.insert(id.clone(), addr);
                    self.by_address.insert(addr, id.clone());
                    self.cluster.handle_launched(now, &id, addr);
                }
                Event::LaunchFailed(id) => self.cluster.handle_launch_failed(now, &id, "boom"),
                Event::Exited(id) => {
                    self.hangs.remove(&id);
                    self.cluster
                        .handle_instance_exited(now, &id, "exit status 0");
                }
                Event::ProbeAnswer(tg, addr) => {
                    let sick = self
                        .by_address
                        .get(&addr)
                        .is_some_and(|i| self.sick.contains(i));
                    let result = if sick {
                        ProbeResult::Failure {
                            reason: "Target.ResponseCodeMismatch".into(),
                        }
                    } else {
                        ProbeResult::Success
                    };
                    self.cluster.handle_probe_result(now, &tg, addr, result);
                }
            }
            self.drain();
        }
    }

    fn in_service(&self) -> Vec<InstanceId> {
        self.group()
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .map(|i| i.id.clone())
            .collect()
    }

    fn pick(&mut self, v: &[InstanceId]) -> Option<InstanceId> {
        (!v.is_empty()).then(|| v[self.rng.below(v.len() as u64) as usize].clone())
    }

    /// One weighted random disturbance: a fault, an operator, or the application.
    fn disturb(&mut self) {
        let now = self.now;
        let roll = self.rng.below(1000);
        let in_service = self.in_service();
        match roll {
            0..=9 => {
                if let Some(id) = self.pick(&in_service) {
                    self.trace.push(format!("{now:?} crash {id}"));
                    self.events
                        .retain(|e| !matches!(&e.2, Event::Exited(x) if *x == id));
                    self.cluster.handle_instance_exited(now, &id, "signal 9");
                }
            }
            10..=14 => {
                if let Some(id) = self.pick(&in_service) {
                    self.hangs.insert(id);
                }
            }
            15..=19 => {
                if let Some(id) = self.pick(&in_service) {
                    let on = self.rng.chance(500);
                    let _ = self.cluster.set_instance_protection(now, &id, on);
                }
            }
            20..=21 => {
                let d = MIN + self.rng.below(u64::from(MAX - MIN + 1)) as u32;
                self.trace.push(format!("{now:?} operator desired {d}"));
                self.operator_actions += 1;
                let _ = self.cluster.set_desired_capacity(now, "web", d);
            }
            22..=23 => {
                let p =
                    [ScalingProcess::Launch, ScalingProcess::Terminate][self.rng.below(2) as usize];
                let mut set: BTreeSet<ScalingProcess> =
                    self.group().suspended_processes().collect();
                if !set.remove(&p) {
                    set.insert(p);
                }
                self.operator_actions += 1;
                let _ = self.cluster.set_suspended_processes(now, "web", &set);
            }
            24..=33 => {
                self.traffic.burst = if self.rng.chance(500) {
                    self.rng.unit() * 600.0
                } else {
                    0.0
                };
            }
            34..=36 => self.zone_drill(),
            37..=38 => self.refresh(),
            39..=58 => self.lifecycle_action(),
            59..=62 => {
                if let Some(id) = self.pick(&in_service) {
                    self.trace.push(format!("{now:?} {id} falls sick"));
                    self.sick.insert(id);
                }
            }
            63..=64 => self.canary(),
            _ => {}
        }
    }

    fn zone_drill(&mut self) {
        let now = self.now;
        let zone = ZONES[self.rng.below(3) as usize];
        let drill = if self.rng.chance(600) {
            ZoneDrill::Outage
        } else {
            ZoneDrill::Shift
        };
        let status = self.cluster.zones().zone(zone).cloned();
        let active = status.is_some_and(|z| match drill {
            ZoneDrill::Outage => z.outage_until.is_some(),
            ZoneDrill::Shift => z.shift_until.is_some(),
        });
        let r = if active {
            self.cluster.zone_drill(now, zone, drill, None)
        } else {
            let d = Duration::from_secs(10 + self.rng.below(120));
            self.cluster.zone_drill(now, zone, drill, Some(d))
        };
        if r.is_ok() {
            if drill == ZoneDrill::Outage && !active {
                self.outages += 1;
            }
            self.trace.push(format!(
                "{now:?} {} {zone} (ended: {active})",
                drill.as_str()
            ));
        }
        self.operator_actions += 1;
    }

    fn refresh(&mut self) {
        let now = self.now;
        if self.rng.chance(300) {
            let _ = self.cluster.cancel_instance_refresh(now, "web");
        } else {
            let overrides = RefreshOverrides {
                min_healthy_percentage: Some(self.rng.below(101) as u32),
                instance_warmup: Some(Duration::from_secs(self.rng.below(6))),
                ..RefreshOverrides::default()
            };
            let _ = self.cluster.start_instance_refresh(now, "web", overrides);
        }
        self.operator_actions += 1;
    }

    /// The application completes (or heartbeats) one waiting lifecycle action.
    fn lifecycle_action(&mut self) {
        let now = self.now;
        let actions = self.group().lifecycle_actions();
        if actions.is_empty() {
            return;
        }
        let a = &actions[self.rng.below(actions.len() as u64) as usize];
        let (id, hook) = (a.instance_id.clone(), a.hook.clone());
        let r = match self.rng.below(4) {
            0 => None,
            1 => Some(LifecycleActionResult::Abandon),
            _ => Some(LifecycleActionResult::Continue),
        };
        let done = match r {
            Some(r) => self
                .cluster
                .complete_lifecycle_action(now, "web", &id, &hook, r),
            None => self
                .cluster
                .record_lifecycle_action_heartbeat(now, "web", &id, &hook)
                .map(|_| ()),
        };
        assert!(done.is_ok(), "a listed action was refused: {done:?}");
        self.trace.push(format!("{now:?} {hook} of {id}: {r:?}"));
    }

    /// Once the faults stop, the application completes every hook it waits for.
    fn application_continues(&mut self) {
        let now = self.now;
        for a in self.group().lifecycle_actions() {
            let _ = self.cluster.complete_lifecycle_action(
                now,
                "web",
                &a.instance_id,
                &a.hook,
                LifecycleActionResult::Continue,
            );
        }
        self.drain();
    }

    /// The canary goes bad, recovers, or an operator sends it traffic again.
    fn canary(&mut self) {
        let now = self.now;
        match self.rng.below(3) {
            0 => self.canary_bad = true,
            1 => self.canary_bad = false,
            _ => {
                let weights = [("web".to_string(), 80), (CANARY.to_string(), 20)].into();
                let _ = self
                    .cluster
                    .set_weights(now, "front", "default", None, Some(&weights));
                self.operator_actions += 1;
            }
        }
        self.trace.push(format!(
            "{now:?} canary bad={} weight={:?}",
            self.canary_bad, self.canary_weight
        ));
    }

    /// One simulated second.
    pub fn step(&mut self, disturb: bool) {
        self.now += Duration::from_secs(1);
        self.deliver_due();
        if disturb && self.disturbing {
            self.disturb();
            self.drain();
        } else {
            self.application_continues();
        }
        let before = self.group().desired_capacity();
        let rolled_before = self.canary_rolled_back();
        self.cluster.handle_timeout(self.now);
        self.drain();
        self.deliver_due();
        let after = self.group().desired_capacity();
        if after != before {
            let cause = self
                .group()
                .activities()
                .next()
                .map(|a| a.cause.clone())
                .unwrap_or_default();
            self.trace
                .push(format!("{:?} {before} → {after}: {cause}", self.now));
        }
        if !rolled_before && self.canary_rolled_back() {
            self.rollbacks += 1;
        }
        self.check();
    }

    /// Ends every fault: drills end, sick and hanging instances recover, processes resume,
    /// protection is lifted, so the group can converge.
    pub fn quiet_down(&mut self) {
        self.disturbing = false;
        let now = self.now;
        for zone in ZONES {
            let _ = self.cluster.zone_drill(now, zone, ZoneDrill::Outage, None);
            let _ = self.cluster.zone_drill(now, zone, ZoneDrill::Shift, None);
        }
        let _ = self
            .cluster
            .set_suspended_processes(now, "web", &BTreeSet::new());
        let ids: Vec<InstanceId> = self.group().instances().map(|i| i.id.clone()).collect();
        for id in ids {
            let _ = self.cluster.set_instance_protection(now, &id, false);
        }
        self.sick.clear();
        // Steady traffic, so the policy settles too.
        self.traffic.burst = 0.0;
        self.traffic.amplitude = 0.0;
        self.drain();
    }

    fn canary_rolled_back(&self) -> bool {
        self.cluster
            .forward(&spec::canary_rule())
            .and_then(|f| f.rollback)
            .is_some_and(|r| {
                matches!(
                    r.state(),
                    flotilla_control::RollbackState::RolledBack { .. }
                )
            })
    }
}
