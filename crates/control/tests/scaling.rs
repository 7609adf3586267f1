//! The scaling controller driving a group in virtual time: policies, warm-up, cooldown,
//! suspended processes, scale-in protection and scheduled actions.

mod util;

use std::cell::Cell;
use std::time::Duration;

use flotilla_control::alarm::{AlarmSpec, Comparison, MissingData};
use flotilla_control::metrics::{Metric, Statistic};
use flotilla_control::policy::{AdjustmentType, ScalingPolicy, SimpleSpec, TargetTrackingSpec};
use flotilla_control::schedule::ScheduledActionSpec;
use flotilla_control::{
    CapacityError, ControllerSpec, LifecycleState, MetricQuery, MetricSource, ScalingController,
    ScalingProcess, Time,
};
use util::{at, secs, spec, Driver};

/// Total request rate spread evenly over the measured instances.
struct Load(Cell<f64>);

impl MetricSource for Load {
    fn group_metric(&self, q: &MetricQuery<'_>) -> Option<f64> {
        if q.instances.is_empty() {
            return None;
        }
        Some(self.0.get() / q.instances.len() as f64)
    }
}

fn tt(name: &str, target: f64, stab: u64) -> TargetTrackingSpec {
    TargetTrackingSpec {
        name: name.into(),
        metric: Metric::RequestRatePerTarget,
        statistic: Statistic::Average,
        target_value: target,
        period: secs(2),
        scale_in_stabilization: secs(stab),
        disable_scale_in: false,
    }
}

fn controller(specs: Vec<TargetTrackingSpec>, warmup: u64) -> ScalingController {
    ScalingController::new(
        ControllerSpec {
            default_instance_warmup: Some(secs(warmup)),
            default_cooldown: secs(300),
            policies: specs
                .into_iter()
                .map(ScalingPolicy::TargetTracking)
                .collect(),
            ..ControllerSpec::default()
        },
        Time::ZERO,
    )
}

/// Runs driver and controller second by second until `until`; returns every cause.
fn run(d: &mut Driver, c: &mut ScalingController, load: &Load, until: u64) -> Vec<String> {
    let mut causes = Vec::new();
    while d.now < at(until) {
        let next = d.now + secs(1);
        d.run_until(next);
        let now = d.now;
        for dec in c.tick(now, None, d.group_mut(), load) {
            causes.push(dec.cause);
        }
        d.pump();
    }
    causes
}

#[test]
fn target_tracking_scales_out_then_in_with_causes() {
    let mut d = Driver::new(spec(1, 10, 2));
    d.run_until(at(5));
    let mut c = controller(vec![tt("keep-rps", 100.0, 20)], 3);
    let load = Load(Cell::new(424.8));
    let causes = run(&mut d, &mut c, &load, 8);
    // 2 instances at 212.4 → ceil(4.248) = 5.
    assert_eq!(
        causes,
        vec!["policy keep-rps: request_rate_per_target 212.4 > target 100 for 1 period; desired 2 → 5"]
    );
    assert_eq!(d.group().desired_capacity(), 5);
    let acts: Vec<_> = d.group().activities().map(|a| a.cause.clone()).collect();
    assert!(acts
        .iter()
        .any(|a| a.starts_with("policy keep-rps: request_rate_per_target 212.4")));
    // Load holds: no more scaling once the new instances are measured (5 × 84.96 → 5).
    let more = run(&mut d, &mut c, &load, 30);
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(d.group().in_service_count(), 5);
    // Load ends: scale-in only after the 20 s stabilization window.
    load.0.set(0.0);
    let t_drop = d.now;
    let causes = run(&mut d, &mut c, &load, 60);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(causes[0].contains("< target 100"), "{}", causes[0]);
    assert!(causes[0].ends_with("desired 5 → 1"), "{}", causes[0]);
    let scaled_in_at = d
        .group()
        .activities()
        .find(|a| a.cause.contains("desired 5 → 1"))
        .map(|a| a.time)
        .unwrap();
    assert!(scaled_in_at.saturating_since(t_drop) >= secs(20));
}

#[test]
fn combination_out_if_any_in_only_if_all() {
    let mut d = Driver::new(spec(1, 10, 4));
    d.run_until(at(5));
    // Same metric, two targets: 100 wants 4 × 150/100 = 6; 300 wants 2.
    let mut c = controller(vec![tt("a", 100.0, 0), tt("b", 300.0, 0)], 0);
    let load = Load(Cell::new(600.0));
    let causes = run(&mut d, &mut c, &load, 7);
    assert_eq!(causes.len(), 1);
    assert!(causes[0].starts_with("policy a:") && causes[0].ends_with("desired 4 → 6"));
    // 6 × 60/100 → 4 (a wants in), 6 × 60/300 → 2 (b wants in): both agree; largest is 4.
    load.0.set(360.0);
    let causes = run(&mut d, &mut c, &load, 20);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(causes[0].ends_with("desired 6 → 4"), "{}", causes[0]);
}

#[test]
fn warming_instances_block_scale_in_and_are_not_measured() {
    let mut d = Driver::new(spec(1, 10, 2));
    d.run_until(at(5));
    let mut c = controller(vec![tt("keep-rps", 100.0, 0)], 30);
    // The instances the group started with never warm up; two added at t=5 (in service at
    // t≈7) warm for 30 s and block scale-in meanwhile.
    let first = d.group().instances().next().unwrap().id.clone();
    d.cluster.set_desired_capacity(at(5), "web", 4).unwrap();
    let load = Load(Cell::new(10.0));
    assert!(run(&mut d, &mut c, &load, 20).is_empty());
    assert!(!c.is_warming(d.group(), &first, d.now));
    let added = d.group().instances().last().unwrap().id.clone();
    assert!(c.is_warming(d.group(), &added, d.now));
    let causes = run(&mut d, &mut c, &load, 40);
    assert_eq!(causes.len(), 1);
    assert!(causes[0].ends_with("desired 4 → 1"), "{}", causes[0]);
    assert!(!c.is_warming(d.group(), &added, d.now));
}

#[test]
fn suspended_processes() {
    let mut d = Driver::new(spec(1, 10, 2));
    d.run_until(at(5));
    let mut c = controller(vec![tt("keep-rps", 100.0, 0)], 0);
    let load = Load(Cell::new(1000.0));
    d.group_mut()
        .suspend_process(ScalingProcess::AlarmNotification);
    assert!(run(&mut d, &mut c, &load, 10).is_empty());
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::AlarmNotification));
    // Launch suspended: desired rises but nothing launches until resumed.
    d.group_mut().suspend_process(ScalingProcess::Launch);
    let causes = run(&mut d, &mut c, &load, 14);
    assert_eq!(causes.len(), 1);
    assert_eq!(d.group().desired_capacity(), 10);
    assert_eq!(d.group().instances().count(), 2);
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::Launch));
    d.run_for(secs(5));
    assert_eq!(d.group().in_service_count(), 10);
    // Terminate suspended: desired drops, nobody is terminated.
    d.group_mut().suspend_process(ScalingProcess::Terminate);
    d.with_group(|g, now| g.set_desired_capacity(now, 3, "operator"))
        .unwrap();
    d.run_for(secs(10));
    assert_eq!(d.group().in_service_count(), 10);
    assert_eq!(
        d.group().suspended_processes().collect::<Vec<_>>(),
        vec![ScalingProcess::Terminate]
    );
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::Terminate));
    d.run_for(secs(20));
    assert_eq!(d.group().in_service_count(), 3);
}

#[test]
fn scale_in_protection_keeps_protected_instances() {
    let mut d = Driver::new(spec(0, 10, 3));
    d.run_until(at(5));
    let ids: Vec<_> = d.in_service();
    for id in &ids {
        assert!(d.with_group(|g, now| g.set_instance_protection(now, id, true)));
    }
    d.with_group(|g, now| g.set_desired_capacity(now, 1, "operator"))
        .unwrap();
    d.run_for(secs(20));
    assert_eq!(d.group().desired_capacity(), 1, "desired drops anyway");
    assert_eq!(d.group().in_service_count(), 3, "nothing terminates");
    d.with_group(|g, now| g.set_instance_protection(now, &ids[0], false));
    d.run_for(secs(20));
    assert_eq!(d.in_service().len(), 2);
    assert!(!d.in_service().contains(&ids[0]));
    // New instances inherit the group flag.
    d.group_mut()
        .set_new_instances_protected_from_scale_in(true);
    d.with_group(|g, now| g.set_desired_capacity(now, 4, "operator"))
        .unwrap();
    d.run_for(secs(20));
    assert!(d.group().instances().all(|i| i.protected_from_scale_in));
}

#[test]
fn update_capacity_moves_desired_into_new_bounds() {
    let mut d = Driver::new(spec(1, 5, 2));
    d.run_until(at(5));
    d.with_group(|g, now| g.update_capacity(now, Some(3), None, None, "scheduled action x"))
        .unwrap();
    assert_eq!(d.group().desired_capacity(), 3);
    assert_eq!(d.group().spec().min_size, 3);
    assert!(matches!(
        d.with_group(|g, now| g.update_capacity(now, Some(6), None, None, "bad")),
        Err(CapacityError::OutOfRange { min: 6, max: 5, .. })
    ));
    assert!(d
        .with_group(|g, now| g.update_capacity(now, None, None, Some(9), "bad"))
        .is_err());
    assert_eq!(d.group().spec().min_size, 3, "refusal changes nothing");
}

#[test]
fn scheduled_actions_run_on_wall_time_and_skip_while_suspended() {
    let mut d = Driver::new(spec(1, 10, 1));
    d.run_until(at(5));
    let rush = ScheduledActionSpec::parse(
        "morning-rush",
        Some("0 8 * * *"),
        "Asia/Seoul",
        None,
        None,
        Some(4),
        None,
        Some(4),
    )
    .unwrap();
    let mut c = ScalingController::new(
        ControllerSpec {
            scheduled: vec![rush],
            default_cooldown: secs(300),
            ..ControllerSpec::default()
        },
        Time::ZERO,
    );
    let load = Load(Cell::new(0.0));
    let wall = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    assert!({
        let now = d.now;
        c.tick(
            now,
            Some(wall("2026-03-02T22:59:58Z")),
            d.group_mut(),
            &load,
        )
    }
    .is_empty());
    let got = {
        let now = d.now + secs(2);
        c.tick(
            now,
            Some(wall("2026-03-02T23:00:00Z")),
            d.group_mut(),
            &load,
        )
    };
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].cause,
        "scheduled action morning-rush (due 2026-03-02T23:00:00Z): min 4, desired 4"
    );
    assert_eq!(d.group().spec().min_size, 4);
    // Next day, suspended: skipped, and not run later on resume.
    d.with_group(|g, now| g.update_capacity(now, Some(1), None, Some(1), "operator"))
        .unwrap();
    d.group_mut()
        .suspend_process(ScalingProcess::ScheduledActions);
    assert!({
        let now = d.now;
        c.tick(
            now,
            Some(wall("2026-03-03T23:00:01Z")),
            d.group_mut(),
            &load,
        )
    }
    .is_empty());
    d.with_group(|g, now| g.resume_process(now, ScalingProcess::ScheduledActions));
    assert!({
        let now = d.now;
        c.tick(
            now,
            Some(wall("2026-03-03T23:00:02Z")),
            d.group_mut(),
            &load,
        )
    }
    .is_empty());
    assert_eq!(d.group().desired_capacity(), 1);
}

/// A constant CPU reading.
struct Cpu(f64);

impl MetricSource for Cpu {
    fn group_metric(&self, q: &MetricQuery<'_>) -> Option<f64> {
        (!q.instances.is_empty()).then_some(self.0)
    }
}

#[test]
fn simple_policy_waits_for_activity_and_cooldown() {
    let mut d = Driver::new(spec(1, 10, 1));
    d.run_until(at(5));
    let mut c = ScalingController::new(
        ControllerSpec {
            default_instance_warmup: Some(Duration::ZERO),
            default_cooldown: secs(30),
            policies: vec![ScalingPolicy::Simple(SimpleSpec {
                name: "add-one".into(),
                adjustment_type: AdjustmentType::ChangeInCapacity,
                alarm: AlarmSpec {
                    metric: Metric::CpuUtilization,
                    statistic: Statistic::Average,
                    period: secs(5),
                    evaluation_periods: 1,
                    datapoints_to_alarm: 1,
                    comparison: Comparison::GreaterThan,
                    threshold: 70.0,
                    treat_missing_data: MissingData::Missing,
                },
                adjustment: 1,
                cooldown: None,
                min_adjustment_magnitude: None,
            })],
            ..ControllerSpec::default()
        },
        Time::ZERO,
    );
    let mut times = Vec::new();
    let cpu = Cpu(95.0);
    while d.now < at(100) {
        let next = d.now + secs(1);
        d.run_until(next);
        let now = d.now;
        if !c.tick(now, None, d.group_mut(), &cpu).is_empty() {
            times.push(d.now.as_duration().as_secs());
        }
        d.pump();
    }
    // First at t=10 (first period end after start, alarm in ALARM), then each time ~2 s launch
    // + 30 s cooldown + the next period boundary later.
    assert!(times.len() >= 2, "{times:?}");
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= 32, "cooldown respected: {times:?}");
    }
    assert!(d
        .group()
        .instances()
        .all(|i| i.lifecycle == LifecycleState::InService));
}
