//! Reconfiguring in place what the AWS API and reloads change: groups and target groups come
//! and go, static targets follow the spec, a group moves to another launch template. Driven
//! in virtual time by the harness in `util`.

mod util;

use std::net::SocketAddr;

use flotilla_control::{LifecycleState, TargetState};
use util::{cluster_spec, secs, spec, Driver};

fn web_driver(desired: u32) -> Driver {
    let mut s = spec(0, 6, desired);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    d.health_delay = Some(secs(1));
    d.run_for(secs(10));
    assert_eq!(d.in_service().len(), desired as usize);
    d
}

fn current_spec(desired: u32) -> flotilla_control::ClusterSpec {
    let mut s = spec(0, 6, desired);
    s.has_target_groups = true;
    cluster_spec(&s, secs(5))
}

#[test]
fn a_group_added_in_place_launches_its_instances_with_ids_of_its_own() {
    let mut d = web_driver(2);
    let mut next = current_spec(2);
    let mut api = next.groups["web"].clone();
    api.target_groups.clear();
    api.desired_capacity = 3;
    next.groups.insert("api".into(), api);
    assert!(d.cluster.reconfigure_blockers(&next).is_empty());
    let changes = d.cluster.reconfigure(d.now, next);
    assert!(
        changes.iter().any(|l| l.contains("api: added")),
        "{changes:?}"
    );
    d.run_for(secs(10));
    let api = d.cluster.group("api").expect("the new group");
    let ids: Vec<_> = api
        .asg
        .instances()
        .filter(|i| i.lifecycle == LifecycleState::InService)
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!(!d.in_service().contains(id), "{id} is also web's");
    }
    assert_eq!(d.in_service().len(), 2, "web is untouched");
}

#[test]
fn a_removed_group_drains_each_instance_before_stopping_it_then_is_forgotten() {
    let mut d = web_driver(3);
    let protected = d.in_service()[0].clone();
    d.with_group(|g, now| g.set_instance_protection(now, &protected, true));
    let before = d.log.len();
    let mut next = current_spec(3);
    next.groups.clear();
    assert!(d.cluster.reconfigure_blockers(&next).is_empty());
    let changes = d.cluster.reconfigure(d.now, next.clone());
    assert!(
        changes.iter().any(|l| l.contains("web: removed")),
        "{changes:?}"
    );
    // Re-adding it while its instances still drain is refused, not half-applied.
    let again = current_spec(3);
    assert_eq!(d.cluster.reconfigure_blockers(&again).len(), 1);
    d.run_for(secs(30));
    let actions = d.actions_since(before);
    let stopped: Vec<_> = actions.iter().filter(|a| a.1 == "terminate").collect();
    assert_eq!(
        stopped.len(),
        3,
        "every instance stops, protected too: {actions:?}"
    );
    for (t, _, id) in &stopped {
        let dereg = actions
            .iter()
            .find(|a| a.1 == "deregister" && &a.2 == id)
            .unwrap_or_else(|| panic!("{id} stopped without draining: {actions:?}"));
        assert!(dereg.0 < *t, "{id} stopped before its drain ended");
    }
    assert!(!actions.iter().any(|a| a.1 == "launch"), "{actions:?}");
    assert!(d.cluster.group("web").is_none(), "the group is forgotten");
    assert!(d.cluster.reconfigure_blockers(&again).is_empty());
    d.cluster.reconfigure(d.now, again);
    d.run_for(secs(10));
    assert_eq!(d.in_service().len(), 3, "added again afresh");
}

#[test]
fn static_targets_follow_the_spec_registering_and_draining() {
    let mut d = web_driver(1);
    let extra = SocketAddr::from(([127, 0, 0, 9], 8080));
    let mut next = current_spec(1);
    next.target_groups.get_mut("web").unwrap().targets = vec![extra];
    assert!(d.cluster.reconfigure_blockers(&next).is_empty());
    let changes = d.cluster.reconfigure(d.now, next);
    assert!(
        changes
            .iter()
            .any(|l| l.contains("127.0.0.9:8080 registered")),
        "{changes:?}"
    );
    let state = |d: &Driver| d.cluster.target_group_health("web").unwrap().state(extra);
    assert_eq!(state(&d), Some(TargetState::Initial));
    d.cluster.reconfigure(d.now, current_spec(1));
    assert_eq!(state(&d), Some(TargetState::Draining));
    d.run_for(secs(10));
    assert_eq!(state(&d), None, "drained and gone");
    assert_eq!(
        d.in_service().len(),
        1,
        "the group's own target is untouched"
    );
}

#[test]
fn a_group_pointed_at_another_template_launches_a_new_version() {
    let mut d = web_driver(1);
    let mut next = current_spec(1);
    let mut v2 = next.launch_templates["web"].clone();
    v2.command = vec!["app".into(), "--v2".into()];
    next.launch_templates.insert("web-v2".into(), v2);
    next.groups.get_mut("web").unwrap().launch_template = "web-v2".into();
    assert!(d.cluster.reconfigure_blockers(&next).is_empty());
    d.cluster.reconfigure(d.now, next.clone());
    assert_eq!(d.group().spec().launch_template_version, 2);
    // Pointed at a template with the same content: nothing changes.
    let mut same = next.clone();
    same.launch_templates
        .insert("copy".into(), next.launch_templates["web-v2"].clone());
    same.groups.get_mut("web").unwrap().launch_template = "copy".into();
    d.cluster.reconfigure(d.now, same);
    assert_eq!(d.group().spec().launch_template_version, 2);
}
