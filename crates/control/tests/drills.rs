//! Operations and drills in virtual time: instance refresh (never below the healthy floor),
//! zone outages (launches avoid the zone) and AZRebalance when the zone returns.

mod util;

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_control::{
    ActivityStatus, GroupSpec, HealthCheckType, InstanceId, InstanceRefresh, LifecycleState,
    RefreshError, RefreshPreferences, RefreshStatus, ScalingProcess,
};
use util::{secs, spec, Driver};

/// A group of `desired` behind a target group that reports new instances healthy after 1 s.
fn elb_group(desired: u32, max: u32) -> Driver {
    let mut s: GroupSpec = spec(0, max, desired);
    s.has_target_groups = true;
    let mut d = Driver::new(s);
    d.health_delay = Some(secs(1));
    d.run_for(secs(20));
    assert_eq!(d.healthy_in_service(), desired as usize);
    d
}

fn prefs(min_healthy_percentage: u32, warmup: u64) -> RefreshPreferences {
    RefreshPreferences::new(min_healthy_percentage, secs(warmup))
}

fn ids(d: &Driver) -> BTreeSet<InstanceId> {
    d.group().instances().map(|i| i.id.clone()).collect()
}

fn status(d: &Driver) -> RefreshStatus {
    d.group().instance_refresh().map(|r| r.status).unwrap()
}

/// Runs until the refresh ends (bounded), returning how long it took.
fn run_refresh(d: &mut Driver) -> Duration {
    let start = d.now;
    for _ in 0..600 {
        if !status(d).is_active() {
            break;
        }
        d.run_for(secs(1));
    }
    d.now.saturating_since(start)
}

#[test]
fn refresh_at_the_floor_launches_first_and_never_drops_below_it() {
    let mut d = elb_group(3, 6);
    let old = ids(&d);
    d.group_mut().set_launch_template_version(2);
    d.lowest_healthy = Some(usize::MAX);
    let r = d
        .with_group(|g, now| g.start_instance_refresh(now, prefs(90, 5), "an operator"))
        .unwrap();
    assert_eq!((r.instances_total, r.percentage_complete), (3, 0));
    assert!(r.status.is_active());
    // 90 % of 3 rounds up to 3: nothing may go before its replacement is warm.
    let from = d.log.len();
    d.run_for(secs(3));
    let first = d.actions_since(from);
    assert_eq!(first[0].1, "launch", "launch before terminate: {first:?}");
    assert!(first.iter().all(|a| a.1 != "deregister"), "{first:?}");
    let took = run_refresh(&mut d);
    let r = d.group().instance_refresh().unwrap().clone();
    assert_eq!(r.status, RefreshStatus::Successful, "{}", r.status_reason);
    assert_eq!((r.percentage_complete, r.instances_to_update), (100, 0));
    assert!(r.end_time.is_some());
    // Three rounds of launch, healthy (1 s), warm-up (5 s).
    assert!(took >= secs(3 * 6), "warm-up respected: took {took:?}");
    assert_eq!(d.lowest_healthy, Some(3), "never below the floor of 3");
    let now_ids = ids(&d);
    assert!(now_ids.is_disjoint(&old), "every instance replaced");
    assert_eq!(now_ids.len(), 3);
    assert!(d
        .group()
        .instances()
        .all(|i| i.launch_template_version == 2));
    assert_eq!(d.zone_counts(), vec![1, 1, 1], "zones stay balanced");
    let causes: Vec<&str> = d.group().activities().map(|a| a.cause.as_str()).collect();
    for id in &old {
        assert!(
            causes.iter().any(|c| c.contains(&format!(
                "instance refresh {}: replacing {id} (launch template version 1 → 2)",
                r.id
            ))),
            "{causes:?}"
        );
    }
    let summary = d
        .group()
        .activities()
        .find(|a| {
            a.description
                .starts_with(&format!("Instance refresh {}", r.id))
        })
        .unwrap();
    assert_eq!(summary.status, ActivityStatus::Successful);
    assert!(summary
        .cause
        .contains("an operator started instance refresh"));
}

#[test]
fn refresh_with_room_under_the_floor_replaces_in_batches() {
    let mut d = elb_group(10, 12);
    d.lowest_healthy = Some(usize::MAX);
    let from = d.log.len();
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(80, 2), "an operator"))
        .unwrap();
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
    assert_eq!(d.lowest_healthy, Some(8), "floor ceil(0.8 × 10) = 8 held");
    // Two at a time, terminate first: the first step deregisters two at once, launches none
    // above desired.
    let acts = d.actions_since(from);
    let first_t = acts[0].0;
    let first: Vec<_> = acts.iter().filter(|a| a.0 == first_t).collect();
    assert_eq!(
        first.iter().filter(|a| a.1 == "deregister").count(),
        2,
        "{first:?}"
    );
    let max_live = d.group().instances().count();
    assert_eq!(max_live, 10);
    assert_eq!(d.group().in_service_count(), 10);
}

#[test]
fn min_healthy_zero_replaces_everything_at_once_and_bad_preferences_are_refused() {
    let mut d = elb_group(4, 6);
    assert_eq!(
        d.with_group(|g, now| g.start_instance_refresh(now, prefs(101, 0), "an operator"))
            .unwrap_err(),
        RefreshError::MinHealthyPercentage(101)
    );
    assert!(d.group().instance_refresh().is_none(), "nothing started");
    let from = d.log.len();
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(0, 0), "an operator"))
        .unwrap();
    d.pump();
    let acts = d.actions_since(from);
    assert_eq!(acts.iter().filter(|a| a.1 == "deregister").count(), 4);
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
}

#[test]
fn one_refresh_at_a_time_and_cancel_stops_further_replacements() {
    let mut d = elb_group(3, 6);
    let old = ids(&d);
    let r = d
        .with_group(|g, now| g.start_instance_refresh(now, prefs(100, 5), "an operator"))
        .unwrap();
    assert_eq!(
        d.with_group(|g, now| g.start_instance_refresh(now, prefs(90, 5), "an operator"))
            .unwrap_err(),
        RefreshError::InProgress { id: r.id.clone() }
    );
    // Let the first replacement finish (launch 2 s + healthy 1 s + warm 5 s), then cancel.
    d.run_for(secs(9));
    let mid = d.group().instance_refresh().unwrap().clone();
    assert!(mid.percentage_complete > 0, "{mid:?}");
    let c = d
        .with_group(|g, now| g.cancel_instance_refresh(now, "an operator"))
        .unwrap();
    assert_eq!(c.status, RefreshStatus::Cancelled);
    assert!(c.status_reason.contains("an operator cancelled it"));
    assert_eq!(
        d.with_group(|g, now| g.cancel_instance_refresh(now, "an operator")),
        Err(RefreshError::NotInProgress)
    );
    d.run_for(secs(60));
    let kept = ids(&d).intersection(&old).count();
    assert_eq!(kept, 2, "no further replacements after the cancel");
    assert_eq!(
        d.group().in_service_count(),
        3,
        "any launched-ahead extra is trimmed"
    );
    assert!(d
        .group()
        .activities()
        .any(|a| a.status == ActivityStatus::Cancelled && a.description.contains(&r.id)));
    // Cancelled while a replacement launched ahead is not healthy yet: that one goes, never
    // a healthy instance.
    d.lowest_healthy = Some(usize::MAX);
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(100, 5), "an operator"))
        .unwrap();
    d.run_for(secs(2));
    d.with_group(|g, now| g.cancel_instance_refresh(now, "an operator"))
        .unwrap();
    d.run_for(secs(30));
    assert_eq!(d.lowest_healthy, Some(3));
    assert_eq!(d.group().in_service_count(), 3);
    assert_eq!(ids(&d).intersection(&old).count(), 2);
    // A new refresh may start now.
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(90, 1), "an operator"))
        .unwrap();
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
    assert!(ids(&d).is_disjoint(&old));
}

#[test]
fn scale_out_and_in_during_a_refresh() {
    let mut d = elb_group(4, 8);
    let old = ids(&d);
    d.group_mut().set_launch_template_version(2);
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(75, 2), "an operator"))
        .unwrap();
    d.run_for(secs(4));
    d.with_group(|g, now| g.set_desired_capacity(now, 6, "an operator"))
        .unwrap();
    d.run_for(secs(10));
    d.with_group(|g, now| g.set_desired_capacity(now, 3, "an operator"))
        .unwrap();
    let took = run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful, "took {took:?}");
    d.run_for(secs(30));
    assert!(ids(&d).is_disjoint(&old));
    assert_eq!(d.group().in_service_count(), 3);
    assert!(d
        .group()
        .instances()
        .all(|i| i.launch_template_version == 2));
}

#[test]
fn a_refresh_whose_replacements_never_get_healthy_fails_after_an_hour() {
    let mut d = elb_group(2, 4);
    d.health_delay = None; // new instances never pass their health checks
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(100, 0), "an operator"))
        .unwrap();
    d.run_for(secs(3599));
    assert_eq!(status(&d), RefreshStatus::InProgress);
    assert!(d
        .group()
        .instance_refresh()
        .unwrap()
        .status_reason
        .contains("to be healthy and warm"));
    d.run_for(secs(10));
    let r = d.group().instance_refresh().unwrap();
    assert_eq!(r.status, RefreshStatus::Failed);
    assert!(r.status_reason.contains("nothing could be replaced"));
    d.run_for(secs(30));
    // The replacement launched ahead became ordinary capacity and was trimmed.
    assert_eq!(d.group().in_service_count(), 2);
}

#[test]
fn a_suspended_launch_process_pauses_the_refresh() {
    let mut d = elb_group(2, 4);
    d.group_mut().suspend_process(ScalingProcess::Launch);
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(90, 0), "an operator"))
        .unwrap();
    d.run_for(secs(30));
    let r = d.group().instance_refresh().unwrap();
    assert_eq!(r.status, RefreshStatus::Pending);
    assert!(r.status_reason.contains("Launch process is suspended"));
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::Launch));
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
}

#[test]
fn refresh_without_target_groups_counts_in_service_as_healthy() {
    let mut d = Driver::new(spec(0, 4, 2));
    d.run_for(secs(10));
    let old = ids(&d);
    d.lowest_healthy = Some(usize::MAX);
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(100, 1), "an operator"))
        .unwrap();
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
    assert!(ids(&d).is_disjoint(&old));
    assert_eq!(d.lowest_healthy, Some(2));
}

#[test]
fn a_zone_outage_kills_its_instances_and_launches_avoid_it_until_it_recovers() {
    let mut d = elb_group(3, 6);
    let lost = d.id_in_zone("az-a");
    let from = d.log.len();
    d.with_group(|g, now| g.handle_zone_outage(now, "az-a", "zone outage drill"));
    assert!(!d.group().is_zone_in_service("az-a"));
    d.pump();
    let acts = d.actions_since(from);
    assert!(acts.contains(&(d.now, "kill", lost.clone())), "{acts:?}");
    assert!(acts.contains(&(d.now, "deregister", lost.clone())));
    assert!(
        acts.iter().all(|a| a.1 != "terminate"),
        "no graceful stop: {acts:?}"
    );
    d.run_for(secs(10));
    assert_eq!(
        d.zone_counts(),
        vec![0, 2, 1],
        "replaced in the other zones"
    );
    assert_eq!(d.group().in_service_count(), 3);
    let kill = d
        .group()
        .activities()
        .find(|a| {
            a.description
                .contains(&format!("{lost} in az-a (lost to the zone outage)"))
        })
        .unwrap();
    assert!(kill.cause.contains("zone outage drill"));
    assert!(kill.cause.contains("SIGKILL, no draining"));
    let replacement = d
        .group()
        .activities()
        .find(|a| a.description.starts_with("Launching") && a.cause.contains("were lost"))
        .unwrap();
    assert!(replacement.cause.contains("takes no launches"));
    // Scale-out during the outage stays out of az-a too.
    d.with_group(|g, now| g.set_desired_capacity(now, 5, "an operator"))
        .unwrap();
    d.run_for(secs(10));
    assert_eq!(d.zone_counts(), vec![0, 3, 2]);
    assert!(d.launches().iter().skip(3).all(|(_, z)| z != "az-a"));

    // Back: AZRebalance launches into az-a first, then terminates from the fullest zones.
    let from = d.log.len();
    d.lowest_healthy = Some(usize::MAX);
    d.with_group(|g, now| g.handle_zone_recovered(now, "az-a"));
    d.run_for(secs(60));
    let counts = d.zone_counts();
    assert_eq!(counts.iter().sum::<usize>(), 5);
    assert!(
        counts[0] >= 1 && counts.iter().max() <= Some(&2),
        "{counts:?}"
    );
    assert_eq!(d.group().in_service_count(), 5);
    assert_eq!(
        d.lowest_healthy,
        Some(5),
        "rebalancing never drops capacity"
    );
    let acts = d.actions_since(from);
    let first_launch = acts.iter().position(|a| a.1 == "launch").unwrap();
    let first_deregister = acts.iter().position(|a| a.1 == "deregister").unwrap();
    assert!(first_launch < first_deregister, "launch first: {acts:?}");
    assert!(d
        .group()
        .activities()
        .any(|a| a.cause.starts_with("AZRebalance: instances per zone")));
}

#[test]
fn az_rebalance_respects_suspended_processes() {
    let mut d = elb_group(3, 6);
    d.with_group(|g, now| g.handle_zone_outage(now, "az-c", "zone outage drill"));
    d.run_for(secs(10));
    assert_eq!(d.zone_counts(), vec![2, 1, 0]);
    d.group_mut().suspend_process(ScalingProcess::AzRebalance);
    d.with_group(|g, now| g.handle_zone_recovered(now, "az-c"));
    d.run_for(secs(60));
    assert_eq!(
        d.zone_counts(),
        vec![2, 1, 0],
        "no rebalance while suspended"
    );
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::AzRebalance));
    d.run_for(secs(60));
    assert_eq!(d.zone_counts(), vec![1, 1, 1]);
}

#[test]
fn with_every_zone_out_nothing_launches_until_one_returns() {
    let mut d = elb_group(2, 4);
    for z in util::ZONES {
        d.with_group(|g, now| g.handle_zone_outage(now, z, "zone outage drill"));
    }
    d.run_for(secs(60));
    assert_eq!(d.group().instances().count(), 0);
    assert_eq!(d.group().poll_timeout(), None, "no busy retry");
    d.with_group(|g, now| g.handle_zone_recovered(now, "az-b"));
    d.run_for(secs(10));
    assert_eq!(d.zone_counts(), vec![0, 2, 0]);
}

#[test]
fn a_refresh_during_an_outage_replaces_into_the_zones_in_service() {
    let mut d = elb_group(3, 6);
    d.with_group(|g, now| g.handle_zone_outage(now, "az-b", "zone outage drill"));
    d.run_for(secs(10));
    let old = ids(&d);
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(100, 1), "an operator"))
        .unwrap();
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
    assert!(ids(&d).is_disjoint(&old));
    assert!(d.group().instances().all(|i| i.zone != "az-b"));
    assert!(d
        .group()
        .instances()
        .all(|i| i.lifecycle == LifecycleState::InService));
}

/// A group of `desired` instances with target groups and ELB health checks (a 2 s grace
/// period), all healthy.
fn elb_checked_group(desired: u32, max: u32) -> Driver {
    let mut s: GroupSpec = spec(0, max, desired);
    s.has_target_groups = true;
    s.health_check_type = HealthCheckType::Elb;
    s.health_check_grace_period = secs(2);
    let mut d = Driver::new(s);
    d.health_delay = Some(secs(1));
    d.run_for(secs(20));
    assert_eq!(d.healthy_in_service(), desired as usize);
    d
}

/// Starts a launch-first refresh (floor 100 %) with automatic rollback and the given warm-up,
/// runs it to its end; the refresh as it ended, and how long it took.
fn refresh_with_rollback(d: &mut Driver, warmup: u64) -> (InstanceRefresh, Duration) {
    let mut p = prefs(100, warmup);
    p.auto_rollback = true;
    d.with_group(|g, now| g.start_instance_refresh(now, p, "an operator"))
        .unwrap();
    let took = run_refresh(d);
    (d.group().instance_refresh().unwrap().clone(), took)
}

/// The refresh rolled back successfully, and its reason says `why`.
#[track_caller]
fn assert_rolled_back_because(r: &InstanceRefresh, why: &str) {
    assert_eq!(
        r.status,
        RefreshStatus::RollbackSuccessful,
        "{}",
        r.status_reason
    );
    assert!(
        r.rollback_reason
            .as_deref()
            .is_some_and(|x| x.contains(why)),
        "{r:?}"
    );
}

/// Runs (bounded, a minute) until the refresh waits at a checkpoint.
fn run_to_checkpoint(d: &mut Driver) {
    for _ in 0..60 {
        if d.group()
            .instance_refresh()
            .unwrap()
            .checkpoint_until
            .is_some()
        {
            return;
        }
        d.run_for(secs(1));
    }
}

fn versions(d: &Driver) -> Vec<u64> {
    d.group()
        .instances()
        .filter(|i| i.lifecycle == LifecycleState::InService)
        .map(|i| i.launch_template_version)
        .collect()
}

#[test]
fn a_checkpoint_pauses_the_refresh_for_its_delay_then_it_goes_on() {
    let mut d = elb_group(4, 8);
    d.group_mut().set_launch_template_version(2);
    let mut p = prefs(50, 1);
    p.checkpoint_percentages = vec![50];
    p.checkpoint_delay = secs(60);
    d.with_group(|g, now| g.start_instance_refresh(now, p, "an operator"))
        .unwrap();
    run_to_checkpoint(&mut d);
    let r = d.group().instance_refresh().unwrap().clone();
    let until = r.checkpoint_until.expect("reached the checkpoint");
    assert_eq!(r.status, RefreshStatus::InProgress);
    assert!(
        r.status_reason.contains("checkpoint 50%"),
        "{}",
        r.status_reason
    );
    assert_eq!(r.percentage_complete, 50);
    let new = |d: &Driver| versions(d).iter().filter(|&&v| v == 2).count();
    assert_eq!(new(&d), 2, "half replaced at the checkpoint");
    d.run_for(secs(50));
    assert_eq!(new(&d), 2, "nothing replaced during the checkpoint delay");
    assert!(d.now < until);
    assert!(d
        .group()
        .activities()
        .any(|a| a.cause.contains("reached its checkpoint at 50%")));
    run_refresh(&mut d);
    assert_eq!(status(&d), RefreshStatus::Successful);
    assert_eq!(versions(&d), vec![2; 4]);
    assert!(d.group().instance_refresh().unwrap().end_time.unwrap() >= until);
}

#[test]
fn checkpoints_must_ascend_within_1_to_100() {
    let mut d = elb_group(2, 4);
    for bad in [vec![0], vec![50, 50], vec![60, 40], vec![101]] {
        let mut p = prefs(90, 1);
        p.checkpoint_percentages = bad.clone();
        assert_eq!(
            d.with_group(|g, now| g.start_instance_refresh(now, p, "an operator")),
            Err(RefreshError::CheckpointPercentages(bad))
        );
    }
    assert!(d.group().instance_refresh().is_none());
}

#[test]
fn a_failing_new_version_rolls_back_without_losing_capacity() {
    let mut d = elb_checked_group(3, 6);
    let old = ids(&d);
    d.group_mut().set_launch_template_version(2);
    d.failing_versions.insert(2);
    d.lowest_healthy = Some(usize::MAX);
    let (r, _) = refresh_with_rollback(&mut d, 2);
    assert_rolled_back_because(&r, "failed its health checks");
    assert_eq!(r.previous_launch_template_version, Some(1));
    assert_eq!(
        d.lowest_healthy,
        Some(3),
        "launch-first: never below desired"
    );
    assert_eq!(
        d.group().spec().launch_template_version,
        1,
        "new launches use v1 again"
    );
    d.run_for(secs(30));
    assert_eq!(ids(&d), old, "the old instances were never touched");
    assert_eq!(versions(&d), vec![1; 3]);
}

#[test]
fn a_rollback_replaces_the_instances_already_updated() {
    let mut d = elb_checked_group(4, 8);
    d.group_mut().set_launch_template_version(2);
    d.lowest_healthy = Some(usize::MAX);
    let mut p = prefs(50, 1);
    p.auto_rollback = true;
    p.checkpoint_percentages = vec![50];
    p.checkpoint_delay = secs(10);
    d.with_group(|g, now| g.start_instance_refresh(now, p, "an operator"))
        .unwrap();
    // The first batch (two instances) comes up healthy; then the release turns bad.
    run_to_checkpoint(&mut d);
    assert_eq!(versions(&d).iter().filter(|&&v| v == 2).count(), 2);
    d.failing_versions.insert(2);
    run_refresh(&mut d);
    let r = d.group().instance_refresh().unwrap().clone();
    assert_eq!(
        r.status,
        RefreshStatus::RollbackSuccessful,
        "{}",
        r.status_reason
    );
    // The two updated before the checkpoint, and the second batch's survivor of the first
    // failure, are replaced again.
    assert_eq!(r.instances_total, 3, "{r:?}");
    assert_eq!(versions(&d), vec![1; 4]);
    assert!(
        d.lowest_healthy >= Some(2),
        "the floor of 50 % held: {:?}",
        d.lowest_healthy
    );
    assert!(d.group().activities().any(|a| a
        .description
        .starts_with(&format!("Rolling back instance refresh {}", r.id))));
}

#[test]
fn without_an_older_version_a_failing_refresh_fails() {
    let mut d = elb_checked_group(2, 4);
    d.failing_versions.insert(1);
    let (r, _) = refresh_with_rollback(&mut d, 1);
    assert_eq!(r.status, RefreshStatus::Failed, "{}", r.status_reason);
    assert!(r
        .status_reason
        .contains("no earlier launch template version"));
}

#[test]
fn without_auto_rollback_failing_instances_are_only_replaced() {
    let mut d = elb_checked_group(2, 4);
    d.group_mut().set_launch_template_version(2);
    d.failing_versions.insert(2);
    d.with_group(|g, now| g.start_instance_refresh(now, prefs(100, 1), "an operator"))
        .unwrap();
    d.run_for(secs(60));
    assert_eq!(status(&d), RefreshStatus::InProgress);
    assert_eq!(d.group().spec().launch_template_version, 2);
}

#[test]
fn with_process_health_checks_a_new_version_its_target_group_calls_unhealthy_rolls_back() {
    // Process health checks: the group itself would never replace the failing instance, so
    // without the rollback the refresh could only wait.
    let mut s: GroupSpec = spec(0, 6, 3);
    s.has_target_groups = true;
    s.health_check_grace_period = secs(5);
    let mut d = Driver::new(s);
    d.health_delay = Some(secs(1));
    d.run_for(secs(20));
    let old = ids(&d);
    d.group_mut().set_launch_template_version(2);
    d.failing_versions.insert(2);
    let (r, took) = refresh_with_rollback(&mut d, 1);
    assert_rolled_back_because(&r, "after the 5s grace period");
    assert!(took >= secs(5), "the grace period was honoured: {took:?}");
    d.run_for(secs(30));
    assert_eq!(ids(&d), old);
    assert_eq!(versions(&d), vec![1; 3]);
}
