//! Deterministic simulation of a group and its scaling controller under random load, crashes,
//! hangs, slow starts, zone outages, instance refreshes and operator actions, checking
//! invariants after every step. Odd seeds also have a warm pool and lifecycle hooks, which the
//! simulated application completes, heartbeats or lets time out.
//!
//! Every run is a function of its seed. A failure prints the seed; replay it exactly with
//! `FLOTILLA_SIM_SEED=<seed> cargo test -p flotilla-control --test sim`. Run more seeds with
//! `FLOTILLA_SIM_SEEDS=10000`.

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_control::policy::TargetTrackingSpec;
use flotilla_control::{
    AutoScalingGroup, ControllerSpec, GroupAction, GroupSpec, HealthCheckType, InstanceId,
    LifecycleActionResult, LifecycleHook, LifecycleState, LifecycleTransition, MetricQuery,
    MetricSource, RefreshPreferences, ScalingController, ScalingProcess, TerminationPolicy, Time,
    WarmPool,
};

/// SplitMix64: tiny, fast, good enough for choosing events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug)]
enum Event {
    Launched(InstanceId),
    LaunchFailed(InstanceId),
    Drained(InstanceId),
    Exited(InstanceId),
    Healthy(InstanceId),
}

const ZONES: [&str; 3] = ["az-a", "az-b", "az-c"];
const MIN: u32 = 1;
const MAX: u32 = 12;
const STABILIZATION: u64 = 30;
const DURATION: u64 = 600;

/// Total requests per second: a slow wave, plus occasional bursts and quiet spells.
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

struct Rps {
    total: f64,
    serving: usize,
}

impl MetricSource for Rps {
    fn group_metric(&self, q: &MetricQuery<'_>) -> Option<f64> {
        if q.instances.is_empty() || self.serving == 0 {
            return None;
        }
        Some(self.total / self.serving as f64)
    }
}

struct World {
    rng: Rng,
    now: Time,
    group: AutoScalingGroup,
    controller: ScalingController,
    events: Vec<(Time, u64, Event)>,
    seq: u64,
    /// Deregistered for termination and not yet drained: must not be terminated.
    draining: BTreeSet<InstanceId>,
    registered: BTreeSet<InstanceId>,
    /// Instances that will hang on Terminate (answer late).
    hangs: BTreeSet<InstanceId>,
    traffic: Traffic,
    /// Controller decisions: (time, from, to).
    decisions: Vec<(u64, u32, u32)>,
    operator_actions: u32,
    trace: Vec<String>,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let spec = GroupSpec {
            name: "web".into(),
            zones: vec!["az-a".into(), "az-b".into(), "az-c".into()],
            min_size: MIN,
            max_size: MAX,
            desired_capacity: 2,
            health_check_type: HealthCheckType::Process,
            health_check_grace_period: secs(5),
            termination_policies: vec![TerminationPolicy::Default],
            launch_template_version: 1,
            has_target_groups: true,
            lifecycle_hooks: Vec::new(),
            warm_pool: None,
        };
        // Odd seeds: a warm pool and hooks, derived from the seed alone so that even seeds
        // replay exactly as before these existed.
        let spec = if seed % 2 == 1 {
            let result = |bit: u64| {
                if seed >> bit & 1 == 1 {
                    LifecycleActionResult::Continue
                } else {
                    LifecycleActionResult::Abandon
                }
            };
            GroupSpec {
                lifecycle_hooks: vec![
                    LifecycleHook {
                        name: "warm".into(),
                        transition: LifecycleTransition::Launching,
                        heartbeat_timeout: secs(2 + (seed >> 3) % 5),
                        default_result: result(1),
                    },
                    LifecycleHook {
                        name: "flush".into(),
                        transition: LifecycleTransition::Terminating,
                        heartbeat_timeout: secs(2 + (seed >> 5) % 5),
                        default_result: result(2),
                    },
                ],
                warm_pool: Some(WarmPool {
                    min_size: ((seed >> 7) % 3) as u32,
                    max_group_prepared_capacity: None,
                    reuse_on_scale_in: seed >> 9 & 1 == 1,
                }),
                ..spec
            }
        } else {
            spec
        };
        let controller = ScalingController::new(
            ControllerSpec {
                default_instance_warmup: Some(secs(rng.below(6))),
                default_cooldown: secs(30),
                target_tracking: vec![TargetTrackingSpec {
                    name: "keep-rps".into(),
                    metric: "request_rate_per_target".into(),
                    statistic: "average".into(),
                    target_value: 100.0,
                    period: secs(1 + rng.below(5)),
                    scale_in_stabilization: secs(STABILIZATION),
                    disable_scale_in: false,
                }],
                ..ControllerSpec::default()
            },
            Time::ZERO,
        );
        let traffic = Traffic {
            base: 100.0 + rng.unit() * 400.0,
            amplitude: rng.unit() * 400.0,
            period: 20.0 + rng.unit() * 200.0,
            burst: 0.0,
        };
        World {
            group: AutoScalingGroup::new(spec, seed, Time::ZERO),
            controller,
            rng,
            now: Time::ZERO,
            events: Vec::new(),
            seq: 0,
            draining: BTreeSet::new(),
            registered: BTreeSet::new(),
            hangs: BTreeSet::new(),
            traffic,
            decisions: Vec::new(),
            operator_actions: 0,
            trace: Vec::new(),
        }
    }

    fn schedule(&mut self, delay: Duration, e: Event) {
        self.seq += 1;
        self.events.push((self.now + delay, self.seq, e));
    }

    fn pump(&mut self) {
        while let Some(a) = self.group.poll_action() {
            match a {
                GroupAction::Launch { id, zone, .. } => {
                    assert!(
                        self.group.is_zone_in_service(&zone),
                        "launch of {id} into {zone}, which is in an outage"
                    );
                    // Start-up takes 0-4 s; 5 % never come up.
                    let delay = secs(self.rng.below(5));
                    let e = if self.rng.chance(50) {
                        Event::LaunchFailed(id)
                    } else {
                        Event::Launched(id)
                    };
                    self.schedule(delay, e);
                }
                GroupAction::RegisterTargets { id } => {
                    self.registered.insert(id.clone());
                    let d = secs(self.rng.below(3));
                    self.schedule(d, Event::Healthy(id));
                }
                GroupAction::DeregisterTargets { id } => {
                    self.registered.remove(&id);
                    let terminating = self
                        .group
                        .instances()
                        .any(|i| i.id == id && i.lifecycle == LifecycleState::Terminating);
                    if terminating {
                        self.draining.insert(id.clone());
                        let d = secs(self.rng.below(6));
                        self.schedule(d, Event::Drained(id));
                    }
                }
                GroupAction::Terminate { id } => {
                    assert!(
                        !self.draining.contains(&id),
                        "Terminate for {id} while it is still draining"
                    );
                    let state = self
                        .group
                        .instances()
                        .find(|i| i.id == id)
                        .map(|i| i.lifecycle);
                    assert!(
                        !matches!(
                            state,
                            Some(
                                LifecycleState::TerminatingWait | LifecycleState::WarmedPendingWait
                            )
                        ),
                        "Terminate for {id} while its terminate hooks wait ({state:?})"
                    );
                    let d = if self.hangs.contains(&id) {
                        secs(10 + self.rng.below(30))
                    } else {
                        secs(self.rng.below(2))
                    };
                    self.schedule(d, Event::Exited(id));
                }
                GroupAction::Kill { id } => {
                    self.draining.remove(&id);
                    self.events
                        .retain(|e| !matches!(&e.2, Event::Exited(x) if *x == id));
                    self.schedule(Duration::ZERO, Event::Exited(id));
                }
            }
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
            let (_, _, e) = self.events.remove(pos);
            let now = self.now;
            match e {
                Event::Launched(id) => self.group.handle_launched(now, &id),
                Event::LaunchFailed(id) => self.group.handle_launch_failed(now, &id, "boom"),
                Event::Drained(id) => {
                    self.draining.remove(&id);
                    self.group.handle_drained(now, &id);
                }
                Event::Exited(id) => {
                    self.draining.remove(&id);
                    self.group.handle_instance_exited(now, &id, "exit status 0");
                }
                Event::Healthy(id) => {
                    if self.registered.contains(&id) {
                        self.group.handle_target_health(now, &id, true, "");
                    }
                }
            }
            self.pump();
        }
    }

    /// One weighted random disturbance.
    fn disturb(&mut self) {
        let roll = self.rng.below(1000);
        let in_service: Vec<InstanceId> = self
            .group
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .map(|i| i.id.clone())
            .collect();
        let pick = |rng: &mut Rng, v: &[InstanceId]| -> Option<InstanceId> {
            (!v.is_empty()).then(|| v[rng.below(v.len() as u64) as usize].clone())
        };
        match roll {
            0..=9 => {
                // A crash.
                if let Some(id) = pick(&mut self.rng, &in_service) {
                    self.trace.push(format!("{:?} crash {id}", self.now));
                    self.events
                        .retain(|e| !matches!(&e.2, Event::Exited(x) if *x == id));
                    self.draining.remove(&id);
                    self.group.handle_instance_exited(self.now, &id, "signal 9");
                }
            }
            10..=14 => {
                if let Some(id) = pick(&mut self.rng, &in_service) {
                    self.hangs.insert(id);
                }
            }
            15..=19 => {
                if let Some(id) = pick(&mut self.rng, &in_service) {
                    let on = self.rng.chance(500);
                    self.group.set_instance_protection(self.now, &id, on);
                }
            }
            20..=21 => {
                let d = MIN + self.rng.below(u64::from(MAX - MIN + 1)) as u32;
                self.trace
                    .push(format!("{:?} operator desired {d}", self.now));
                self.operator_actions += 1;
                let _ = self.group.set_desired_capacity(self.now, d, "operator");
            }
            22..=23 => {
                let p =
                    [ScalingProcess::Launch, ScalingProcess::Terminate][self.rng.below(2) as usize];
                if self.group.is_suspended(p) {
                    self.group.resume_process(self.now, p);
                } else {
                    self.group.suspend_process(p);
                }
                self.operator_actions += 1;
            }
            34..=35 => {
                // A zone outage, or the end of one.
                let zone = ZONES[self.rng.below(3) as usize];
                if self.group.is_zone_in_service(zone) {
                    self.trace.push(format!("{:?} outage {zone}", self.now));
                    self.group
                        .handle_zone_outage(self.now, zone, "zone outage drill");
                } else {
                    self.trace.push(format!("{:?} {zone} recovered", self.now));
                    self.group.handle_zone_recovered(self.now, zone);
                }
                self.operator_actions += 1;
            }
            36..=37 => {
                if self.rng.chance(300) {
                    let _ = self.group.cancel_instance_refresh(self.now, "operator");
                } else {
                    let prefs = RefreshPreferences::new(
                        self.rng.below(101) as u32,
                        secs(self.rng.below(6)),
                    );
                    let _ = self
                        .group
                        .start_instance_refresh(self.now, prefs, "operator");
                }
                self.operator_actions += 1;
            }
            38..=57 => {
                // The application completes (or heartbeats) one waiting lifecycle action.
                let actions = self.group.lifecycle_actions();
                if !actions.is_empty() {
                    let a = &actions[self.rng.below(actions.len() as u64) as usize];
                    let (id, hook) = (a.instance_id.clone(), a.hook.clone());
                    let r = match self.rng.below(4) {
                        0 => None,
                        1 => Some(LifecycleActionResult::Abandon),
                        _ => Some(LifecycleActionResult::Continue),
                    };
                    let done = match r {
                        Some(r) => self
                            .group
                            .complete_lifecycle_action(self.now, &id, &hook, r),
                        None => self
                            .group
                            .record_lifecycle_action_heartbeat(self.now, &id, &hook)
                            .map(|_| ()),
                    };
                    assert!(done.is_ok(), "a listed action was refused: {done:?}");
                    self.trace
                        .push(format!("{:?} {hook} of {id}: {r:?}", self.now));
                }
            }
            24..=33 => {
                self.traffic.burst = if self.rng.chance(500) {
                    self.rng.unit() * 600.0
                } else {
                    0.0
                };
            }
            _ => {}
        }
        self.pump();
    }

    fn check(&self) {
        let d = self.group.desired_capacity();
        assert!((MIN..=MAX).contains(&d), "desired {d} outside {MIN}..{MAX}");
        let live = self
            .group
            .instances()
            .filter(|i| i.lifecycle.is_live())
            .count() as u32;
        // Only in-service instances (and draining ones) are ever registered.
        for i in self.group.instances() {
            let unregistered = i.lifecycle.is_warmed()
                || matches!(
                    i.lifecycle,
                    LifecycleState::PendingWait | LifecycleState::TerminatingWait
                );
            assert!(
                !(unregistered && self.registered.contains(&i.id)),
                "{} is registered while {}",
                i.id,
                i.lifecycle.as_str()
            );
        }
        // AWS allows max + max(10 %, 1) while rebalancing; AZRebalance and instance refresh
        // launch one ahead of their termination.
        let allowance = (MAX / 10).max(1);
        assert!(
            live <= MAX + allowance,
            "{live} live instances above max {MAX} + the rebalancing allowance {allowance}"
        );
    }

    fn step(&mut self) {
        self.now += secs(1);
        let t = self.now.as_duration().as_secs();
        self.deliver_due();
        self.disturb();
        self.group.handle_timeout(self.now);
        self.pump();
        let rps = Rps {
            total: self.traffic.at(t),
            serving: self.registered.len(),
        };
        let decisions = self.controller.tick(self.now, None, &mut self.group, &rps);
        for dec in decisions {
            if dec.to < dec.from {
                let floor = self
                    .controller
                    .target_tracking_policies()
                    .filter_map(|p| p.scale_in_floor(self.now))
                    .max()
                    .unwrap_or(0);
                assert!(
                    dec.to >= floor.clamp(MIN, MAX),
                    "scale-in to {} below the stabilization floor {floor}: {}",
                    dec.to,
                    dec.cause
                );
            }
            self.trace.push(format!("{:?} {}", self.now, dec.cause));
            self.decisions.push((t, dec.from, dec.to));
        }
        self.pump();
        self.check();
    }

    fn finish(&self) {
        // Out→in reversals: a scale-in needs the whole stabilization window below the last
        // scale-out's recommendation, so at most one per window (plus what operators cause).
        let mut reversals = 0;
        let mut last_up = false;
        for (_, from, to) in &self.decisions {
            let up = to > from;
            if last_up && !up {
                reversals += 1;
            }
            last_up = up;
        }
        let bound = DURATION / STABILIZATION + 1 + u64::from(self.operator_actions);
        assert!(
            reversals <= bound,
            "{reversals} scale-out/in reversals in {DURATION}s exceed {bound}"
        );
        let ins = self.decisions.iter().filter(|d| d.2 < d.1).count() as u64;
        assert!(ins <= bound + DURATION / 5, "{ins} scale-ins is flapping");
    }
}

/// Runs one seed; returns how many instance refreshes succeeded, AZRebalance moves began and
/// warm pool instances were taken into service or returned, so the test can tell that the
/// drills and the pool were exercised at all.
fn run_seed(seed: u64) -> (usize, usize, usize) {
    let w = world_after(seed);
    w.finish();
    let refreshed = w
        .group
        .activities()
        .filter(|a| {
            a.description.starts_with("Instance refresh")
                && a.status == flotilla_control::ActivityStatus::Successful
        })
        .count();
    let rebalanced = w
        .group
        .activities()
        .filter(|a| a.cause.starts_with("AZRebalance: instances per zone"))
        .count();
    let pooled = w
        .group
        .activities()
        .filter(|a| {
            a.description
                .starts_with("Launching an instance from the warm pool")
                || a.description
                    .starts_with("Returning instance to the warm pool")
        })
        .count();
    (refreshed, rebalanced, pooled)
}

fn world_after(seed: u64) -> World {
    let mut w = World::new(seed);
    w.group.handle_timeout(Time::ZERO);
    w.pump();
    for _ in 0..DURATION {
        w.step();
    }
    w
}

fn trace_of(seed: u64) -> Vec<String> {
    world_after(seed).trace
}

#[test]
fn simulation_holds_invariants() {
    let seeds: Vec<u64> = match std::env::var("FLOTILLA_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("FLOTILLA_SIM_SEED must be a number")],
        Err(_) => {
            let n = std::env::var("FLOTILLA_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(300u64);
            (0..n).collect()
        }
    };
    let many = seeds.len() >= 100;
    let (mut refreshed, mut rebalanced, mut pooled) = (0, 0, 0);
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed));
        if let Ok((r, b, p)) = &result {
            refreshed += r;
            rebalanced += b;
            pooled += p;
        }
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "simulation failed for seed {seed}: {msg}\nreplay with FLOTILLA_SIM_SEED={seed}"
            );
        }
    }
    if many {
        assert!(
            refreshed > 0 && rebalanced > 0 && pooled > 0,
            "the drills were not exercised: {refreshed} refreshes, {rebalanced} rebalances, \
             {pooled} warm pool moves"
        );
    }
    eprintln!(
        "{refreshed} instance refreshes succeeded, {rebalanced} AZRebalance moves, {pooled} \
         warm pool moves"
    );
}

#[test]
fn simulation_replays_exactly_and_scales() {
    let a = trace_of(7);
    let b = trace_of(7);
    assert_eq!(a, b);
    assert!(
        a.iter().any(|l| l.contains("> target 100")),
        "the controller scaled out: {a:?}"
    );
    assert!(
        a.iter().any(|l| l.contains("< target 100")),
        "the controller scaled in: {a:?}"
    );
}
