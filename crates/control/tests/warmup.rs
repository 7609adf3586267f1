//! Warm-up as AWS defines it (issue 19's finding: a new group with the default warm-up was
//! blind to its own load for five minutes): instances a group starts with never warm up;
//! load balancer metrics (`request_rate_per_target`) count every registered target, warming
//! or not; instance metrics (CPU) leave warming instances out; scale-in waits for warm-up.

mod util;

use flotilla_control::metrics::{Metric, Statistic};
use flotilla_control::policy::{ScalingPolicy, TargetTrackingSpec};
use flotilla_control::{
    ClusterSpec, ControllerSpec, InstanceId, MetricQuery, MetricSource, ScalingController, Time,
};
use std::cell::RefCell;
use util::{at, cluster_spec, secs, spec, Driver};

fn keep(metric: Metric, target: f64) -> ScalingPolicy {
    ScalingPolicy::TargetTracking(TargetTrackingSpec {
        name: "keep".into(),
        metric,
        statistic: Statistic::Average,
        target_value: target,
        period: secs(1),
        scale_in_stabilization: secs(0),
        disable_scale_in: false,
    })
}

/// The quickstart's group: min 2, max `max`, desired 3, behind a target group, no
/// `default_instance_warmup` (so the warm-up falls back to the 300 s default cooldown).
fn quickstart(max: u32, policy: ScalingPolicy) -> ClusterSpec {
    let mut s = spec(2, max, 3);
    s.has_target_groups = true;
    let mut cs = cluster_spec(&s, secs(5));
    let g = cs.groups.get_mut("web").expect("the group");
    assert_eq!(g.default_instance_warmup, None);
    assert_eq!(g.default_cooldown, secs(300));
    g.scaling_policies = vec![policy];
    cs
}

/// A driver answering probes after 1 s, with 100 requests/s from the start (33 per target:
/// below the target of 40, and not so far below that the policy scales in).
fn driver(cs: ClusterSpec) -> Driver {
    let mut d = Driver::with_cluster_spec(cs);
    d.health_delay = Some(secs(1));
    d.traffic = 100.0;
    d
}

fn causes(d: &Driver) -> Vec<String> {
    d.group()
        .activities()
        .filter(|a| a.description.starts_with("Setting desired capacity"))
        .map(|a| a.cause.clone())
        .collect()
}

#[test]
fn a_new_group_is_not_blind_the_quickstart_scales_out_at_once() {
    let mut d = driver(quickstart(6, keep(Metric::RequestRatePerTarget, 40.0)));
    d.run_until(at(5));
    assert_eq!(d.healthy_in_service(), 3);
    // 250 requests/s over 3 targets: 83 each (whole requests), twice the target of 40.
    d.traffic = 250.0;
    d.run_until(at(6));
    let c = causes(&d);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        c[0],
        "policy keep: request_rate_per_target 83 > target 40 for 1 period; desired 3 → 6"
    );
    assert_eq!(d.group().desired_capacity(), 6);
}

#[test]
fn the_load_balancer_metric_counts_warming_targets() {
    let mut d = driver(quickstart(12, keep(Metric::RequestRatePerTarget, 40.0)));
    d.run_until(at(5));
    // 150/s over 3: 50 each → ceil(3 × 50 / 40) = 4.
    d.traffic = 150.0;
    d.run_until(at(6));
    assert_eq!(d.group().desired_capacity(), 4, "{:?}", causes(&d));
    d.run_until(at(15));
    assert_eq!(d.healthy_in_service(), 4);
    // The new target warms for 300 s; the load doubles meanwhile: 300/s over all 4
    // serving targets is 75 each → ceil(4 × 75 / 40) = 8. (Measured over the 3 warm
    // targets only it would read 75 and ask for ceil(3 × 75 / 40) = 6: too few.)
    d.traffic = 300.0;
    d.run_until(at(16));
    let c = causes(&d);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[0].ends_with("desired 4 → 8"), "{}", c[0]);
    assert_eq!(d.group().desired_capacity(), 8);
    // Scale-in waits for the warm-up: the load ends, nothing happens for 300 s.
    d.traffic = 0.0;
    d.run_until(at(300));
    assert_eq!(d.group().desired_capacity(), 8);
    d.run_until(at(330));
    assert_eq!(d.group().desired_capacity(), 2, "{:?}", causes(&d));
}

/// Records which instances each query named.
#[derive(Default)]
struct Recorder(RefCell<Vec<(Metric, Vec<InstanceId>)>>);

impl MetricSource for Recorder {
    fn group_metric(&self, q: &MetricQuery<'_>) -> Option<f64> {
        self.0.borrow_mut().push((q.metric, q.instances.to_vec()));
        None
    }
}

#[test]
fn cpu_leaves_warming_instances_out_request_rate_does_not() {
    let mut d = driver(quickstart(12, keep(Metric::RequestRatePerTarget, 40.0)));
    d.run_until(at(5));
    let initial = d.in_service();
    assert_eq!(initial.len(), 3);
    d.cluster.set_desired_capacity(at(5), "web", 4).expect("4");
    d.run_until(at(10));
    let all = d.in_service();
    assert_eq!(all.len(), 4);
    let mut c = ScalingController::new(
        ControllerSpec {
            default_instance_warmup: Some(secs(60)),
            default_cooldown: secs(300),
            policies: vec![
                keep(Metric::CpuUtilization, 50.0),
                keep(Metric::RequestRatePerTarget, 40.0),
            ],
            ..ControllerSpec::default()
        },
        at(10),
    );
    let rec = Recorder::default();
    let mut tick = |d: &mut Driver, now: Time| {
        d.run_until(now);
        c.tick(now, None, d.group_mut(), &rec);
    };
    tick(&mut d, at(12));
    let seen = rec.0.borrow().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (metric, ids) in &seen {
        let want = if *metric == Metric::CpuUtilization {
            &initial
        } else {
            &all
        };
        assert_eq!(ids, want, "{metric}");
    }
    // Past the warm-up, CPU counts the new instance too.
    rec.0.borrow_mut().clear();
    tick(&mut d, at(70));
    let seen = rec.0.borrow().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|(_, ids)| *ids == all), "{seen:?}");
}
