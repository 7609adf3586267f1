//! Lifecycle hooks and warm pools (AWS §7.1, §7.2) in virtual time.

mod util;

use flotilla_control::pricing::PurchaseOption;
use flotilla_control::{
    GroupSpec, InstanceId, LifecycleActionError, LifecycleActionResult, LifecycleHook,
    LifecycleState, LifecycleTransition, WarmPool,
};
use util::{secs, spec, Driver};

fn hook(
    name: &str,
    transition: LifecycleTransition,
    timeout: u64,
    default: LifecycleActionResult,
) -> LifecycleHook {
    LifecycleHook {
        name: name.into(),
        transition,
        heartbeat_timeout: secs(timeout),
        default_result: default,
    }
}

/// A group with target groups (so instances are registered and drained) and `hooks`.
fn with_hooks(min: u32, max: u32, desired: u32, hooks: Vec<LifecycleHook>) -> GroupSpec {
    GroupSpec {
        has_target_groups: true,
        lifecycle_hooks: hooks,
        ..spec(min, max, desired)
    }
}

fn with_pool(desired: u32, max: u32, reuse: bool) -> GroupSpec {
    GroupSpec {
        has_target_groups: true,
        warm_pool: Some(WarmPool {
            min_size: 0,
            max_group_prepared_capacity: None,
            reuse_on_scale_in: reuse,
        }),
        ..spec(0, max, desired)
    }
}

fn states(d: &Driver) -> Vec<(InstanceId, LifecycleState)> {
    d.group()
        .instances()
        .map(|i| (i.id.clone(), i.lifecycle))
        .collect()
}

fn in_state(d: &Driver, state: LifecycleState) -> Vec<InstanceId> {
    states(d)
        .into_iter()
        .filter(|(_, s)| *s == state)
        .map(|(i, _)| i)
        .collect()
}

fn kinds_for(d: &Driver, from: usize, id: &InstanceId) -> Vec<&'static str> {
    d.actions_since(from)
        .into_iter()
        .filter(|(_, _, i)| i == id)
        .map(|(_, k, _)| k)
        .collect()
}

#[test]
fn launch_hook_holds_the_instance_out_of_service_until_completed() {
    let launching = hook(
        "warm-cache",
        LifecycleTransition::Launching,
        60,
        LifecycleActionResult::Abandon,
    );
    let mut d = Driver::new(with_hooks(1, 3, 1, vec![launching]));
    d.run_for(secs(10));
    let waiting = in_state(&d, LifecycleState::PendingWait);
    assert_eq!(waiting.len(), 1, "{:?}", states(&d));
    let id = waiting[0].clone();
    // Counted toward desired: nothing else is launched; not registered.
    assert_eq!(d.launches().len(), 1);
    assert!(!d.registered.contains(&id));
    let actions = d.group().lifecycle_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].hook, "warm-cache");
    assert_eq!(actions[0].timeout_at, util::at(2) + secs(60));

    let mark = d.log.len();
    let now = d.now;
    d.group_mut()
        .complete_lifecycle_action(now, &id, "warm-cache", LifecycleActionResult::Continue)
        .unwrap();
    d.pump();
    assert_eq!(in_state(&d, LifecycleState::InService), vec![id.clone()]);
    assert_eq!(kinds_for(&d, mark, &id), vec!["register"]);
    assert!(d.group().lifecycle_actions().is_empty());
    // The wait is an activity, finished with the result.
    let a = d
        .group()
        .activities()
        .find(|a| a.description.starts_with("Waiting for lifecycle hooks"))
        .unwrap();
    assert!(a.description.contains("warm-cache"), "{}", a.description);
}

#[test]
fn every_launch_hook_must_complete_and_errors_name_the_problem() {
    let hooks = vec![
        hook(
            "a",
            LifecycleTransition::Launching,
            60,
            LifecycleActionResult::Abandon,
        ),
        hook(
            "b",
            LifecycleTransition::Launching,
            60,
            LifecycleActionResult::Abandon,
        ),
        hook(
            "stop",
            LifecycleTransition::Terminating,
            60,
            LifecycleActionResult::Continue,
        ),
    ];
    let mut d = Driver::new(with_hooks(1, 3, 1, hooks));
    d.run_for(secs(5));
    let id = in_state(&d, LifecycleState::PendingWait)[0].clone();
    let now = d.now;
    let r = LifecycleActionResult::Continue;
    assert!(matches!(
        d.group_mut().complete_lifecycle_action(
            now,
            &InstanceId::from("i-nope".to_string()),
            "a",
            r
        ),
        Err(LifecycleActionError::UnknownInstance(_))
    ));
    assert!(matches!(
        d.group_mut().complete_lifecycle_action(now, &id, "stop", r),
        Err(LifecycleActionError::NotWaiting { .. })
    ));
    d.group_mut()
        .complete_lifecycle_action(now, &id, "a", r)
        .unwrap();
    assert_eq!(in_state(&d, LifecycleState::PendingWait), vec![id.clone()]);
    // Completing twice is refused: it no longer waits for `a`.
    assert!(d
        .group_mut()
        .complete_lifecycle_action(now, &id, "a", r)
        .is_err());
    d.group_mut()
        .complete_lifecycle_action(now, &id, "b", r)
        .unwrap();
    assert_eq!(in_state(&d, LifecycleState::InService), vec![id]);
}

#[test]
fn heartbeat_timeout_abandon_terminates_and_replaces_with_backoff() {
    let launching = hook(
        "warm-cache",
        LifecycleTransition::Launching,
        30,
        LifecycleActionResult::Abandon,
    );
    let mut d = Driver::new(with_hooks(1, 3, 1, vec![launching]));
    d.run_for(secs(5));
    let first = in_state(&d, LifecycleState::PendingWait)[0].clone();
    // A heartbeat at 20 s restarts the 30 s timeout: still waiting at 40 s.
    d.run_for(secs(15));
    let now = d.now;
    let until = d
        .group_mut()
        .record_lifecycle_action_heartbeat(now, &first, "warm-cache")
        .unwrap();
    assert_eq!(until, now + secs(30));
    d.run_for(secs(20));
    assert_eq!(
        in_state(&d, LifecycleState::PendingWait),
        vec![first.clone()]
    );
    // At 50 s the default result (ABANDON) applies: terminated without registering, replaced.
    d.run_for(secs(15));
    assert!(
        d.group().instances().all(|i| i.id != first),
        "{:?}",
        states(&d)
    );
    let kinds = kinds_for(&d, 0, &first);
    assert_eq!(kinds, vec!["launch", "terminate"]);
    assert_eq!(d.launches().len(), 2);
    let a = d
        .group()
        .activities()
        .find(|a| {
            a.description.starts_with("Waiting for lifecycle hooks")
                && a.description.contains(first.as_str())
        })
        .unwrap();
    assert!(a.description.contains("timed out"), "{}", a.description);
}

#[test]
fn heartbeats_cannot_extend_past_the_global_timeout() {
    // 1 s heartbeat timeout: the wait ends at most 100 s after it started, however many
    // heartbeats it gets; the default result CONTINUE then puts the instance in service.
    let launching = hook(
        "slow",
        LifecycleTransition::Launching,
        1,
        LifecycleActionResult::Continue,
    );
    let mut d = Driver::new(with_hooks(1, 3, 1, vec![launching]));
    d.run_for(secs(2));
    let id = in_state(&d, LifecycleState::PendingWait)[0].clone();
    for _ in 0..300 {
        let now = d.now;
        if d.group_mut()
            .record_lifecycle_action_heartbeat(now, &id, "slow")
            .is_err()
        {
            break;
        }
        d.run_for(secs(1) / 2);
    }
    assert_eq!(
        in_state(&d, LifecycleState::InService),
        vec![id],
        "{:?} at {:?}",
        states(&d),
        d.now
    );
    assert!(d.now <= util::at(2 + 101), "{:?}", d.now);
}

#[test]
fn terminate_hook_runs_after_draining_and_before_the_stop_signal() {
    let stopping = hook(
        "flush",
        LifecycleTransition::Terminating,
        60,
        LifecycleActionResult::Abandon,
    );
    let mut d = Driver::new(with_hooks(1, 3, 2, vec![stopping]));
    d.run_for(secs(10));
    assert_eq!(d.group().instances().count(), 2);
    let mark = d.log.len();
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 1, "test").unwrap();
    d.pump();
    let victim = in_state(&d, LifecycleState::Terminating)[0].clone();
    assert_eq!(kinds_for(&d, mark, &victim), vec!["deregister"]);
    // Drained after 5 s: now it waits for the hook, still running, not yet told to stop.
    d.run_for(secs(10));
    assert_eq!(
        in_state(&d, LifecycleState::TerminatingWait),
        vec![victim.clone()]
    );
    assert_eq!(kinds_for(&d, mark, &victim), vec!["deregister"]);
    let now = d.now;
    // ABANDON on terminate still terminates (it only skips further terminate hooks).
    d.group_mut()
        .complete_lifecycle_action(now, &victim, "flush", LifecycleActionResult::Abandon)
        .unwrap();
    d.pump();
    assert_eq!(
        in_state(&d, LifecycleState::TerminatingProceed),
        vec![victim.clone()]
    );
    assert_eq!(
        kinds_for(&d, mark, &victim),
        vec!["deregister", "terminate"]
    );
    d.run_for(secs(5));
    assert!(d.group().instances().all(|i| i.id != victim));
    assert_eq!(d.group().instances().count(), 1);
}

#[test]
fn terminate_hook_timeout_continue_stops_the_instance() {
    let stopping = hook(
        "flush",
        LifecycleTransition::Terminating,
        30,
        LifecycleActionResult::Continue,
    );
    let mut d = Driver::new(with_hooks(1, 3, 2, vec![stopping]));
    d.run_for(secs(10));
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 1, "test").unwrap();
    d.run_for(secs(20));
    let victim = in_state(&d, LifecycleState::TerminatingWait)[0].clone();
    d.run_for(secs(30));
    assert!(
        d.group().instances().all(|i| i.id != victim),
        "{:?}",
        states(&d)
    );
}

#[test]
fn warm_pool_keeps_prepared_instances_and_scale_out_registers_one_without_a_launch() {
    let mut d = Driver::new(with_pool(1, 4, false));
    d.run_for(secs(10));
    // max_size 4 − desired 1 = 3 in the pool, running but neither registered nor capacity.
    let warm = in_state(&d, LifecycleState::WarmedRunning);
    assert_eq!(warm.len(), 3, "{:?}", states(&d));
    assert_eq!(in_state(&d, LifecycleState::InService).len(), 1);
    assert!(warm.iter().all(|id| !d.registered.contains(id)));
    assert_eq!(d.group().in_service_count(), 1);
    assert!(d.group().is_settled());
    let pool = d.group().warm_pool().unwrap();
    assert_eq!((pool.size, pool.desired_size), (3, 3));

    let launches = d.launches().len();
    let mark = d.log.len();
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 3, "test").unwrap();
    d.pump();
    // Two pool instances are registered at once; the pool (now 4 − 3 = 1) needs no launch.
    assert_eq!(in_state(&d, LifecycleState::InService).len(), 3);
    assert_eq!(d.launches().len(), launches);
    let registered: Vec<_> = d
        .actions_since(mark)
        .into_iter()
        .filter(|(_, k, _)| *k == "register")
        .map(|(_, _, id)| id)
        .collect();
    assert_eq!(registered.len(), 2);
    assert!(registered.iter().all(|id| warm.contains(id)));
    assert!(d.group().activities().any(|a| a
        .description
        .starts_with("Launching an instance from the warm pool")));
    // Beyond the pool: cold launches for what it lacks.
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 4, "test").unwrap();
    d.run_for(secs(10));
    assert_eq!(in_state(&d, LifecycleState::InService).len(), 4);
    assert_eq!(d.group().warm_pool().unwrap().size, 0);
}

#[test]
fn scale_in_without_reuse_terminates_and_the_pool_refills() {
    let mut d = Driver::new(with_pool(2, 3, false));
    d.run_for(secs(10));
    assert_eq!(in_state(&d, LifecycleState::WarmedRunning).len(), 1);
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 1, "test").unwrap();
    d.run_for(secs(20));
    assert_eq!(in_state(&d, LifecycleState::InService).len(), 1);
    assert_eq!(in_state(&d, LifecycleState::WarmedRunning).len(), 2);
    assert!(d.log.iter().any(|(_, kind, _)| *kind == "terminate"));
}

#[test]
fn reuse_on_scale_in_returns_the_drained_instance_to_the_pool() {
    let stopping = hook(
        "flush",
        LifecycleTransition::Terminating,
        60,
        LifecycleActionResult::Continue,
    );
    let mut s = with_pool(2, 3, true);
    s.lifecycle_hooks = vec![stopping];
    let mut d = Driver::new(s);
    d.run_for(secs(10));
    let launches = d.launches().len();
    let mark = d.log.len();
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 1, "test").unwrap();
    d.pump();
    let victim = in_state(&d, LifecycleState::Terminating)[0].clone();
    // Drained, then the terminate hook fires at warmed:pending:wait (as AWS).
    d.run_for(secs(10));
    assert_eq!(
        in_state(&d, LifecycleState::WarmedPendingWait),
        vec![victim.clone()]
    );
    let now = d.now;
    d.group_mut()
        .complete_lifecycle_action(now, &victim, "flush", LifecycleActionResult::Continue)
        .unwrap();
    d.run_for(secs(10));
    assert!(in_state(&d, LifecycleState::WarmedRunning).contains(&victim));
    assert_eq!(in_state(&d, LifecycleState::WarmedRunning).len(), 2);
    // Never stopped, and the pool did not launch a replacement for it.
    assert_eq!(kinds_for(&d, mark, &victim), vec!["deregister"]);
    assert_eq!(d.launches().len(), launches);
    assert!(d.group().activities().any(|a| a
        .description
        .starts_with("Returning instance to the warm pool")));
}

#[test]
fn launch_hooks_fire_entering_and_leaving_the_pool() {
    let mut s = with_pool(1, 2, false);
    s.lifecycle_hooks = vec![hook(
        "prime",
        LifecycleTransition::Launching,
        60,
        LifecycleActionResult::Abandon,
    )];
    let mut d = Driver::new(s);
    d.run_for(secs(5));
    let pooled = in_state(&d, LifecycleState::WarmedPendingWait);
    assert_eq!(pooled.len(), 1, "{:?}", states(&d));
    let serving = in_state(&d, LifecycleState::PendingWait);
    assert_eq!(serving.len(), 1);
    let now = d.now;
    let r = LifecycleActionResult::Continue;
    d.group_mut()
        .complete_lifecycle_action(now, &pooled[0], "prime", r)
        .unwrap();
    d.group_mut()
        .complete_lifecycle_action(now, &serving[0], "prime", r)
        .unwrap();
    d.pump();
    assert_eq!(in_state(&d, LifecycleState::WarmedRunning), pooled);
    // Leaving the pool: the hook fires again before it is registered.
    let now = d.now;
    d.group_mut().set_desired_capacity(now, 2, "test").unwrap();
    d.pump();
    assert_eq!(in_state(&d, LifecycleState::PendingWait), pooled);
    assert!(!d.registered.contains(&pooled[0]));
}

#[test]
fn pool_instances_of_an_older_launch_template_are_replaced() {
    let mut d = Driver::new(with_pool(1, 3, false));
    d.run_for(secs(10));
    let old = in_state(&d, LifecycleState::WarmedRunning);
    assert_eq!(old.len(), 2);
    let mut s = d.group().spec().clone();
    s.launch_template_version = 2;
    let now = d.now;
    d.group_mut().update_spec(now, s);
    d.run_for(secs(10));
    let fresh = in_state(&d, LifecycleState::WarmedRunning);
    assert_eq!(fresh.len(), 2);
    assert!(fresh.iter().all(|id| !old.contains(id)));
    assert!(d
        .group()
        .instances()
        .filter(|i| i.lifecycle == LifecycleState::WarmedRunning)
        .all(|i| i.launch_template_version == 2));
}

#[test]
fn zone_outage_kills_warm_instances_there_and_the_pool_refills_elsewhere() {
    let mut d = Driver::new(with_pool(1, 4, false));
    d.run_for(secs(10));
    let in_a: Vec<InstanceId> = d
        .group()
        .instances()
        .filter(|i| i.zone == "az-a" && i.lifecycle == LifecycleState::WarmedRunning)
        .map(|i| i.id.clone())
        .collect();
    assert!(!in_a.is_empty(), "{:?}", d.zones_of());
    let mark = d.log.len();
    let now = d.now;
    d.group_mut()
        .handle_zone_outage(now, "az-a", "zone outage drill");
    d.run_for(secs(10));
    for id in &in_a {
        assert_eq!(kinds_for(&d, mark, id), vec!["kill"]);
    }
    assert_eq!(in_state(&d, LifecycleState::WarmedRunning).len(), 3);
    assert!(d.group().instances().all(|i| i.zone != "az-a"));
}

#[test]
fn warm_pool_removed_by_reload_stops_its_instances() {
    let mut d = Driver::new(with_pool(1, 3, false));
    d.run_for(secs(10));
    let mut s = d.group().spec().clone();
    s.warm_pool = None;
    let now = d.now;
    d.group_mut().update_spec(now, s);
    d.run_for(secs(10));
    assert!(d.group().instances().all(|i| !i.lifecycle.is_warmed()));
    assert_eq!(d.group().instances().count(), 1);
    assert!(d.group().warm_pool().is_none());
}

#[test]
fn adopted_after_a_restart_into_the_pool_or_a_fresh_launch_hook_wait() {
    let mut s = with_pool(1, 3, false);
    s.lifecycle_hooks = vec![hook(
        "warm-cache",
        LifecycleTransition::Launching,
        60,
        LifecycleActionResult::Abandon,
    )];
    let mut d = Driver::new(s);
    let (warm, waiting) = (
        InstanceId::from("i-warm".to_string()),
        InstanceId::from("i-wait".to_string()),
    );
    assert!(d.with_group(|g, now| g.adopt_instance_as(
        now,
        warm.clone(),
        "az-a".into(),
        now,
        (1, PurchaseOption::OnDemand),
        LifecycleState::WarmedRunning
    )));
    assert!(d.with_group(|g, now| g.adopt_instance_as(
        now,
        waiting.clone(),
        "az-b".into(),
        now,
        (1, PurchaseOption::OnDemand),
        LifecycleState::PendingWait
    )));
    d.run_for(secs(1));
    // The waiting one is the capacity (no launch for it), its hook waits afresh; the pooled
    // one is back in the pool, which needs one more (3 − 1 = 2).
    assert_eq!(
        in_state(&d, LifecycleState::PendingWait),
        vec![waiting.clone()]
    );
    assert!(in_state(&d, LifecycleState::WarmedRunning).contains(&warm));
    assert!(!d.registered.contains(&waiting));
    assert_eq!(d.group().lifecycle_actions().len(), 1);
    assert_eq!(
        d.launches().len(),
        1,
        "only the pool's second instance is launched"
    );
    // Without a pool, a pooled record has no place.
    let mut d = Driver::new(with_hooks(1, 3, 1, Vec::new()));
    assert!(!d.with_group(|g, now| g.adopt_instance_as(
        now,
        warm,
        "az-a".into(),
        now,
        (1, PurchaseOption::OnDemand),
        LifecycleState::WarmedRunning
    )));
    // Without launch hooks, a waiting record goes into service.
    assert!(d.with_group(|g, now| g.adopt_instance_as(
        now,
        waiting.clone(),
        "az-a".into(),
        now,
        (1, PurchaseOption::OnDemand),
        LifecycleState::PendingWait
    )));
    d.run_for(secs(1));
    assert_eq!(in_state(&d, LifecycleState::InService), vec![waiting]);
}
