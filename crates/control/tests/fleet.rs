//! Cluster mode's decisions in virtual time: placement, host loss (grace, disrupted zones, every
//! zone down), the store going away, a new leader taking over, health votes, drain before stop.

mod fleet_world;

use std::collections::BTreeMap;

use fleet_world::{host, secs, spec, World, GRACE};
use flotilla_control::fleet::{AssignmentState, FleetEffect};
use flotilla_control::{HealthCheckType, InstanceId};

/// Two hosts per zone with `slots` each: a1, a2, b1, b2, c1, c2.
fn six_hosts(slots: u32) -> Vec<(&'static str, flotilla_control::fleet::HostSpec)> {
    vec![
        ("a1", host("az-a", 11, slots)),
        ("a2", host("az-a", 12, slots)),
        ("b1", host("az-b", 21, slots)),
        ("b2", host("az-b", 22, slots)),
        ("c1", host("az-c", 31, slots)),
        ("c2", host("az-c", 32, slots)),
    ]
}

fn per_host(w: &World) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in w.store.values() {
        *m.entry(a.host.clone()).or_insert(0) += 1;
    }
    m
}

fn started(desired: u32, hosts: &[(&str, flotilla_control::fleet::HostSpec)]) -> World {
    let mut w = World::new(spec(desired, 12, HealthCheckType::Process), hosts);
    w.run_for(10);
    w
}

/// Six instances over three zones of two hosts each: two per zone, one per host (fewest of
/// the group first), each on a host of its own zone, each running at the address it reported.
#[test]
fn placement_spreads_a_group_over_zones_and_hosts() {
    let w = started(6, &six_hosts(4));
    assert_eq!(w.store.len(), 6);
    assert_eq!(per_host(&w).values().copied().collect::<Vec<_>>(), [1; 6]);
    for a in w.store.values() {
        assert_eq!(
            w.hosts[&a.host].zone, a.zone,
            "{} placed outside its zone",
            a.id
        );
        assert_eq!(a.state, AssignmentState::Run);
        let addr = a.address.expect("running instances have an address");
        assert_eq!(addr.ip(), w.hosts[&a.host].address);
        assert!(a.target_groups.contains("web"), "{} is registered", a.id);
    }
    assert_eq!(w.group_counts(), (6, 6));
}

/// With equal counts of the group, the host with the most free slots wins.
#[test]
fn placement_prefers_most_free_slots_after_fewest_of_the_group() {
    let hosts = [
        ("a-small", host("az-a", 11, 1)),
        ("a-big", host("az-a", 12, 5)),
        ("b1", host("az-b", 21, 5)),
        ("c1", host("az-c", 31, 5)),
    ];
    let w = started(3, &hosts);
    let a_zone: Vec<&str> = w
        .store
        .values()
        .filter(|a| a.zone == "az-a")
        .map(|a| a.host.as_str())
        .collect();
    assert_eq!(a_zone, ["a-big"]);
}

/// A zone without room fails its launches; the group launches in the other zones instead.
#[test]
fn a_zone_without_room_launches_elsewhere() {
    let hosts = [
        ("a1", host("az-a", 11, 0)),
        ("b1", host("az-b", 21, 4)),
        ("c1", host("az-c", 31, 4)),
    ];
    let mut w = started(3, &hosts);
    w.run_for(60);
    let zones = w.assigned_per_zone();
    assert_eq!(zones.get("az-a"), None);
    assert_eq!(zones.values().sum::<usize>(), 3, "{zones:?}");
    assert_eq!(w.group_counts(), (3, 3));
}

/// A host whose lease goes is lost only after the grace: before it nothing moves; then its
/// instance is replaced on the other host of its zone and its assignment deleted.
#[test]
fn a_lost_host_is_replaced_in_its_zone_after_the_grace() {
    let mut w = started(3, &six_hosts(4));
    let victim = w
        .store
        .values()
        .find(|a| a.zone == "az-a")
        .expect("az-a")
        .clone();
    let t0 = w.now;
    w.kill_host(&victim.host);
    w.run_for(GRACE.as_secs() - 1);
    assert!(
        w.launches_since(t0).is_empty(),
        "nothing replaced before the grace"
    );
    assert!(w.store.contains_key(&victim.id));
    w.run_for(5);
    let launched = w.launches_since(t0);
    assert_eq!(launched.len(), 1, "one replacement: {launched:?}");
    let replacement = &w.store[&launched[0]];
    assert_eq!(replacement.zone, "az-a");
    assert_ne!(replacement.host, victim.host);
    assert!(
        !w.store.contains_key(&victim.id),
        "the lost instance's assignment is gone"
    );
    assert!(w
        .log
        .iter()
        .any(|(_, e)| matches!(e, FleetEffect::Delete { id, .. } if *id == victim.id)));
    assert_eq!(w.group_counts(), (3, 3));
}

/// A host back before its grace ends keeps its instances: nothing is replaced.
#[test]
fn a_host_back_within_the_grace_keeps_its_instances() {
    let mut w = started(3, &six_hosts(4));
    let victim = w.store.values().next().expect("one").clone();
    let t0 = w.now;
    w.partition_host(&victim.host);
    w.run_for(GRACE.as_secs() / 2);
    w.heal_host(&victim.host);
    w.run_for(GRACE.as_secs() * 3);
    assert!(w.launches_since(t0).is_empty());
    assert!(w.stops_since(t0).is_empty());
    assert_eq!(w.store[&victim.id].state, AssignmentState::Run);
}

/// Both hosts of a zone go at once (a disrupted zone): the first is lost at the grace, the
/// second one interval later, not both at once; the replacements go to the other zones.
#[test]
fn a_disrupted_zone_loses_one_host_per_interval() {
    let mut w = started(6, &six_hosts(4));
    let t0 = w.now;
    w.kill_host("a1");
    w.kill_host("a2");
    w.run_for(GRACE.as_secs() + 2);
    let first = w.launches_since(t0);
    assert_eq!(
        first.len(),
        1,
        "one host's instance replaced first: {first:?}"
    );
    w.run_for(GRACE.as_secs());
    let both = w.launches_since(t0);
    assert_eq!(both.len(), 2, "then the second host's: {both:?}");
    for id in &both {
        assert_ne!(w.store[id].zone, "az-a");
    }
    w.run_for(30);
    assert_eq!(w.group_counts(), (6, 6));
}

/// Every zone loses its hosts at once: that is our problem, not the fleet's — nothing is
/// replaced however long it lasts, and when the hosts return everything simply goes on.
#[test]
fn losing_every_zone_replaces_nothing() {
    let mut w = started(3, &six_hosts(4));
    let t0 = w.now;
    for h in ["a1", "a2", "b1", "b2", "c1", "c2"] {
        w.partition_host(h);
    }
    w.run_for(GRACE.as_secs() * 10);
    assert!(w.launches_since(t0).is_empty());
    assert!(w.stops_since(t0).is_empty());
    assert_eq!(w.store.len(), 3);
    for h in ["a1", "a2", "b1", "b2", "c1", "c2"] {
        w.heal_host(h);
    }
    w.run_for(30);
    assert!(w.launches_since(t0).is_empty());
    assert_eq!(w.store.len(), 3);
}

/// While the store is away nothing is decided: a host lost before the outage is not replaced
/// during it, no probe times out into a verdict, nothing is stopped; after its return the
/// host's loss is acted on and nothing else changes.
#[test]
fn nothing_is_launched_or_stopped_while_the_store_is_away() {
    let mut w = World::new(spec(3, 12, HealthCheckType::Elb), &six_hosts(4));
    w.run_for(10);
    let t0 = w.now;
    let victim = w.store.values().next().expect("one").clone();
    w.store(false);
    w.kill_host(&victim.host);
    w.run_for(60);
    assert!(w.fleet.is_paused());
    assert!(w.launches_since(t0).is_empty(), "nothing launched");
    assert!(w.stops_since(t0).is_empty(), "nothing stopped");
    w.store(true);
    w.run_for(30);
    let lost: Vec<InstanceId> = w
        .log
        .iter()
        .filter_map(|(_, e)| match e {
            FleetEffect::Delete { host, id } if *host == victim.host => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(lost, std::slice::from_ref(&victim.id));
    let launched = w.launches_since(t0);
    assert_eq!(launched.len(), 1, "only the lost host's instance replaced");
    assert!(
        w.stops_since(t0).is_empty(),
        "no healthy instance was stopped"
    );
    assert_eq!(w.group_counts(), (3, 3));
}

/// A new leader builds from the store: it adopts every running instance, launches nothing,
/// stops nothing, and then keeps deciding (a scale-out places one more instance).
#[test]
fn a_new_leader_adopts_without_duplicates() {
    let mut w = started(6, &six_hosts(4));
    let before: Vec<InstanceId> = w.store.keys().cloned().collect();
    let t0 = w.now;
    w.take_over(spec(6, 12, HealthCheckType::Process));
    w.run_for(20);
    assert!(w.launches_since(t0).is_empty(), "no duplicate launches");
    assert!(w.stops_since(t0).is_empty());
    assert_eq!(w.store.keys().cloned().collect::<Vec<_>>(), before);
    assert_eq!(w.group_counts(), (6, 6));
    let now = w.now;
    w.fleet
        .command(now, |c, now| c.set_desired_capacity(now, "web", 7))
        .expect("scale out");
    w.settle();
    w.run_for(10);
    assert_eq!(w.launches_since(t0).len(), 1);
    assert_eq!(w.group_counts(), (7, 7));
}

/// A new leader finds a launch its predecessor never saw confirmed: the agent reports it
/// running, so it is adopted rather than launched again.
#[test]
fn a_new_leader_adopts_a_launch_confirmed_only_by_its_agent() {
    let mut w = started(3, &six_hosts(4));
    for a in w.store.values_mut() {
        a.address = None; // the previous leader died before writing the address
    }
    let t0 = w.now;
    w.take_over(spec(3, 12, HealthCheckType::Process));
    w.run_for(10);
    assert!(w.launches_since(t0).is_empty());
    assert!(w.stops_since(t0).is_empty());
    assert_eq!(w.group_counts(), (3, 3));
    assert!(w.store.values().all(|a| a.address.is_some()));
}

/// Health is the load balancer nodes' majority: one node of three calling an instance
/// unhealthy changes nothing; a second one makes it unhealthy and (`elb` group) replaced.
#[test]
fn health_votes_count_by_majority() {
    let mut w = World::new(spec(3, 12, HealthCheckType::Elb), &six_hosts(4));
    w.run_for(20);
    let victim = w.store.keys().next().expect("one").clone();
    let t0 = w.now;
    w.make_unhealthy("lb1", &victim);
    w.run_for(10);
    assert!(
        w.stops_since(t0).is_empty(),
        "one vote of three is not a verdict"
    );
    w.make_unhealthy("lb2", &victim);
    w.run_for(20);
    assert!(w.stops_since(t0).contains(&victim), "two of three are");
    assert_eq!(w.launches_since(t0).len(), 1);
    assert!(!w.store.contains_key(&victim));
    assert_eq!(w.group_counts(), (3, 3));
}

/// Scale-in deregisters first: the assignment loses its target group (load balancer nodes
/// drain it) before a later write tells its agent to stop it.
#[test]
fn an_instance_is_deregistered_before_it_is_stopped() {
    let mut w = started(3, &six_hosts(4));
    let t0 = w.now;
    let now = w.now;
    w.fleet
        .command(now, |c, now| c.set_desired_capacity(now, "web", 2))
        .expect("scale in");
    w.settle();
    w.run_for(10);
    let writes: Vec<(flotilla_control::Time, bool, AssignmentState)> = w
        .log
        .iter()
        .filter(|(t, _)| *t >= t0)
        .filter_map(|(t, e)| match e {
            FleetEffect::Put(a) => Some((*t, a.target_groups.is_empty(), a.state)),
            _ => None,
        })
        .collect();
    let deregistered = writes
        .iter()
        .position(|(_, unregistered, s)| *unregistered && *s == AssignmentState::Run)
        .expect("a write that deregisters");
    let stopped = writes
        .iter()
        .position(|(_, _, s)| *s == AssignmentState::Stop)
        .expect("a write that stops");
    assert!(deregistered < stopped, "{writes:?}");
    assert!(
        writes[stopped].0 >= writes[deregistered].0 + secs(2),
        "the stop waits for the deregistration delay: {writes:?}"
    );
    assert_eq!(w.group_counts(), (2, 2));
    assert_eq!(w.store.len(), 2);
}

/// A lost host that comes back takes instances again, and what it ran before was deleted
/// (its agent stops it): capacity never runs low, and nothing is assigned twice.
#[test]
fn a_healed_host_gets_work_again_and_its_replaced_instances_stay_gone() {
    let mut w = started(3, &six_hosts(1));
    let victim = w
        .store
        .values()
        .find(|a| a.zone == "az-b")
        .expect("az-b")
        .clone();
    w.partition_host(&victim.host);
    w.run_for(GRACE.as_secs() + 5);
    assert!(!w.store.contains_key(&victim.id));
    w.heal_host(&victim.host);
    assert_eq!(
        w.instances_on(&victim.host),
        0,
        "the agent stopped the replaced instance"
    );
    let now = w.now;
    w.fleet
        .command(now, |c, now| c.set_desired_capacity(now, "web", 6))
        .expect("scale out");
    w.settle();
    w.run_for(10);
    assert_eq!(per_host(&w).values().copied().collect::<Vec<_>>(), [1; 6]);
}

/// A load balancer node checks the targets the assignments name itself: a new target is
/// probed at once and voted healthy on its first success, routed meanwhile; one no longer
/// named drains for the deregistration delay, is withdrawn from routing and its vote taken back.
#[test]
fn a_load_balancer_node_checks_votes_and_drains_its_targets() {
    use flotilla_control::fleet::{LbAction, LbTarget, LbTargets};
    use flotilla_control::{ProbeResult, TargetState, Time};

    let specs = spec(1, 1, HealthCheckType::Process).target_groups;
    let mut lb = LbTargets::default();
    let t = |s: u64| Time::ZERO + secs(s);
    lb.configure(t(0), &specs);
    let target = LbTarget {
        address: "10.0.0.11:4000".parse().unwrap(),
        instance: InstanceId::from("i-1".to_string()),
        zone: "az-a".into(),
    };
    lb.set_targets(t(0), "web", std::slice::from_ref(&target));
    let actions: Vec<LbAction> = std::iter::from_fn(|| lb.poll_action()).collect();
    assert!(actions.contains(&LbAction::Probe {
        target_group: "web".into(),
        target: target.address
    }));
    lb.handle_probe_result(t(0), "web", target.address, ProbeResult::Success);
    let actions: Vec<LbAction> = std::iter::from_fn(|| lb.poll_action()).collect();
    assert!(actions.contains(&LbAction::Vote {
        target_group: "web".into(),
        key: "i-1".into(),
        healthy: true,
        reason: String::new()
    }));
    let published = actions.iter().rev().find_map(|a| match a {
        LbAction::Publish { targets, .. } => Some(targets.clone()),
        _ => None,
    });
    let published = published.expect("a routing list");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].state, TargetState::Healthy);
    assert_eq!(published[0].zone.as_deref(), Some("az-a"));

    lb.set_targets(t(1), "web", &[]);
    let actions: Vec<LbAction> = std::iter::from_fn(|| lb.poll_action()).collect();
    let draining = actions.iter().any(|a| {
        matches!(a, LbAction::Publish { targets, .. }
        if targets.len() == 1 && targets[0].state == TargetState::Draining)
    });
    assert!(draining, "{actions:?}");
    assert_eq!(lb.draining_targets().len(), 1);
    lb.handle_timeout(t(1) + secs(2));
    let actions: Vec<LbAction> = std::iter::from_fn(|| lb.poll_action()).collect();
    assert!(actions.contains(&LbAction::Unvote {
        target_group: "web".into(),
        key: "i-1".into()
    }));
    assert!(actions
        .iter()
        .any(|a| matches!(a, LbAction::Publish { targets, .. } if targets.is_empty())));
    assert!(lb.draining_targets().is_empty());
}
