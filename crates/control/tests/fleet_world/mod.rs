//! A stand-in for cluster mode around the real [`Fleet`]: agents on hosts that start what is
//! assigned to them (reporting it running at once, on a port of their own) and stop what is
//! told to stop; load balancer nodes that vote on every registered instance; hosts that can be
//! killed and brought back; a store that can go away. All in virtual time, one second a step.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use flotilla_control::fleet::{
    Assignment, AssignmentState, FleetConfig, FleetEffect, HostSpec, Observed, Vote,
};
use flotilla_control::{
    AutoScalingGroupConfig, Cluster, ClusterSpec, Effect, Fleet, HealthCheckSpec, HealthCheckType,
    InstanceId, InstanceRefreshSettings, LaunchTemplate, Restored, Samples, TargetGroupSpec,
    TerminationPolicy, Time,
};

pub const ZONES: [&str; 3] = ["az-a", "az-b", "az-c"];
pub const GRACE: Duration = Duration::from_secs(10);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn template() -> LaunchTemplate {
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

/// One group `web` over the three zones behind target group `web` (checked every second,
/// drained for 2 s), with `health` as its health check type.
pub fn spec(desired: u32, max: u32, health: HealthCheckType) -> ClusterSpec {
    let mut cs = ClusterSpec {
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        ..ClusterSpec::default()
    };
    cs.launch_templates.insert("web".into(), template());
    cs.groups.insert(
        "web".into(),
        AutoScalingGroupConfig {
            launch_template: "web".into(),
            target_groups: vec!["web".into()],
            zones: cs.zones.clone(),
            min_size: 0,
            max_size: max,
            desired_capacity: desired,
            health_check_type: health,
            health_check_grace_period: secs(5),
            default_instance_warmup: None,
            default_cooldown: secs(300),
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
    cs.target_groups.insert(
        "web".into(),
        TargetGroupSpec {
            health_check: HealthCheckSpec {
                interval: secs(1),
                timeout: secs(1),
                healthy_threshold: 2,
                unhealthy_threshold: 2,
            },
            deregistration_delay: secs(2),
            targets: Vec::new(),
        },
    );
    cs
}

/// The world: a fleet, its hosts and agents, load balancer nodes, the store.
pub struct World {
    pub fleet: Fleet,
    pub now: Time,
    pub hosts: BTreeMap<String, HostSpec>,
    /// Hosts whose agent (and instances) are dead.
    pub dead: BTreeSet<String>,
    /// What runs, per host: instance → port.
    pub running: BTreeMap<String, BTreeMap<InstanceId, u16>>,
    /// The assignments as the store holds them.
    pub store: BTreeMap<InstanceId, Assignment>,
    /// Every effect written, in order, with its time.
    pub log: Vec<(Time, FleetEffect)>,
    /// Load balancer nodes voting.
    pub lb_nodes: Vec<String>,
    /// Instances the given nodes find unhealthy.
    pub unhealthy: BTreeMap<String, BTreeSet<InstanceId>>,
    /// Hosts no load balancer node reaches: every instance on them fails its checks.
    pub unreachable: BTreeSet<String>,
    /// Votes as the store holds them: (instance, node) → healthy.
    pub votes: BTreeMap<(InstanceId, String), bool>,
    /// Whether the store answers.
    pub store_up: bool,
    next_port: u16,
}

pub fn host(zone: &str, octet: u8, slots: u32) -> HostSpec {
    HostSpec {
        zone: zone.to_string(),
        address: IpAddr::from([10, 0, 0, octet]),
        slots,
    }
}

impl World {
    /// A fleet over `hosts` (name, spec), built as a new leader builds it.
    pub fn new(spec: ClusterSpec, hosts: &[(&str, HostSpec)]) -> Self {
        let cluster = Cluster::new(spec, 7, Time::ZERO);
        let mut w = World {
            fleet: Fleet::new(cluster, FleetConfig::new(GRACE)),
            now: Time::ZERO,
            hosts: BTreeMap::new(),
            dead: BTreeSet::new(),
            running: BTreeMap::new(),
            store: BTreeMap::new(),
            log: Vec::new(),
            lb_nodes: vec!["lb1".into(), "lb2".into(), "lb3".into()],
            unhealthy: BTreeMap::new(),
            unreachable: BTreeSet::new(),
            votes: BTreeMap::new(),
            store_up: true,
            next_port: 20_000,
        };
        for (name, h) in hosts {
            w.hosts.insert(name.to_string(), h.clone());
            w.fleet.handle_host(Time::ZERO, name, Some(h.clone()));
        }
        w
    }

    /// A new leader over this world's store: built from the stored assignments and the
    /// agents' observations, as a leader that just won the election does.
    pub fn take_over(&mut self, spec: ClusterSpec) {
        let mut cluster = Cluster::new(spec, 99, self.now);
        cluster.restore(self.now, Restored::default());
        let mut fleet = Fleet::new(cluster, FleetConfig::new(GRACE));
        for (name, h) in &self.hosts {
            if !self.dead.contains(name) {
                fleet.handle_host(self.now, name, Some(h.clone()));
            }
        }
        for a in self.store.values() {
            let observed = self.observation(&a.host, &a.id);
            fleet.adopt(self.now, a.clone(), observed);
        }
        self.fleet = fleet;
        self.settle();
    }

    fn observation(&self, host: &str, id: &InstanceId) -> Option<Observed> {
        if self.dead.contains(host) {
            return None;
        }
        self.running
            .get(host)
            .and_then(|r| r.get(id))
            .map(|port| Observed::Running { port: *port })
    }

    /// Writes every effect and plays the agents' and load balancer nodes' answers until all
    /// is quiet.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut any = false;
            while let Some(e) = self.fleet.poll_effect() {
                any = true;
                self.log.push((self.now, e.clone()));
                self.write(e);
            }
            if !any {
                return;
            }
        }
        panic!("the fleet never went quiet");
    }

    fn write(&mut self, e: FleetEffect) {
        match e {
            FleetEffect::Put(a) => {
                self.store.insert(a.id.clone(), a.clone());
                self.agent(&a);
                self.lb(&a);
            }
            FleetEffect::Delete { host, id } => {
                self.store.remove(&id);
                // The agent (when alive) stops whatever runs without an assignment.
                if !self.dead.contains(&host) {
                    if let Some(r) = self.running.get_mut(&host) {
                        r.remove(&id);
                    }
                }
                for node in self.lb_nodes.clone() {
                    if self.votes.remove(&(id.clone(), node.clone())).is_some() {
                        let now = self.now;
                        self.fleet.handle_vote(now, "web", id.as_str(), &node, None);
                    }
                }
            }
            FleetEffect::Cluster(Effect::CollectSamples) => {
                let now = self.now;
                let wall = jiff::Timestamp::UNIX_EPOCH;
                self.fleet.command(now, |c, now| {
                    c.handle_samples(now, wall, Samples::default())
                });
            }
            FleetEffect::Cluster(_) => {}
        }
    }

    /// The agent of the assignment's host carries it out.
    fn agent(&mut self, a: &Assignment) {
        if self.dead.contains(&a.host) {
            return;
        }
        let now = self.now;
        let running = self.running.entry(a.host.clone()).or_default();
        match a.state {
            AssignmentState::Run if !running.contains_key(&a.id) && a.address.is_none() => {
                self.next_port += 1;
                running.insert(a.id.clone(), self.next_port);
                let obs = Observed::Running {
                    port: self.next_port,
                };
                self.fleet
                    .handle_observation(now, &a.host, &a.id, Some(obs));
            }
            AssignmentState::Stop | AssignmentState::Kill if running.remove(&a.id).is_some() => {
                let obs = Observed::Exited {
                    status: "signal 15 (SIGTERM)".into(),
                };
                self.fleet
                    .handle_observation(now, &a.host, &a.id, Some(obs));
            }
            _ => {}
        }
    }

    /// Every load balancer node votes on a registered instance (once per verdict).
    fn lb(&mut self, a: &Assignment) {
        if !a.target_groups.contains("web") || a.state != AssignmentState::Run {
            return;
        }
        self.vote_all(&a.id);
    }

    fn vote_all(&mut self, id: &InstanceId) {
        let now = self.now;
        let cut = self
            .store
            .get(id)
            .is_some_and(|a| self.unreachable.contains(&a.host));
        for node in self.lb_nodes.clone() {
            let healthy = !cut && !self.unhealthy.get(&node).is_some_and(|s| s.contains(id));
            if self.votes.insert((id.clone(), node.clone()), healthy) == Some(healthy) {
                continue;
            }
            let vote = Vote {
                healthy,
                reason: if healthy {
                    String::new()
                } else {
                    "Target.Timeout".into()
                },
            };
            self.fleet
                .handle_vote(now, "web", id.as_str(), &node, Some(vote));
        }
    }

    /// `node` now finds `id` unhealthy (and votes so).
    pub fn make_unhealthy(&mut self, node: &str, id: &InstanceId) {
        self.unhealthy
            .entry(node.to_string())
            .or_default()
            .insert(id.clone());
        self.vote_all(id);
        self.settle();
    }

    /// Advances time by `s` seconds, a timeout at a time.
    pub fn run_for(&mut self, s: u64) {
        let end = self.now + secs(s);
        for _ in 0..100_000 {
            let next = self.fleet.poll_timeout().filter(|t| *t <= end);
            self.now = next.map_or(end, |t| t.max(self.now));
            self.fleet.handle_timeout(self.now);
            self.settle();
            if next.is_none() {
                return;
            }
        }
        panic!("time never reached its end");
    }

    /// The store goes away (`false`) or comes back.
    pub fn store(&mut self, up: bool) {
        self.store_up = up;
        let now = self.now;
        self.fleet.handle_store(now, up);
        self.settle();
    }

    /// The host's agent and instances die; its lease goes (the leader sees it at once).
    pub fn kill_host(&mut self, name: &str) {
        self.dead.insert(name.to_string());
        let now = self.now;
        self.fleet.handle_host(now, name, None);
        self.settle();
    }

    /// The host's agent and instances die, but its lease lives on for now (etcd learns of the
    /// death only when the lease's TTL runs out): the load balancer nodes' checks fail first.
    pub fn crash_host(&mut self, name: &str) {
        self.dead.insert(name.to_string());
        self.running.remove(name);
        self.cut_from_balancers(name);
    }

    /// No load balancer node reaches the host any more: they vote its instances unhealthy.
    pub fn cut_from_balancers(&mut self, name: &str) {
        self.unreachable.insert(name.to_string());
        let on_host: Vec<InstanceId> = self
            .store
            .values()
            .filter(|a| a.host == name && !a.target_groups.is_empty())
            .map(|a| a.id.clone())
            .collect();
        for id in on_host {
            self.vote_all(&id);
        }
        self.settle();
    }

    /// The lease of a crashed host runs out (the leader sees the registration go).
    pub fn expire_lease(&mut self, name: &str) {
        let now = self.now;
        self.fleet.handle_host(now, name, None);
        self.settle();
    }

    /// The host's lease goes but its instances keep running (a partition).
    pub fn partition_host(&mut self, name: &str) {
        self.dead.insert(name.to_string());
        let now = self.now;
        self.fleet.handle_host(now, name, None);
        self.settle();
    }

    /// The host comes back: its agent registers, reports what still runs and stops whatever
    /// has no assignment any more.
    pub fn heal_host(&mut self, name: &str) {
        self.dead.remove(name);
        self.unreachable.remove(name);
        let now = self.now;
        let spec = self.hosts[name].clone();
        self.fleet.handle_host(now, name, Some(spec));
        let store = &self.store;
        if let Some(r) = self.running.get_mut(name) {
            r.retain(|id, _| store.contains_key(id));
        }
        self.settle();
    }

    /// Live instances per host, from what runs on alive-or-partitioned hosts.
    pub fn instances_on(&self, host: &str) -> usize {
        self.running.get(host).map_or(0, |r| r.len())
    }

    /// Instances the store assigns to run, per zone.
    pub fn assigned_per_zone(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for a in self.store.values() {
            if a.state == AssignmentState::Run {
                *m.entry(a.zone.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Assignments written with state `Run` and no address (launches), after `since`.
    pub fn launches_since(&self, since: Time) -> Vec<InstanceId> {
        let mut seen = BTreeSet::new();
        self.log
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(_, e)| match e {
                FleetEffect::Put(a) if a.state == AssignmentState::Run && a.address.is_none() => {
                    seen.insert(a.id.clone()).then(|| a.id.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Assignments told to stop or kill after `since`.
    pub fn stops_since(&self, since: Time) -> Vec<InstanceId> {
        self.log
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(_, e)| match e {
                FleetEffect::Put(a) if a.state != AssignmentState::Run => Some(a.id.clone()),
                _ => None,
            })
            .collect()
    }

    /// The group's desired capacity and instance count in the cluster.
    pub fn group_counts(&self) -> (u32, usize) {
        let g = self.fleet.cluster().group("web").expect("group web");
        (g.asg.desired_capacity(), g.asg.instances().count())
    }

    /// Instances of the group in service and healthy, in the cluster's view.
    pub fn healthy_in_service(&self) -> usize {
        let g = self.fleet.cluster().group("web").expect("group web");
        g.asg
            .instances()
            .filter(|i| {
                i.lifecycle == flotilla_control::LifecycleState::InService
                    && i.health == flotilla_control::InstanceHealth::Healthy
            })
            .count()
    }

    /// Whether `id` is in service and healthy, in the cluster's view.
    pub fn is_healthy_in_service(&self, id: &InstanceId) -> bool {
        let g = self.fleet.cluster().group("web").expect("group web");
        g.asg.instances().any(|i| {
            i.id == *id
                && i.lifecycle == flotilla_control::LifecycleState::InService
                && i.health == flotilla_control::InstanceHealth::Healthy
        })
    }

    pub fn address_of(&self, id: &InstanceId) -> Option<SocketAddr> {
        self.store.get(id).and_then(|a| a.address)
    }
}
