//! Cluster mode, ELB health checks against host loss, in virtual time: a host that dies with
//! its instances is seen by the load balancer nodes' checks long before its lease runs out;
//! the group replaces what they condemn then (as an ASG with `health_check_type = "ELB"`
//! does), the old instances' terminations wait for the host to be lost, no replacement goes
//! to a host whose every instance fails, and a zone whose checks all fail is replaced one
//! batch at a time.

mod fleet_world;

use std::collections::BTreeSet;

use fleet_world::{host, spec, World, GRACE};
use flotilla_control::fleet::{AssignmentState, HostSpec};
use flotilla_control::{HealthCheckType, InstanceId};

fn six_hosts() -> Vec<(&'static str, HostSpec)> {
    vec![
        ("a1", host("az-a", 11, 4)),
        ("a2", host("az-a", 12, 4)),
        ("b1", host("az-b", 21, 4)),
        ("b2", host("az-b", 22, 4)),
        ("c1", host("az-c", 31, 4)),
        ("c2", host("az-c", 32, 4)),
    ]
}

fn on_host(w: &World, name: &str) -> Vec<InstanceId> {
    w.store
        .values()
        .filter(|a| a.host == name)
        .map(|a| a.id.clone())
        .collect()
}

/// Nine instances (two on one host of each zone): the host with two of them dies with its
/// instances while its lease lives on. Both are replaced on other hosts and healthy before the
/// lease could have expired — the first replacement being healthy frees the batch for the
/// second, although the first old instance's stop cannot be confirmed. Their assignments stay
/// (stopping) until the lease expires and the host is lost; then they go, nothing runs twice,
/// and the host comes back empty.
#[test]
fn elb_unhealthy_instances_of_a_dead_host_are_replaced_before_its_lease_expires() {
    let mut w = World::new(spec(9, 12, HealthCheckType::Elb), &six_hosts());
    w.run_for(20);
    assert_eq!(w.healthy_in_service(), 9);
    let victim = ["a1", "a2", "b1", "b2", "c1", "c2"]
        .into_iter()
        .find(|h| on_host(&w, h).len() == 2)
        .expect("a host with two instances");
    let old = on_host(&w, victim);
    let t0 = w.now;
    w.crash_host(victim);
    w.run_for(GRACE.as_secs() - 2);
    let launched = w.launches_since(t0);
    assert_eq!(launched.len(), 2, "both replaced: {launched:?}");
    for id in &launched {
        let a = &w.store[id];
        assert_ne!(a.host, victim, "{id} placed on the dead host");
        assert_eq!(a.state, AssignmentState::Run);
        assert!(a.address.is_some(), "{id} runs");
    }
    assert_eq!(w.healthy_in_service(), 9, "capacity is back");
    for id in &old {
        assert_eq!(
            w.store.get(id).map(|a| a.state),
            Some(AssignmentState::Stop),
            "{id}: the stop waits for its host"
        );
    }
    w.expire_lease(victim);
    w.run_for(GRACE.as_secs() + 5);
    assert!(
        on_host(&w, victim).is_empty(),
        "the lost host's assignments went"
    );
    assert_eq!(w.launches_since(t0).len(), 2, "nothing replaced twice");
    assert_eq!(w.store.len(), 9);
    assert!(w.store.values().all(|a| a.state == AssignmentState::Run));
    assert_eq!(w.group_counts(), (9, 9));
    w.heal_host(victim);
    w.run_for(30);
    assert_eq!(w.instances_on(victim), 0, "nothing of the old runs there");
    assert_eq!(w.store.len(), 9);
    assert_eq!(w.healthy_in_service(), 9);
}

/// Both hosts of a zone die while their leases live on: every check of the zone fails. The
/// group replaces them one batch (one instance) at a time: the next old instance is taken
/// out only once the previous replacement is healthy, and the replacements go to the other
/// zones (no new instance is placed on a host whose every instance fails). Nothing else is
/// stopped. When the leases expire, the old instances' assignments go as the disrupted zone's
/// hosts are lost, and nothing more is launched.
#[test]
fn a_zone_whose_health_checks_all_fail_is_replaced_one_batch_at_a_time() {
    let mut w = World::new(spec(6, 12, HealthCheckType::Elb), &six_hosts());
    w.run_for(20);
    let zone_a: BTreeSet<InstanceId> = on_host(&w, "a1")
        .into_iter()
        .chain(on_host(&w, "a2"))
        .collect();
    assert_eq!(zone_a.len(), 2);
    let t0 = w.now;
    w.crash_host("a1");
    w.crash_host("a2");
    let mut most_in_flight = 0;
    for _ in 0..GRACE.as_secs() - 1 {
        w.run_for(1);
        let taken_out = zone_a
            .iter()
            .filter(|id| !w.is_healthy_in_service(id))
            .count();
        let healthy_new = w
            .launches_since(t0)
            .iter()
            .filter(|id| w.is_healthy_in_service(id))
            .count();
        most_in_flight = most_in_flight.max(taken_out.saturating_sub(healthy_new));
    }
    assert_eq!(most_in_flight, 1, "one replacement in flight at a time");
    let launched = w.launches_since(t0);
    assert_eq!(launched.len(), 2, "{launched:?}");
    for id in &launched {
        assert_ne!(w.store[id].zone, "az-a", "{id} placed in the dead zone");
    }
    let stopped: BTreeSet<InstanceId> = w.stops_since(t0).into_iter().collect();
    assert_eq!(stopped, zone_a, "only the zone's instances are stopped");
    assert_eq!(w.healthy_in_service(), 6);
    w.expire_lease("a1");
    w.expire_lease("a2");
    w.run_for(GRACE.as_secs() * 3 + 10);
    assert_eq!(w.launches_since(t0).len(), 2, "nothing launched twice");
    assert_eq!(w.group_counts(), (6, 6));
    assert!(w.store.values().all(|a| a.zone != "az-a"));
    assert!(w.store.values().all(|a| a.state == AssignmentState::Run));
}

/// A host whose instances fail their checks while its agent is alive (the application hangs):
/// the agent carries out the stops, and the group replaces the host's instances one after the
/// other as their replacements become healthy; the host itself stays and takes work.
#[test]
fn unhealthy_instances_on_a_live_host_are_stopped_by_its_agent() {
    let mut w = World::new(spec(9, 12, HealthCheckType::Elb), &six_hosts());
    w.run_for(20);
    let victim = ["a1", "a2", "b1", "b2", "c1", "c2"]
        .into_iter()
        .find(|h| on_host(&w, h).len() == 2)
        .expect("a host with two instances");
    let old = on_host(&w, victim);
    for node in w.lb_nodes.clone() {
        for id in &old {
            w.make_unhealthy(&node, id);
        }
    }
    w.run_for(30);
    for id in &old {
        assert!(!w.store.contains_key(id), "{id} was stopped and forgotten");
    }
    assert_eq!(w.group_counts(), (9, 9));
    assert_eq!(w.healthy_in_service(), 9);
}
