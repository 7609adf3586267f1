//! The cluster-mode control core alone, at scale: a `Fleet` over 1,000 hosts in three zones
//! running 10 groups of 1,000 instances (10,000 instances), driven in virtual time by a stand-in
//! for agents and load balancer nodes. Measures the wall time of one decision cycle of each
//! kind: a steady second (timers, probes answered from votes), a host lost (its instances
//! replaced in its zone), a scale-out of 100 instances, and a new leader adopting everything.
//!
//!   cargo bench -p flotilla-control --bench plan        (bench/fleet-plan.sh)
#![allow(clippy::disallowed_methods)] // a benchmark reads the real clock: that is what it measures

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use flotilla_control::fleet::{
    Assignment, AssignmentState, FleetConfig, FleetEffect, HostSpec, Observed, Vote,
};
use flotilla_control::{
    AutoScalingGroupConfig, Cluster, ClusterSpec, Effect, Fleet, HealthCheckSpec, HealthCheckType,
    InstanceRefreshSettings, LaunchTemplate, Restored, Samples, TargetGroupSpec, TerminationPolicy,
    Time,
};

const HOSTS_FULL: usize = 1_000;
const GROUPS: usize = 10;
const PER_GROUP_FULL: u32 = 1_000;

fn hosts() -> usize {
    HOSTS_FULL / scale()
}

fn per_group() -> u32 {
    PER_GROUP_FULL / scale() as u32
}

/// `FLEET_SCALE=N` divides hosts and instances by N (a quick run while developing).
fn scale() -> usize {
    env_factor("FLEET_SCALE")
}

/// A positive whole number from the environment variable `name`; 1 when unset or invalid.
fn env_factor(name: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}
const ZONES: [&str; 3] = ["az-a", "az-b", "az-c"];

fn spec() -> ClusterSpec {
    let mut cs = ClusterSpec {
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        ..ClusterSpec::default()
    };
    cs.launch_templates.insert(
        "app".into(),
        LaunchTemplate {
            command: vec!["app".into()],
            env: BTreeMap::new(),
            working_dir: ".".into(),
            stop_signal: Default::default(),
            stop_timeout: Duration::from_secs(10),
            instance_type: "t3.micro".into(),
            user_data: None,
            image: None,
        },
    );
    for g in 0..GROUPS {
        let name = format!("g{g:02}");
        cs.target_groups.insert(
            name.clone(),
            TargetGroupSpec {
                health_check: HealthCheckSpec {
                    interval: Duration::from_secs(10),
                    timeout: Duration::from_secs(5),
                    healthy_threshold: 2,
                    unhealthy_threshold: 2,
                },
                deregistration_delay: Duration::from_secs(5),
                targets: Vec::new(),
            },
        );
        cs.groups.insert(
            name.clone(),
            AutoScalingGroupConfig {
                launch_template: "app".into(),
                target_groups: vec![name],
                zones: cs.zones.clone(),
                min_size: 0,
                max_size: 2 * per_group(),
                desired_capacity: per_group(),
                health_check_type: HealthCheckType::Elb,
                health_check_grace_period: Duration::from_secs(30),
                default_instance_warmup: None,
                default_cooldown: Duration::from_secs(300),
                termination_policies: vec![TerminationPolicy::Default],
                new_instances_protected_from_scale_in: false,
                instances_distribution: None,
                scaling_policies: Vec::new(),
                scheduled_actions: Vec::new(),
                lifecycle_hooks: Vec::new(),
                warm_pool: None,
                instance_refresh: InstanceRefreshSettings::default(),
            },
        );
    }
    cs
}

fn host(i: usize) -> (String, HostSpec) {
    let spec = HostSpec {
        zone: ZONES[i % 3].to_string(),
        address: IpAddr::from([10, (i / 250) as u8, (i % 250) as u8, 1]),
        slots: 40,
    };
    (format!("h{i:04}"), spec)
}

/// Agents and load balancer nodes, answering at once.
struct World {
    fleet: Fleet,
    now: Time,
    store: BTreeMap<String, Assignment>,
    ports: u16,
    dead: std::collections::BTreeSet<String>,
    /// `FLEET_DUMP=FILE`: every effect written, one per line, to compare two builds' decisions.
    dump: Option<std::io::BufWriter<std::fs::File>>,
}

impl World {
    fn settle(&mut self) -> usize {
        let mut n = 0;
        loop {
            let effects: Vec<FleetEffect> =
                std::iter::from_fn(|| self.fleet.poll_effect()).collect();
            if effects.is_empty() {
                return n;
            }
            n += effects.len();
            for e in effects {
                self.write(e);
            }
        }
    }

    fn dump(&mut self, e: &FleetEffect) {
        if let Some(out) = self.dump.as_mut() {
            writeln!(out, "{e:?}").expect("write FLEET_DUMP");
        }
    }

    fn write(&mut self, e: FleetEffect) {
        self.dump(&e);
        let now = self.now;
        match e {
            FleetEffect::Put(a) => {
                let id = a.id.to_string();
                if !self.dead.contains(&a.host) {
                    match a.state {
                        AssignmentState::Run if a.address.is_none() => {
                            self.ports = self.ports.wrapping_add(1).max(1024);
                            let obs = Observed::Running { port: self.ports };
                            self.fleet
                                .handle_observation(now, &a.host, &a.id, Some(obs));
                        }
                        AssignmentState::Run => {
                            for tg in &a.target_groups {
                                let vote = Vote {
                                    healthy: true,
                                    reason: String::new(),
                                };
                                self.fleet.handle_vote(now, tg, &id, "lb1", Some(vote));
                            }
                        }
                        _ => {
                            let obs = Observed::Exited {
                                status: "stopped".into(),
                            };
                            self.fleet
                                .handle_observation(now, &a.host, &a.id, Some(obs));
                        }
                    }
                }
                self.store.insert(id, a);
            }
            FleetEffect::Delete { id, .. } => {
                self.store.remove(id.as_str());
            }
            FleetEffect::Cluster(Effect::CollectSamples) => {
                let wall = jiff::Timestamp::UNIX_EPOCH;
                self.fleet.command(now, |c, now| {
                    c.handle_samples(now, wall, Samples::default())
                });
            }
            FleetEffect::Cluster(_) => {}
        }
    }

    /// One decision cycle at `now`: the timeout and everything it sets off. Returns its
    /// thread CPU time and the effects written.
    fn cycle(&mut self, now: Time, act: impl FnOnce(&mut Fleet, Time)) -> (Duration, usize) {
        self.now = now;
        let t = thread_cpu();
        act(&mut self.fleet, now);
        let n = self.settle();
        (thread_cpu().saturating_sub(t), n)
    }

    fn run_until_steady(&mut self, seconds: u64) {
        for _ in 0..seconds {
            let now = self.now + Duration::from_secs(1);
            self.cycle(now, |f, now| f.handle_timeout(now));
        }
    }
}

/// CPU time of this thread: a cycle's own cost, whatever else the machine runs (wall time on a
/// shared 2-core machine swung 3× between runs).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn report(what: &str, samples: &mut [(Duration, usize)]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    println!(
        "| {what} | {:.1} | {:.1} | {} | {} |",
        ms(median.0),
        ms(max.0),
        median.1,
        samples.len()
    );
}

/// `FLEET_REPEAT=N` runs each measured kind N times as often (to profile one of them).
fn repeat() -> usize {
    env_factor("FLEET_REPEAT")
}

fn main() {
    let cluster = Cluster::new(spec(), 1, Time::ZERO);
    let mut w = World {
        fleet: Fleet::new(cluster, FleetConfig::new(Duration::from_secs(10))),
        now: Time::ZERO,
        store: BTreeMap::new(),
        ports: 1024,
        dead: Default::default(),
        dump: std::env::var_os("FLEET_DUMP").map(|path| {
            std::io::BufWriter::new(std::fs::File::create(path).expect("create FLEET_DUMP"))
        }),
    };
    for i in 0..hosts() {
        let (name, spec) = host(i);
        w.fleet.handle_host(Time::ZERO, &name, Some(spec));
    }
    let t = Instant::now();
    w.run_until_steady(40);
    let running = w.store.values().filter(|a| a.address.is_some()).count();
    println!("{} hosts, {running} instances running in {GROUPS} groups (reached in {:.1} s of wall time)\n", hosts(), t.elapsed().as_secs_f64());
    if running != GROUPS * per_group() as usize {
        let g = w.fleet.cluster().group("g00").expect("g00");
        for a in g.asg.activities().take(8) {
            eprintln!("{} | {} | {:?}", a.description, a.cause, a.status);
        }
        let mut states = BTreeMap::new();
        for i in g.asg.instances() {
            *states.entry(i.lifecycle.as_str()).or_insert(0) += 1;
        }
        eprintln!("{states:?} store {}", w.store.len());
    }
    assert_eq!(running, GROUPS * per_group() as usize);
    println!("| decision cycle | median CPU ms | max CPU ms | effects | n |");
    println!("|---|---|---|---|---|");

    let mut steady = Vec::new();
    for _ in 0..20 {
        let now = w.now + Duration::from_secs(1);
        steady.push(w.cycle(now, |f, now| f.handle_timeout(now)));
    }
    report(
        "steady second (timers, ~1,000 probes answered from votes)",
        &mut steady,
    );

    let mut lost = Vec::new();
    for i in 0..5 * repeat() {
        let (name, _) = host(i * 7);
        w.dead.insert(name.clone());
        let now = w.now;
        w.cycle(now, |f, now| f.handle_host(now, &name, None));
        // Second by second through the grace (10 s), as a leader lives it; the second in which
        // the host is declared lost and its instances replaced (the most effects) is measured.
        let seconds: Vec<_> = (0..11)
            .map(|_| {
                let at = w.now + Duration::from_secs(1);
                w.cycle(at, |f, now| f.handle_timeout(now))
            })
            .collect();
        lost.extend(seconds.into_iter().max_by_key(|(_, effects)| *effects));
        w.run_until_steady(5);
    }
    report(
        "host lost: its ~10 instances replaced in its zone",
        &mut lost,
    );

    let mut scale = Vec::new();
    for i in 0..5 {
        let group = format!("g{i:02}");
        let now = w.now + Duration::from_secs(1);
        scale.push(w.cycle(now, |f, now| {
            f.command(now, |c, now| {
                c.set_desired_capacity(now, &group, per_group() + per_group() / 10)
            })
            .expect("scale out");
        }));
        w.run_until_steady(5);
    }
    report("scale-out of 100 instances in one group", &mut scale);

    let mut adopt: Vec<_> = (0..3 * repeat()).map(|_| new_leader(&mut w)).collect();
    report("new leader: build and adopt every instance", &mut adopt);
}

/// A new leader's first cycle: it builds its cluster, restores what operators stored, takes
/// every host and stored assignment, and runs its first timeout. Its own function so a
/// profiler can single it out (`valgrind --tool=callgrind --toggle-collect='plan::new_leader*'`).
#[inline(never)]
fn new_leader(w: &mut World) -> (Duration, usize) {
    let now = w.now;
    // What the new leader reads from the store (decoding it is the runtime's work, not the
    // core's planning: outside the measured time).
    let assignments: Vec<Assignment> = w.store.values().cloned().collect();
    let t = thread_cpu();
    let mut cluster = Cluster::new(spec(), 2, now);
    // As the real leader does (runtime/src/node/leader/build.rs): operators' desired
    // capacities come back from the store, so the scale-outs above are kept.
    let desired = (0..GROUPS)
        .map(|g| format!("g{g:02}"))
        .filter_map(|name| {
            let d = w.fleet.cluster().group(&name)?.asg.desired_capacity();
            Some((name, d))
        })
        .collect();
    let restored = Restored {
        desired,
        ..Restored::default()
    };
    cluster.restore(now, restored);
    let mut fleet = Fleet::new(cluster, FleetConfig::new(Duration::from_secs(10)));
    for i in 0..hosts() {
        let (name, spec) = host(i);
        if !w.dead.contains(&name) {
            fleet.handle_host(now, &name, Some(spec));
        }
    }
    for a in assignments {
        fleet.adopt(now, a, None);
    }
    fleet.handle_timeout(now);
    let effects: Vec<FleetEffect> = std::iter::from_fn(|| fleet.poll_effect()).collect();
    let spent = thread_cpu().saturating_sub(t);
    for e in &effects {
        w.dump(e);
    }
    (spent, effects.len())
}
