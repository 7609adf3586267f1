//! Picking over snapshots: zonal shifts, cross-zone shares, retries in another zone, and
//! passive-health ejection on the group's clock.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{RouteState, TargetGroup, TargetUpdate};
use crate::lb::balance::{Algorithm, Clock, TargetGroupSettings};

fn target(port: u16, zone: &str, state: RouteState) -> TargetUpdate {
    TargetUpdate {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        instance_id: None,
        zone: Some(zone.to_string()),
        state,
    }
}

/// Ports picked by `n` round-robin picks.
fn picked(tg: &TargetGroup, n: usize) -> std::collections::BTreeSet<u16> {
    (0..n)
        .filter_map(|_| tg.pick(None))
        .map(|b| b.addr.port())
        .collect()
}

/// A retry after a connection failure goes to another host's target when there is one
/// (its host may have died with every target on it), and to another target of the same
/// address otherwise.
#[test]
fn a_retry_prefers_another_host() {
    let tg = TargetGroup::new("web");
    let at = |ip: [u8; 4], port| TargetUpdate {
        addr: SocketAddr::from((ip, port)),
        instance_id: None,
        zone: None,
        state: RouteState::Healthy,
    };
    tg.update(vec![
        at([10, 0, 0, 1], 1),
        at([10, 0, 0, 1], 2),
        at([10, 0, 0, 1], 3),
        at([10, 0, 0, 2], 4),
    ]);
    let failed = tg.pick(None).expect("a target");
    let failed = if failed.addr.port() == 4 {
        tg.pick(None).expect("a target")
    } else {
        failed
    };
    for _ in 0..20 {
        let retry = tg.pick(Some(&failed)).expect("a retry target");
        assert_eq!(retry.addr.port(), 4, "another host's target");
    }
    let same_host = TargetGroup::new("up");
    same_host.update(vec![
        target(1, "az-a", RouteState::Healthy),
        target(2, "az-a", RouteState::Healthy),
    ]);
    let failed = same_host.pick(None).expect("a target");
    let retry = same_host.pick(Some(&failed)).expect("a retry target");
    assert_ne!(retry.addr, failed.addr);
}

#[test]
fn a_zonal_shift_skips_its_zone_and_fails_open_when_nothing_else_is_left() {
    let tg = TargetGroup::new("web");
    tg.update(vec![
        target(1, "az-a", RouteState::Healthy),
        target(2, "az-b", RouteState::Healthy),
        target(3, "az-b", RouteState::Unhealthy),
    ]);
    assert_eq!(picked(&tg, 10), [1, 2].into());
    tg.set_shifted_zones(vec!["az-b".into()]);
    assert_eq!(picked(&tg, 10), [1].into());
    // Updates keep honouring the shift.
    tg.update(vec![
        target(1, "az-a", RouteState::Healthy),
        target(2, "az-b", RouteState::Healthy),
        target(4, "az-c", RouteState::Healthy),
    ]);
    assert_eq!(picked(&tg, 10), [1, 4].into());
    // Every healthy target in the shifted zones: fail open to them.
    tg.set_shifted_zones(vec!["az-a".into(), "az-b".into(), "az-c".into()]);
    assert_eq!(picked(&tg, 10), [1, 2, 4].into());
    tg.set_shifted_zones(vec!["az-a".into(), "az-c".into()]);
    assert_eq!(picked(&tg, 10), [2].into());
    tg.set_shifted_zones(Vec::new());
    assert_eq!(picked(&tg, 10), [1, 2, 4].into());
    // Draining targets stay out whatever the shift.
    tg.update(vec![
        target(1, "az-a", RouteState::Draining),
        target(2, "az-b", RouteState::Healthy),
    ]);
    tg.set_shifted_zones(vec!["az-b".into()]);
    assert_eq!(picked(&tg, 10), [2].into());
}

/// Picks per port over `n` picks.
fn counts(tg: &TargetGroup, n: usize) -> std::collections::BTreeMap<u16, usize> {
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..n {
        if let Some(b) = tg.pick(None) {
            *out.entry(b.addr.port()).or_default() += 1;
        }
    }
    out
}

#[test]
fn cross_zone_off_gives_each_zone_an_equal_share_whatever_its_target_count() {
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRandom,
        Algorithm::LeastOutstandingRequests,
    ] {
        let tg = TargetGroup::with_settings(
            "web",
            TargetGroupSettings {
                algorithm,
                cross_zone: false,
                ..TargetGroupSettings::default()
            },
        );
        tg.update(vec![
            target(1, "az-a", RouteState::Healthy),
            target(2, "az-b", RouteState::Healthy),
            target(3, "az-b", RouteState::Healthy),
            target(4, "az-b", RouteState::Healthy),
            // Unhealthy: its zone has nothing routable and gets nothing.
            target(5, "az-c", RouteState::Unhealthy),
        ]);
        let c = counts(&tg, 4000);
        let a = c.get(&1).copied().unwrap_or(0);
        assert!((1800..2200).contains(&a), "{algorithm:?}: {c:?}");
        assert!(!c.contains_key(&5), "{c:?}");
        for port in [2, 3, 4] {
            let n = c.get(&port).copied().unwrap_or(0);
            assert!((500..850).contains(&n), "{algorithm:?}: {c:?}");
        }
        // Flows too: each zone gets about half.
        let in_a = (0..4000u64)
            .filter_map(|h| tg.pick_flow(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), None))
            .filter(|b| b.addr.port() == 1)
            .count();
        assert!((1800..2200).contains(&in_a), "{in_a}");
        // On: per-target shares.
        tg.set_cross_zone(true);
        let c = counts(&tg, 4000);
        assert!(c.values().all(|n| (800..1200).contains(n)), "{c:?}");
        tg.set_cross_zone(false);
        // A zonal shift removes its zone; the other zone takes everything.
        tg.set_shifted_zones(vec!["az-a".into()]);
        assert_eq!(picked(&tg, 30), [2, 3, 4].into());
    }
}

#[test]
fn cross_zone_off_retries_in_another_zone_when_its_zone_has_no_other_target() {
    let tg = TargetGroup::with_settings(
        "web",
        TargetGroupSettings {
            cross_zone: false,
            ..TargetGroupSettings::default()
        },
    );
    tg.update(vec![
        target(1, "az-a", RouteState::Healthy),
        target(2, "az-b", RouteState::Healthy),
    ]);
    let one = tg
        .snapshot
        .load()
        .routable
        .iter()
        .find(|b| b.addr.port() == 1)
        .cloned()
        .unwrap();
    for _ in 0..20 {
        assert_eq!(tg.pick(Some(&one)).unwrap().addr.port(), 2);
    }
}

/// Two healthy targets, on a manual clock that the test moves.
fn group_of_two() -> (Arc<TargetGroup>, Arc<std::sync::atomic::AtomicU64>) {
    let (clock, ms) = Clock::manual(1_000_000);
    let g = TargetGroup::with_settings(
        "t",
        TargetGroupSettings {
            clock,
            ..TargetGroupSettings::default()
        },
    );
    g.update(vec![
        target(1, "az-a", RouteState::Healthy),
        target(2, "az-a", RouteState::Healthy),
    ]);
    (g, ms)
}

#[test]
fn picking_skips_an_ejected_target() {
    let (g, _) = group_of_two();
    let a = g.pick(None).unwrap();
    g.eject(&a);
    for _ in 0..10 {
        assert!(!Arc::ptr_eq(&g.pick(None).unwrap(), &a));
        assert!(!Arc::ptr_eq(&g.pick_flow(7, None).unwrap(), &a));
    }
}

#[test]
fn an_ejection_ends_after_its_backoff_on_the_groups_clock() {
    let (g, ms) = group_of_two();
    let a = g.pick(None).unwrap();
    g.eject(&a);
    let a_picked = |n| {
        (0..n)
            .filter(|_| Arc::ptr_eq(&g.pick(None).unwrap(), &a))
            .count()
    };
    assert_eq!(a_picked(10), 0);
    // 1 s of virtual time later (the first back-off), it is picked again.
    ms.fetch_add(999, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(a_picked(10), 0);
    ms.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(a_picked(10), 5, "round robin over both again");
}

#[test]
fn the_whole_routable_set_is_never_ejected() {
    let (g, _) = group_of_two();
    let a = g.pick(None).unwrap();
    let b = g.pick(None).unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    g.eject(&a);
    g.eject(&b);
    // Every target ejected: ejection is ignored rather than refusing all traffic.
    assert!(g.pick(None).is_some());
    assert!(g.pick_flow(1, None).is_some());
    // Excluding the one that just failed still leaves the other, ejected or not.
    assert!(Arc::ptr_eq(&g.pick(Some(&a)).unwrap(), &b));
    assert!(Arc::ptr_eq(&g.pick_flow(0, Some(&b)).unwrap(), &a));
}
