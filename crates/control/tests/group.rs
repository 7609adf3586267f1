//! The Auto Scaling group reconciler, driven in virtual time.

mod util;

use flotilla_control::{
    ActivityStatus, AutoScalingGroup, CapacityError, HealthCheckType, InstanceHealth, InstanceId,
    LifecycleState, ScalingProcess, TerminationPolicy, Time,
};
use util::{at, secs, spec, Driver};

fn started(desired: u32) -> Driver {
    let mut d = Driver::new(spec(0, 10, desired));
    d.run_until(at(10));
    d
}

#[test]
fn nothing_happens_before_the_first_timeout() {
    let mut g = AutoScalingGroup::new(spec(1, 3, 2), 1, Time::ZERO);
    assert_eq!(g.poll_action(), None);
    assert_eq!(g.activities().count(), 0);
    assert_eq!(g.poll_timeout(), Some(Time::ZERO));
    g.handle_timeout(Time::ZERO);
    assert_eq!(g.instances().count(), 2);
    assert_eq!(g.poll_timeout(), None);
}

#[test]
fn initial_launch_spreads_over_zones() {
    for (desired, want) in [(2, vec![1, 1, 0]), (3, vec![1, 1, 1]), (5, vec![2, 2, 1])] {
        let d = started(desired);
        assert_eq!(d.zone_counts(), want, "desired {desired}");
        assert_eq!(d.group().in_service_count(), desired);
        let launches: Vec<String> = d.launches().into_iter().map(|(_, z)| z).collect();
        assert_eq!(launches.len(), desired as usize);
        assert_eq!(&launches[..2], ["az-a", "az-b"]);
        // every launch activity finished successfully and says why
        let acts: Vec<_> = d.group().activities().collect();
        assert!(acts.iter().all(|a| a.status == ActivityStatus::Successful));
        assert!(acts.last().unwrap().cause.contains(&format!(
            "group web was created with desired capacity {desired}; an instance was started in \
             response to a difference between desired and actual capacity, increasing the \
             capacity from 0 to 1"
        )));
    }
}

#[test]
fn scale_out_and_in_stay_balanced() {
    let mut d = started(3);
    for (desired, total) in [(7, 7), (4, 4), (9, 9), (2, 2), (6, 6)] {
        d.with_group(|g, now| g.set_desired_capacity(now, desired, "operator"))
            .unwrap();
        d.run_for(secs(30));
        let c = d.zone_counts();
        assert_eq!(c.iter().sum::<usize>(), total);
        let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
        assert!(max - min <= 1, "unbalanced {c:?} at desired {desired}");
        assert_eq!(d.group().in_service_count(), desired);
        assert_eq!(
            d.group().instances().count(),
            total,
            "terminated instances are dropped"
        );
    }
}

#[test]
fn balanced_scale_in_removes_from_the_later_zone() {
    // 3 → 2 ends where a fresh launch of 2 would: az-a and az-b.
    let mut d = started(3);
    d.with_group(|g, now| g.set_desired_capacity(now, 2, "operator"))
        .unwrap();
    d.run_for(secs(30));
    assert_eq!(d.zone_counts(), vec![1, 1, 0]);
}

#[test]
fn failed_zone_is_skipped_and_scale_in_takes_from_fullest_zone() {
    let mut d = Driver::new(spec(0, 10, 3));
    d.failing_zones.insert("az-c".into());
    d.run_until(at(20));
    // az-c failed once; the retry went to another zone (az-a: fewest, first in the list).
    assert_eq!(d.zone_counts(), vec![2, 1, 0]);
    let failed: Vec<_> = d
        .group()
        .activities()
        .filter(|a| a.status == ActivityStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].description.contains("in az-c"));
    assert!(failed[0].description.contains("failed: zone outage"));

    d.with_group(|g, now| g.set_desired_capacity(now, 2, "operator"))
        .unwrap();
    d.run_for(secs(30));
    assert_eq!(
        d.zone_counts(),
        vec![1, 1, 0],
        "az-a had the most instances"
    );
}

/// A group left unbalanced by a zone that failed its launches: az-a 2, az-b 1, az-c 0.
fn unbalanced_by_a_failed_zone() -> Driver {
    let mut s = spec(0, 10, 3);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    // The target group reports each new target healthy a second after it is registered
    // (AZRebalance terminates only once its launch is healthy).
    d.health_delay = Some(secs(1));
    d.failing_zones.insert("az-c".into());
    d.run_until(at(20));
    assert_eq!(d.zone_counts(), vec![2, 1, 0]);
    d.failing_zones.clear();
    d
}

#[test]
fn az_rebalance_launches_in_the_emptiest_zone_first_then_scales_in_the_fullest() {
    let mut d = unbalanced_by_a_failed_zone();
    let from = d.log.len();
    // The failure mark on az-c expires 30 s after the failure; the group wakes for it.
    d.run_for(secs(40));
    assert_eq!(d.zone_counts(), vec![1, 1, 1], "balanced again");
    assert_eq!(
        d.group().desired_capacity(),
        3,
        "rebalancing changes no capacity"
    );
    let actions = d.actions_since(from);
    let zones = d.zones_of();
    let launch = actions
        .iter()
        .position(|(_, kind, _)| *kind == "launch")
        .expect("a launch");
    let new = &actions[launch].2;
    assert_eq!(zones.get(new).map(String::as_str), Some("az-c"));
    let registered = actions
        .iter()
        .position(|(_, kind, id)| *kind == "register" && id == new)
        .expect("the new instance is registered");
    let deregistered = actions
        .iter()
        .position(|(_, kind, _)| *kind == "deregister")
        .expect("one instance drains");
    assert!(
        registered < deregistered,
        "launch first, then terminate: {actions:?}"
    );
    let victim = &actions[deregistered].2;
    assert!(!zones.contains_key(victim), "the victim has gone");
    let causes: Vec<&str> = d.group().activities().map(|a| a.cause.as_str()).collect();
    let launched = "AZRebalance: instances per zone (az-a 2, az-b 1, az-c 0) are uneven; \
                    launching one in az-c first, then terminating one in az-a";
    let terminated = format!(
        "AZRebalance: instance {new} launched to even out the zones is healthy in az-c; \
         terminating one in az-a"
    );
    assert!(
        causes.contains(&launched) && causes.iter().any(|c| c.starts_with(&terminated)),
        "the launch and the termination both say why: {causes:#?}"
    );
    // Balanced: nothing more happens.
    let settled = d.log.len();
    d.run_for(secs(120));
    assert_eq!(d.log.len(), settled, "{:?}", d.actions_since(settled));
}

#[test]
fn az_rebalance_can_be_suspended_and_skips_protected_instances() {
    let mut d = unbalanced_by_a_failed_zone();
    d.group_mut().suspend_process(ScalingProcess::AzRebalance);
    d.run_for(secs(60));
    assert_eq!(d.zone_counts(), vec![2, 1, 0], "suspended: left as it is");

    // Both az-a instances protected: scale-in could only take az-b's, which would not help.
    let in_a: Vec<InstanceId> = d
        .group()
        .instances()
        .filter(|i| i.zone == "az-a")
        .map(|i| i.id.clone())
        .collect();
    for id in &in_a {
        assert!(d.with_group(|g, now| g.set_instance_protection(now, id, true)));
    }
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::AzRebalance));
    d.run_for(secs(60));
    assert_eq!(d.zone_counts(), vec![2, 1, 0], "nothing useful to do");

    assert!(d.with_group(|g, now| g.set_instance_protection(now, &in_a[0], false)));
    d.run_for(secs(60));
    assert_eq!(
        d.zone_counts(),
        vec![1, 1, 1],
        "resumed and unprotected: rebalanced"
    );
}

#[test]
fn a_terminate_with_decrement_is_followed_by_a_rebalance() {
    let mut d = started(6);
    assert_eq!(d.zone_counts(), vec![2, 2, 2]);
    for _ in 0..2 {
        let id = d.id_in_zone("az-c");
        assert!(d.with_group(|g, now| g.terminate_instance(now, &id, true, "an operator")));
        d.run_for(secs(20));
    }
    assert_eq!(d.group().desired_capacity(), 4);
    assert_eq!(d.zone_counts(), vec![2, 1, 1], "AZ balance restored");
}

#[test]
fn a_zone_removed_from_the_group_is_emptied_by_az_rebalance() {
    let mut d = started(3);
    assert_eq!(d.zone_counts(), vec![1, 1, 1]);
    let mut s = d.group().spec().clone();
    s.zones.retain(|z| z != "az-c");
    d.with_group(|g, now| g.update_spec(now, s));
    d.run_for(secs(60));
    assert_eq!(d.zone_counts(), vec![2, 1, 0], "moved out of az-c");
    assert_eq!(d.group().desired_capacity(), 3);
    assert!(
        d.group().activities().any(|a| a.cause
            == "AZRebalance: instances per zone (az-a 1, az-b 1, az-c 1, no longer one of the \
                group's) are uneven; launching one in az-a first, then terminating one in az-c"),
        "{:#?}",
        d.group().activities().map(|a| &a.cause).collect::<Vec<_>>()
    );
}

#[test]
fn desired_is_clamped_and_out_of_range_requests_are_refused() {
    assert_eq!(
        AutoScalingGroup::new(spec(2, 6, 10), 1, Time::ZERO).desired_capacity(),
        6
    );
    assert_eq!(
        AutoScalingGroup::new(spec(2, 6, 0), 1, Time::ZERO).desired_capacity(),
        2
    );
    // min > max is a config error elsewhere; here it must not panic.
    let _ = AutoScalingGroup::new(spec(5, 3, 4), 1, Time::ZERO).desired_capacity();

    let mut g = AutoScalingGroup::new(spec(2, 6, 3), 1, Time::ZERO);
    let err = g
        .set_desired_capacity(Time::ZERO, 9, "operator")
        .unwrap_err();
    assert_eq!(
        err,
        CapacityError::OutOfRange {
            requested: 9,
            min: 2,
            max: 6
        }
    );
    assert_eq!(
        err.to_string(),
        "desired capacity 9 is outside min_size..max_size (2..6)"
    );
    assert!(g.set_desired_capacity(Time::ZERO, 1, "operator").is_err());
    assert_eq!(g.desired_capacity(), 3);
    assert!(g.set_desired_capacity(Time::ZERO, 6, "operator").is_ok());
    assert!(g.set_desired_capacity(Time::ZERO, 2, "operator").is_ok());
    assert_eq!(g.desired_capacity(), 2);
}

/// One zone, so only the termination policy decides.
fn one_zone(policies: Vec<TerminationPolicy>) -> Driver {
    let mut s = spec(0, 10, 2);
    s.zones = vec!["az-a".into()];
    s.termination_policies = policies;
    Driver::new(s)
}

/// Starts 2 instances at t=0 (template v1) and 2 at t=100 (v2); returns (old, new) ids.
fn two_generations(d: &mut Driver) -> (Vec<InstanceId>, Vec<InstanceId>) {
    d.run_until(at(100));
    let old: Vec<_> = d.group().instances().map(|i| i.id.clone()).collect();
    d.group_mut().set_launch_template_version(2);
    d.with_group(|g, now| g.set_desired_capacity(now, 4, "operator"))
        .unwrap();
    d.run_until(at(200));
    let new: Vec<_> = d
        .group()
        .instances()
        .map(|i| i.id.clone())
        .filter(|i| !old.contains(i))
        .collect();
    assert_eq!(new.len(), 2);
    (old, new)
}

fn scale_in_victim(d: &mut Driver) -> InstanceId {
    let before = d.log.len();
    d.with_group(|g, now| g.set_desired_capacity(now, 3, "operator"))
        .unwrap();
    d.pump();
    let acts = d.actions_since(before);
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0].1, "terminate");
    acts[0].2.clone()
}

#[test]
fn termination_policies_break_ties_inside_the_zone() {
    let mut d = one_zone(vec![TerminationPolicy::OldestInstance]);
    let (old, _) = two_generations(&mut d);
    assert!(old.contains(&scale_in_victim(&mut d)));

    let mut d = one_zone(vec![TerminationPolicy::NewestInstance]);
    let (_, new) = two_generations(&mut d);
    assert!(new.contains(&scale_in_victim(&mut d)));

    let mut d = one_zone(vec![TerminationPolicy::OldestLaunchTemplate]);
    let (old, _) = two_generations(&mut d);
    let victim = scale_in_victim(&mut d);
    assert!(old.contains(&victim));
    // both old ones tie on everything but the id: the lowest id goes.
    assert_eq!(&victim, old.iter().min().unwrap());

    // Newest first, then oldest template among the newest? NewestInstance decides alone here.
    let mut d = one_zone(vec![
        TerminationPolicy::NewestInstance,
        TerminationPolicy::OldestLaunchTemplate,
    ]);
    let (_, new) = two_generations(&mut d);
    assert!(new.contains(&scale_in_victim(&mut d)));
}

#[test]
fn default_policy_prefers_oldest_template_then_next_instance_hour() {
    let mut d = one_zone(vec![TerminationPolicy::Default]);
    let (old, _) = two_generations(&mut d);
    assert!(
        old.contains(&scale_in_victim(&mut d)),
        "oldest launch template first"
    );

    // Same template: closest to the next instance hour.
    for (when, expect_first) in [(3500, true), (3700, false)] {
        let mut s = spec(0, 10, 1);
        s.zones = vec!["az-a".into()];
        let mut d = Driver::new(s);
        d.run_until(at(1800));
        let first = d.in_service()[0].clone(); // launched at 0
        d.with_group(|g, now| g.set_desired_capacity(now, 2, "operator"))
            .unwrap(); // launched at 1800
        d.run_until(at(when));
        let before = d.log.len();
        d.with_group(|g, now| g.set_desired_capacity(now, 1, "operator"))
            .unwrap();
        d.pump();
        let victim = d.actions_since(before)[0].2.clone();
        // at 3500 s the first is 100 s from its next hour; at 3700 s the second (1900 s into its
        // hour) is closer than the first (100 s into a new one).
        assert_eq!(victim == first, expect_first, "at {when}");
    }
}

#[test]
fn pending_instances_are_terminated_before_in_service_ones() {
    let mut d = Driver::new(spec(0, 10, 3));
    d.run_until(at(10));
    d.launch_delay = secs(60);
    d.with_group(|g, now| g.set_desired_capacity(now, 6, "operator"))
        .unwrap();
    d.run_for(secs(1));
    let pending: Vec<_> = d
        .group()
        .instances()
        .filter(|i| i.lifecycle == LifecycleState::Pending)
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(pending.len(), 3);
    let before = d.log.len();
    d.with_group(|g, now| g.set_desired_capacity(now, 4, "operator"))
        .unwrap();
    d.pump();
    let acts = d.actions_since(before);
    assert_eq!(acts.len(), 2);
    assert!(acts
        .iter()
        .all(|(_, kind, id)| *kind == "terminate" && pending.contains(id)));
    d.run_for(secs(120));
    assert_eq!(d.group().in_service_count(), 4);
    assert_eq!(d.group().instances().count(), 4);
    let c = d.zone_counts();
    assert!(
        c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
        "{c:?}"
    );
}

#[test]
fn unexpected_exit_is_replaced_in_the_emptiest_zone_with_a_cause() {
    let mut s = spec(0, 10, 3);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    d.run_until(at(10));
    assert_eq!(d.registered.len(), 3);
    let victim = d.id_in_zone("az-b");
    let before = d.log.len();
    d.kill(&victim, "signal 9");
    // Deregistered and replaced at once (the routing table and the launch leave in one pump).
    assert_eq!(d.first(before, "deregister"), (d.now, victim.clone()));
    let (when, replacement) = d.first(before, "launch");
    assert_eq!(when, d.now);
    assert_eq!(d.zones_of()[&replacement], "az-b");
    assert!(
        d.group().instances().all(|i| i.id != victim),
        "dead instance is gone at once"
    );
    d.run_for(secs(30));
    assert_eq!(d.zone_counts(), vec![1, 1, 1]);
    assert_eq!(d.group().in_service_count(), 3);
    assert!(d
        .group()
        .activities()
        .any(|a| a.cause == format!("instance {victim} exited unexpectedly (signal 9)")));
    let launch = d
        .group()
        .activities()
        .find(|a| a.description.contains(replacement.as_str()))
        .unwrap();
    assert!(launch.cause.starts_with(&format!(
        "instance {victim} exited unexpectedly (signal 9) — replacing it; an instance was started"
    )));
    assert_eq!(launch.status, ActivityStatus::Successful);
}

#[test]
fn exit_during_launch_counts_as_a_failed_launch() {
    let mut d = Driver::new(spec(0, 10, 1));
    d.launch_delay = secs(5);
    d.run_until(at(1));
    let id = d.group().instances().next().unwrap().id.clone();
    d.kill(&id, "exit status 1");
    let launches = d.launches();
    assert_eq!(launches.len(), 1, "back-off: no immediate relaunch");
    d.run_for(secs(20));
    assert_eq!(d.launches()[1].0, at(2), "retried after 1 s");
    assert_eq!(d.group().in_service_count(), 1);
}

fn elb_group() -> Driver {
    let mut s = spec(0, 10, 1);
    s.health_check_type = HealthCheckType::Elb;
    s.health_check_grace_period = secs(10);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    d.run_until(at(2)); // in service at t=2, grace ends at t=12
    d
}

#[test]
fn elb_unhealthy_inside_grace_is_deferred_to_grace_end() {
    let mut d = elb_group();
    let id = d.in_service()[0].clone();
    d.run_until(at(4));
    d.with_group(|g, now| {
        g.handle_target_health(now, &id, false, "Target.ResponseCodeMismatch (503)")
    });
    let before = d.log.len();
    d.pump();
    assert_eq!(d.log.len(), before, "nothing inside the grace period");
    assert_eq!(d.group().poll_timeout(), Some(at(12)));
    d.run_until(at(11));
    assert_eq!(d.log.len(), before);
    d.run_until(at(12));
    assert_eq!(d.first(before, "deregister"), (at(12), id.clone()));
    assert_eq!(
        d.first(before, "launch").0,
        at(12),
        "replacement at once, not after the old one is gone"
    );
    let old = d.group().instances().find(|i| i.id == id).unwrap();
    assert_eq!(
        (old.lifecycle, old.health),
        (LifecycleState::Terminating, InstanceHealth::Unhealthy)
    );
    let cause = &d
        .group()
        .activities()
        .find(|a| a.description.contains(id.as_str()) && a.description.starts_with("Terminating"))
        .unwrap()
        .cause;
    assert_eq!(cause, &format!("instance {id} was taken out of service because its target group health check failed: Target.ResponseCodeMismatch (503) — replacing it"));
    d.run_for(secs(30));
    assert_eq!(d.group().in_service_count(), 1);
    assert!(d.group().instances().all(|i| i.id != id));
}

#[test]
fn elb_recovery_inside_grace_cancels_the_report() {
    let mut d = elb_group();
    let id = d.in_service()[0].clone();
    d.group_mut()
        .handle_target_health(at(3), &id, false, "Target.Timeout");
    d.group_mut().handle_target_health(at(5), &id, true, "");
    assert_eq!(d.group().poll_timeout(), None);
    let before = d.log.len();
    d.run_until(at(60));
    assert_eq!(d.log.len(), before);
    assert_eq!(d.in_service(), vec![id]);
}

#[test]
fn elb_unhealthy_after_grace_is_acted_on_at_once() {
    let mut d = elb_group();
    d.run_until(at(30));
    let id = d.in_service()[0].clone();
    let before = d.log.len();
    d.with_group(|g, now| g.handle_target_health(now, &id, false, "Target.Timeout"));
    let acts = d.actions_since(before);
    d.pump();
    assert_eq!(acts.len(), 0, "actions not yet pumped");
    assert_eq!(d.first(before, "deregister"), (at(30), id.clone()));
    assert_eq!(d.first(before, "launch").0, at(30));
    // no Terminate before the drain finishes (drain_delay 5 s)
    d.run_until(at(34));
    assert!(!d.actions_since(before).iter().any(|a| a.1 == "terminate"));
    d.run_until(at(40));
    let term: Vec<_> = d
        .actions_since(before)
        .into_iter()
        .filter(|a| a.1 == "terminate")
        .collect();
    assert_eq!(term, vec![(at(35), "terminate", id)]);
}

#[test]
fn suspended_health_check_ignores_verdicts_and_suspended_replace_unhealthy_defers_them() {
    // HealthCheck suspended: an unhealthy verdict is not even recorded (AWS: no marking).
    let mut d = elb_group();
    d.run_until(at(30));
    let id = d.in_service()[0].clone();
    d.group_mut().suspend_process(ScalingProcess::HealthCheck);
    d.with_group(|g, now| g.handle_target_health(now, &id, false, "Target.Timeout"));
    d.run_for(secs(30));
    assert_eq!(d.in_service(), vec![id.clone()], "not replaced");
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::HealthCheck));
    d.run_for(secs(30));
    assert_eq!(
        d.in_service(),
        vec![id.clone()],
        "the ignored verdict stays ignored"
    );

    // ReplaceUnhealthy suspended: the verdict is kept, the instance stays until resumed.
    d.group_mut()
        .suspend_process(ScalingProcess::ReplaceUnhealthy);
    d.with_group(|g, now| g.handle_target_health(now, &id, false, "Target.Timeout"));
    d.run_for(secs(30));
    assert_eq!(d.in_service(), vec![id.clone()], "kept while suspended");
    assert_eq!(
        d.group().poll_timeout(),
        None,
        "nothing to wake for meanwhile"
    );
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::ReplaceUnhealthy));
    d.run_for(secs(30));
    let now_in_service = d.in_service();
    assert_eq!(now_in_service.len(), 1);
    assert_ne!(now_in_service[0], id, "replaced on resume");
    assert!(d.group().activities().any(|a| a.cause.contains(&format!(
        "instance {id} was taken out of service because its target group health check failed"
    ))));
}

#[test]
fn process_groups_ignore_target_health() {
    let mut d = started(2);
    let id = d.in_service()[0].clone();
    d.with_group(|g, now| g.handle_target_health(now, &id, false, "Target.Timeout"));
    d.run_for(secs(600));
    assert_eq!(d.log.len(), 2);
    assert_eq!(d.group().in_service_count(), 2);
}

#[test]
fn health_replacements_are_limited_to_ten_percent_at_a_time() {
    let mut s = spec(0, 10, 3);
    s.health_check_type = HealthCheckType::Elb;
    s.health_check_grace_period = secs(0);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    d.run_until(at(10));
    let ids = d.in_service();
    for id in &ids {
        d.with_group(|g, now| g.handle_target_health(now, id, false, "Target.Timeout"));
    }
    d.pump();
    let unhealthy = || {
        d.group()
            .instances()
            .filter(|i| i.health == InstanceHealth::Unhealthy)
            .count()
    };
    assert_eq!(unhealthy(), 1, "one at a time");
    d.run_for(secs(7)); // drain 5 s + stop 1 s: first one gone, next one starts
    assert!(d.group().instances().all(|i| i.id != ids[0]));
    assert_eq!(
        d.group()
            .instances()
            .filter(|i| i.health == InstanceHealth::Unhealthy)
            .count(),
        1
    );
    d.run_for(secs(60));
    assert!(
        d.group().instances().all(|i| !ids.contains(&i.id)),
        "all replaced in turn"
    );
    assert_eq!(d.group().in_service_count(), 3);
}

#[test]
fn launch_failures_back_off_exponentially_and_reset_on_success() {
    let mut d = Driver::new(spec(0, 10, 1));
    d.launch_delay = secs(0);
    for z in util::ZONES {
        d.failing_zones.insert(z.into());
    }
    d.run_until(at(120));
    let times: Vec<u64> = d
        .launches()
        .iter()
        .map(|(t, _)| t.as_duration().as_secs())
        .collect();
    assert_eq!(&times[..8], [0, 1, 3, 7, 15, 31, 61, 91]);
    // launches rotate over zones while they fail
    let zones: Vec<String> = d.launches().into_iter().take(3).map(|(_, z)| z).collect();
    assert_eq!(zones, ["az-a", "az-b", "az-c"]);
    d.failing_zones.clear();
    d.run_until(at(200));
    assert_eq!(d.group().in_service_count(), 1);
    // success resets the back-off: the next failure waits 1 s again
    d.failing_zones.insert("az-a".into());
    d.failing_zones.insert("az-b".into());
    d.failing_zones.insert("az-c".into());
    let id = d.in_service()[0].clone();
    d.kill(&id, "signal 9");
    let n = d.launches().len();
    d.run_until(at(205));
    let t: Vec<u64> = d.launches()[n - 1..]
        .iter()
        .map(|(t, _)| t.as_duration().as_secs())
        .collect();
    assert_eq!(t, [200, 201, 203]);
}

#[test]
fn drain_comes_before_terminate_and_without_target_groups_terminate_is_direct() {
    let mut s = spec(0, 10, 2);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    d.run_until(at(10));
    let before = d.log.len();
    d.with_group(|g, now| g.set_desired_capacity(now, 1, "operator"))
        .unwrap();
    d.run_until(at(14));
    let acts = d.actions_since(before);
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].1, "deregister");
    let victim = acts[0].2.clone();
    let inst = d.group().instances().find(|i| i.id == victim).unwrap();
    assert_eq!(inst.lifecycle, LifecycleState::Terminating);
    assert_eq!(d.group().in_service_count(), 1);
    d.run_until(at(30));
    assert_eq!(
        d.actions_since(before)[1],
        (at(15), "terminate", victim.clone())
    );
    assert!(d.group().instances().all(|i| i.id != victim));
    let act = d
        .group()
        .activities()
        .find(|a| a.description.starts_with("Terminating"))
        .unwrap();
    assert_eq!(act.status, ActivityStatus::Successful);
    assert_eq!(act.end_time, Some(at(16)));

    let mut d = started(2);
    let before = d.log.len();
    d.with_group(|g, now| g.set_desired_capacity(now, 1, "operator"))
        .unwrap();
    d.pump();
    assert_eq!(d.actions_since(before)[0].1, "terminate");
}

#[test]
fn activities_are_newest_first_with_causes() {
    let mut d = started(1);
    d.with_group(|g, now| g.set_desired_capacity(now, 2, "target tracking policy keep-rps"))
        .unwrap();
    d.run_for(secs(10));
    d.with_group(|g, now| g.set_desired_capacity(now, 1, "operator"))
        .unwrap();
    d.run_for(secs(10));
    let acts: Vec<_> = d.group().activities().collect();
    assert!(acts
        .windows(2)
        .all(|w| w[0].id > w[1].id && w[0].time >= w[1].time));
    let causes: Vec<&str> = acts.iter().map(|a| a.cause.as_str()).collect();
    assert_eq!(causes[1], "operator set desired capacity from 2 to 1");
    assert_eq!(
        causes[0],
        "operator set desired capacity from 2 to 1; an instance was taken out of service in \
         response to a difference between desired and actual capacity, shrinking the capacity \
         from 2 to 1"
    );
    assert!(causes[2].starts_with(
        "target tracking policy keep-rps set desired capacity from 1 to 2; an instance was started \
         in response to a difference between desired and actual capacity, increasing the capacity \
         from 1 to 2"
    ));
    assert_eq!(
        causes[3],
        "target tracking policy keep-rps set desired capacity from 1 to 2"
    );
}

#[test]
fn terminate_instance_replaces_or_decrements() {
    let mut d = started(3);
    let id = d.in_service()[0].clone();
    assert!(d.with_group(|g, now| g.terminate_instance(now, &id, false, "operator")));
    assert!(
        !d.with_group(|g, now| g.terminate_instance(now, &id, false, "operator")),
        "already terminating"
    );
    d.run_for(secs(30));
    assert_eq!(d.group().in_service_count(), 3);
    assert_eq!(d.group().desired_capacity(), 3);
    let id = d.in_service()[0].clone();
    assert!(d.with_group(|g, now| g.terminate_instance(now, &id, true, "operator")));
    d.run_for(secs(30));
    assert_eq!(d.group().in_service_count(), 2);
    assert_eq!(d.group().desired_capacity(), 2);
    assert!(!d.with_group(|g, now| g.terminate_instance(
        now,
        &InstanceId::from("i-nope".to_string()),
        true,
        "x"
    )));
}

#[test]
fn events_for_unknown_or_stale_ids_are_ignored() {
    let mut d = started(2);
    let ghost = InstanceId::from("i-000000000000".to_string());
    let now = d.now;
    d.group_mut().handle_launched(now, &ghost);
    d.group_mut().handle_launch_failed(now, &ghost, "x");
    d.group_mut().handle_instance_exited(now, &ghost, "x");
    d.group_mut().handle_target_health(now, &ghost, false, "x");
    d.group_mut().handle_drained(now, &ghost);
    let id = d.in_service()[0].clone();
    d.group_mut().handle_launched(now, &id); // duplicate
    d.group_mut().handle_launch_failed(now, &id, "late"); // not pending: ignored
    d.group_mut().handle_drained(now, &id); // not draining: ignored
    assert_eq!(d.group_mut().poll_action(), None);
    assert_eq!(d.group().in_service_count(), 2);
}

/// A small deterministic simulation: random operator actions, deaths and health reports, with
/// invariants checked after every step.
#[test]
fn random_operations_keep_invariants() {
    let mut rng = 0x1234_5678_u64;
    let mut next = move |n: u64| {
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    };
    let mut s = spec(1, 8, 3);
    s.health_check_type = HealthCheckType::Elb;
    s.has_target_groups = true;
    s.health_check_grace_period = secs(3);
    let mut d = Driver::new(s);
    d.health_delay = Some(secs(1));
    for step in 0..2000 {
        let ids: Vec<InstanceId> = d.group().instances().map(|i| i.id.clone()).collect();
        let pick = |k: u64| {
            ids.get(k as usize)
                .cloned()
                .unwrap_or_else(|| InstanceId::from("i-ghost".to_string()))
        };
        let now = d.now;
        match next(8) {
            0 => {
                let _ = d
                    .group_mut()
                    .set_desired_capacity(now, next(10) as u32, "sim");
            }
            1 => d.kill(&pick(next(10)), "signal 9"),
            2 => d.group_mut().handle_target_health(
                now,
                &pick(next(10)),
                next(2) == 0,
                "Target.Timeout",
            ),
            3 => {
                if next(4) == 0 {
                    d.failing_zones.insert(util::ZONES[next(3) as usize].into());
                } else {
                    d.failing_zones.clear();
                }
            }
            4 => {
                let _ = d
                    .group_mut()
                    .terminate_instance(now, &pick(next(10)), next(2) == 0, "sim");
            }
            _ => {}
        }
        d.run_for(Duration::from_millis(next(5000)));
        let g = d.group();
        assert!((1..=8).contains(&g.desired_capacity()), "step {step}");
        if let Some(t) = g.poll_timeout() {
            assert!(t >= d.now, "step {step}: timeout in the past");
        }
        let live = g
            .instances()
            .filter(|i| {
                matches!(
                    i.lifecycle,
                    LifecycleState::Pending | LifecycleState::InService
                ) && i.health == InstanceHealth::Healthy
            })
            .count();
        // AZRebalance launches one instance before it terminates one (AWS: "launch first").
        assert!(
            live <= g.desired_capacity() as usize + 1,
            "step {step}: over-launched"
        );
        assert!(g.activities().count() <= 1000);
    }
    d.failing_zones.clear();
    d.run_for(secs(120));
    assert_eq!(
        d.group().in_service_count(),
        d.group().desired_capacity(),
        "converges"
    );
}

use std::time::Duration;
