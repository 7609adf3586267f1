//! Purchase options in virtual time: launches follow the mixed instances policy, scale-in
//! keeps its split, reservations cover the longest-running On-Demand instances, and a Spot
//! interruption notice is met as AWS's Capacity Rebalancing meets it — replacement first,
//! the interrupted instance drained before its deadline, killed at the deadline at the
//! latest.

mod util;

use flotilla_control::metrics::{Metric, Scope, Statistic};
use flotilla_control::pricing::{Billing, InstancesDistribution, PurchaseOption};
use flotilla_control::{GroupSpec, InstanceId, OperatorError, SpotError, Time};
use util::{at, cluster_spec, secs, spec, Driver};

fn mixed(min: u32, max: u32, desired: u32, d: InstancesDistribution) -> GroupSpec {
    GroupSpec {
        has_target_groups: true,
        instances_distribution: Some(d),
        ..spec(min, max, desired)
    }
}

fn dist(base: u32, pct: u32, rebalance: bool) -> InstancesDistribution {
    InstancesDistribution {
        on_demand_base_capacity: base,
        on_demand_percentage_above_base_capacity: pct,
        capacity_rebalance: rebalance,
        ..InstancesDistribution::default()
    }
}

fn split(d: &Driver) -> (usize, usize) {
    let live: Vec<_> = d
        .group()
        .instances()
        .filter(|i| i.lifecycle.is_live())
        .collect();
    let spot = live
        .iter()
        .filter(|i| i.purchase_option == PurchaseOption::Spot)
        .count();
    (live.len() - spot, spot)
}

fn driver(s: GroupSpec) -> Driver {
    let mut d = Driver::with_drain(s, secs(5));
    d.health_delay = Some(secs(1));
    d
}

#[test]
fn launches_follow_the_distribution_and_scale_in_keeps_the_split() {
    let mut s = mixed(0, 10, 5, dist(1, 50, false));
    s.zones = vec!["az-a".into()];
    let mut d = driver(s);
    d.run_until(at(5));
    // Base 1, then half of the other 4 On-Demand: 3 On-Demand, 2 Spot.
    assert_eq!(split(&d), (3, 2));
    d.cluster.set_desired_capacity(at(5), "web", 9).expect("9");
    d.run_until(at(10));
    assert_eq!(split(&d), (5, 4));
    // Scale-in takes whichever option keeps 1 + ceil(50 % of the rest) On-Demand.
    d.cluster.set_desired_capacity(at(10), "web", 4).expect("4");
    d.run_until(at(30));
    assert_eq!(split(&d), (3, 1));
}

#[test]
fn reservations_cover_the_oldest_on_demand_and_cost_is_recorded() {
    let mut cs = cluster_spec(&mixed(0, 10, 4, dist(2, 0, false)), secs(5));
    cs.pricing.reserved.insert("t3.micro".into(), 1);
    let mut d = Driver::with_cluster_spec(cs);
    d.health_delay = Some(secs(1));
    d.run_until(at(5));
    let bills = d.cluster.bills();
    assert_eq!(bills.len(), 4);
    let count = |b: Billing| bills.values().filter(|x| x.billing == b).count();
    assert_eq!(
        (
            count(Billing::Reserved),
            count(Billing::OnDemand),
            count(Billing::Spot)
        ),
        (1, 1, 2)
    );
    let p = flotilla_control::pricing::shipped_prices()["t3.micro"];
    let want = p.reserved_1y + p.on_demand + 2.0 * p.spot;
    let cost = d.cluster.cost_per_hour()["web"];
    assert!((cost - want).abs() < 1e-9, "{cost} vs {want}");
    let recorded = d.cluster.metrics().aggregate(
        Metric::CostPerHour,
        &Scope::Group("web".into()),
        1,
        Statistic::Average,
        at(5),
    );
    assert!(
        recorded.is_some_and(|c| (c - want).abs() < 1e-9),
        "{recorded:?}"
    );
}

/// The (time, kind) of every logged action of `id`.
fn actions_of(d: &Driver, id: &InstanceId) -> Vec<(Time, &'static str)> {
    d.log
        .iter()
        .filter(|(_, _, i)| i == id)
        .map(|(t, k, _)| (*t, *k))
        .collect()
}

fn first_spot(d: &Driver) -> InstanceId {
    d.group()
        .instances()
        .find(|i| i.purchase_option == PurchaseOption::Spot)
        .expect("a spot instance")
        .id
        .clone()
}

#[test]
fn capacity_rebalance_replaces_first_then_drains_before_the_deadline() {
    let mut d = driver(mixed(1, 6, 3, dist(0, 0, true)));
    d.run_until(at(10));
    assert_eq!(split(&d), (0, 3));
    let x = first_spot(&d);
    let victim_zone = d.zones_of()[&x].clone();
    let launches_before = d.launches().len();
    let deadline = d
        .cluster
        .interrupt_spot(at(10), &x, None)
        .expect("a notice");
    assert_eq!(deadline, at(130), "two minutes by default");
    d.run_until(at(11));
    assert_eq!(
        d.launches().len(),
        launches_before + 1,
        "replacement at once"
    );
    assert_eq!(d.launches().last().map(|l| l.0), Some(at(10)));
    d.run_until(at(140));
    let acts = actions_of(&d, &x);
    let when = |k: &str| acts.iter().find(|a| a.1 == k).map(|a| a.0);
    let (dereg, stop) = (when("deregister"), when("terminate"));
    // Drained once the replacement was healthy (launched t=10, up t=12, healthy t=13).
    assert!(dereg.is_some_and(|t| t >= at(12) && t < at(20)), "{acts:?}");
    assert!(
        stop.is_some_and(|t| t > dereg.unwrap() && t < deadline),
        "{acts:?}"
    );
    assert_eq!(when("kill"), None, "{acts:?}");
    assert_eq!(d.healthy_in_service(), 3);
    let zone_of = |id: &InstanceId| d.zones_of().get(id).cloned();
    let replacement = d
        .log
        .iter()
        .rev()
        .find(|l| l.1 == "launch")
        .map(|l| l.2.clone());
    assert_eq!(
        replacement.as_ref().and_then(zone_of),
        Some(victim_zone),
        "the replacement takes the interrupted instance's zone"
    );
    let notice = d
        .group()
        .activities()
        .find(|a| a.description.starts_with("Spot interruption notice"))
        .expect("the notice is an activity");
    assert!(notice
        .cause
        .contains("capacity rebalance launches its replacement now"));
}

#[test]
fn without_rebalance_the_instance_drains_its_delay_before_the_deadline() {
    let mut d = driver(mixed(1, 6, 3, dist(0, 0, false)));
    d.run_until(at(10));
    let x = first_spot(&d);
    let launches_before = d.launches().len();
    d.cluster
        .interrupt_spot(at(10), &x, Some(secs(30)))
        .expect("a notice");
    d.run_until(at(24));
    assert_eq!(d.launches().len(), launches_before, "no replacement yet");
    d.run_until(at(45));
    let acts = actions_of(&d, &x);
    // Deadline t=40; the target group drains 5 s and the template stops within 10 s:
    // deregistered at t=25, replaced then, stopped before the deadline.
    assert_eq!(
        acts.iter().find(|a| a.1 == "deregister").map(|a| a.0),
        Some(at(25))
    );
    assert_eq!(d.launches().last().map(|l| l.0), Some(at(25)));
    assert!(
        acts.iter().any(|a| a.1 == "terminate" && a.0 < at(40)),
        "{acts:?}"
    );
    assert!(!acts.iter().any(|a| a.1 == "kill"), "{acts:?}");
}

#[test]
fn the_deadline_takes_the_instance_whatever_it_does() {
    let mut d = driver(mixed(1, 6, 3, dist(0, 0, false)));
    d.stop_delay = secs(600); // ignores its stop signal
    d.run_until(at(10));
    let x = first_spot(&d);
    d.cluster
        .interrupt_spot(at(10), &x, Some(secs(20)))
        .expect("a notice");
    d.run_until(at(40));
    let acts = actions_of(&d, &x);
    assert!(acts.contains(&(at(30), "kill")), "{acts:?}");
    assert!(d.group().instances().all(|i| i.id != x));
}

#[test]
fn only_spot_instances_in_service_get_one_notice() {
    let mut d = driver(mixed(1, 6, 2, dist(1, 0, false)));
    d.run_until(at(10));
    let od = d
        .group()
        .instances()
        .find(|i| i.purchase_option == PurchaseOption::OnDemand)
        .expect("the base")
        .id
        .clone();
    let spot = first_spot(&d);
    assert!(matches!(
        d.cluster.interrupt_spot(at(10), &od, None),
        Err(OperatorError::Spot(SpotError::NotSpot(..)))
    ));
    d.cluster
        .interrupt_spot(at(10), &spot, None)
        .expect("first");
    assert!(matches!(
        d.cluster.interrupt_spot(at(10), &spot, None),
        Err(OperatorError::Spot(SpotError::AlreadyNoticed(_)))
    ));
    assert!(matches!(
        d.cluster
            .interrupt_spot(at(10), &InstanceId::from("i-nope".to_string()), None),
        Err(OperatorError::NoInstance(_))
    ));
}

#[test]
fn the_drill_interrupts_at_its_rate_and_replays() {
    let run = || {
        let mut cs = cluster_spec(&mixed(1, 12, 6, dist(0, 0, true)), secs(5));
        let g = cs.groups.get_mut("web").expect("web");
        if let Some(d) = g.instances_distribution.as_mut() {
            // 60 per instance-hour: one a minute per instance on average.
            d.spot_interruption_rate = 60.0;
            d.spot_interruption_notice = secs(30);
        }
        let mut d = Driver::with_cluster_spec(cs);
        d.health_delay = Some(secs(1));
        d.run_until(at(600));
        let notices: Vec<(Time, String)> = d
            .group()
            .activities()
            .filter(|a| a.description.starts_with("Spot interruption notice"))
            .map(|a| (a.time, a.description.clone()))
            .collect();
        (notices, d.healthy_in_service())
    };
    let (a, healthy) = run();
    // 6 instances × 10 minutes at one a minute: about 60 (it replays exactly, so this is a
    // fixed number; the bounds only say the rate is about right).
    assert!((30..=90).contains(&a.len()), "{}", a.len());
    assert_eq!(run().0, a, "same seed, same interruptions");
    assert!(
        healthy >= 5,
        "capacity rebalance keeps the group serving: {healthy}"
    );
}
