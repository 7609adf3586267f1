//! Adopting instances that survived a restart, and applying a reloaded spec in place.

mod util;

use flotilla_control::{GroupAction, InstanceId, LifecycleState};
use util::{at, secs, spec, Driver};

fn id(s: &str) -> InstanceId {
    InstanceId::from(s.to_string())
}

#[test]
fn adopted_instances_count_toward_capacity_and_are_registered() {
    let mut s = spec(1, 4, 3);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    let now = d.now;
    assert!(d
        .group_mut()
        .adopt_instance(now, id("i-old1"), "az-a".into(), at(0), 1));
    assert!(d
        .group_mut()
        .adopt_instance(now, id("i-old2"), "az-b".into(), at(0), 1));
    // A second adoption of the same id, or one into an unknown zone, is refused.
    assert!(!d
        .group_mut()
        .adopt_instance(now, id("i-old1"), "az-a".into(), at(0), 1));
    assert!(!d
        .group_mut()
        .adopt_instance(now, id("i-x"), "az-nowhere".into(), at(0), 1));
    let registered: Vec<_> = std::iter::from_fn(|| d.group_mut().poll_action()).collect();
    assert_eq!(
        registered,
        vec![
            GroupAction::RegisterTargets { id: id("i-old1") },
            GroupAction::RegisterTargets { id: id("i-old2") },
        ]
    );
    d.run_for(secs(30));
    // Only the difference was launched, into the empty zone.
    let instances: Vec<_> = d.group().instances().cloned().collect();
    assert_eq!(instances.len(), 3);
    assert!(instances
        .iter()
        .all(|i| i.lifecycle == LifecycleState::InService));
    let launched: Vec<_> = instances
        .iter()
        .filter(|i| !i.id.as_str().starts_with("i-old"))
        .collect();
    assert_eq!(launched.len(), 1);
    assert_eq!(launched[0].zone, "az-c");
    let newest = d.group().activities().last().map(|a| a.description.clone());
    assert_eq!(newest.as_deref(), Some("Adopting instance: i-old1 in az-a"));
}

#[test]
fn adoption_stops_at_max_size() {
    let mut d = Driver::new(spec(0, 1, 1));
    let now = d.now;
    assert!(d
        .group_mut()
        .adopt_instance(now, id("i-a"), "az-a".into(), at(0), 1));
    assert!(!d
        .group_mut()
        .adopt_instance(now, id("i-b"), "az-b".into(), at(0), 1));
    d.run_for(secs(10));
    assert_eq!(d.group().instances().count(), 1);
}

#[test]
fn update_spec_keeps_the_current_desired_within_new_bounds() {
    let mut d = Driver::new(spec(1, 5, 2));
    d.run_for(secs(10));
    let now = d.now;
    d.group_mut()
        .set_desired_capacity(now, 4, "operator")
        .expect("in range");
    d.run_for(secs(10));
    assert_eq!(d.group().in_service_count(), 4);

    // max lowered below the operator's 4: clamped to 3, one instance scaled in.
    let now = d.now;
    d.group_mut().update_spec(now, spec(1, 3, 2));
    assert_eq!(d.group().desired_capacity(), 3);
    assert_eq!(d.group().spec().max_size, 3);
    d.run_for(secs(30));
    assert_eq!(d.group().in_service_count(), 3);
    let cause = d
        .group()
        .activities()
        .find(|a| a.description.contains("Terminating"));
    assert!(cause.is_some_and(|a| a.cause.contains("configuration reload")));

    // max raised, desired unchanged in the file: the current desired stays.
    let now = d.now;
    d.group_mut().update_spec(now, spec(1, 8, 2));
    assert_eq!(d.group().desired_capacity(), 3);
    // desired changed in the file: it wins.
    let now = d.now;
    d.group_mut().update_spec(now, spec(1, 8, 6));
    assert_eq!(d.group().desired_capacity(), 6);
    d.run_for(secs(30));
    assert_eq!(d.group().in_service_count(), 6);
    // A bad request after the reload is refused with the new bounds.
    let now = d.now;
    assert!(d
        .group_mut()
        .set_desired_capacity(now, 9, "operator")
        .is_err());
}

#[test]
fn target_group_health_spec_changes_apply_to_the_next_probes() {
    use flotilla_control::{HealthAction, HealthCheckSpec, ProbeResult, TargetGroupHealth};
    use std::time::Duration;
    let spec = |healthy| HealthCheckSpec {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        healthy_threshold: healthy,
        unhealthy_threshold: 2,
    };
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut h = TargetGroupHealth::new(spec(5), Duration::from_secs(10));
    h.register(at(0), target);
    h.handle_timeout(at(0));
    while h.poll_action().is_some() {}
    // Reloaded: one success is now enough.
    h.update_spec(spec(1), Duration::from_secs(1));
    assert_eq!(h.spec().healthy_threshold, 1);
    h.handle_probe_result(at(0), target, ProbeResult::Success);
    let changes: Vec<_> = std::iter::from_fn(|| h.poll_action())
        .filter_map(|a| match a {
            HealthAction::StateChanged { to, .. } => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(changes, vec![flotilla_control::TargetState::Healthy]);
}
