//! The `Cluster`'s entry points one by one, in virtual time: each `handle_*`, the operator
//! commands, reconfiguration, restore and adoption, read through the effects they queue.

mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use flotilla_control::alarm::{AlarmSpec, Comparison, MissingData};
use flotilla_control::metrics::{Metric, Scope, Statistic};
use flotilla_control::policy::TargetTrackingSpec;
use flotilla_control::{
    Cluster, ClusterSpec, Durable, Effect, ForwardSpec, HealthCheckType, InstanceId,
    InstanceRecord, LifecycleState, ProbeResult, RefreshOverrides, Restored, RollbackSpec, RuleKey,
    Samples, ScalingPolicy, ScalingProcess, TargetSample, TargetState, Time, WeightOverride,
    WeightSource, WeightedTargetGroup, ZoneDrill,
};
use util::{at, cluster_spec, secs, spec};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn effects(c: &mut Cluster) -> Vec<Effect> {
    std::iter::from_fn(|| c.poll_effect()).collect()
}

fn launches(fx: &[Effect]) -> Vec<InstanceId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Launch(r) => Some(r.id.clone()),
            _ => None,
        })
        .collect()
}

fn probes(fx: &[Effect]) -> Vec<SocketAddr> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Probe { target, .. } => Some(*target),
            _ => None,
        })
        .collect()
}

fn target_state(fx: &[Effect], target: SocketAddr) -> Option<TargetState> {
    fx.iter()
        .rev()
        .find_map(|e| match e {
            Effect::PublishTargets { targets, .. } => Some(targets),
            _ => None,
        })
        .and_then(|ts| ts.iter().find(|t| t.address == target).map(|t| t.state))
}

/// A cluster of one group `web` of `desired` behind target group `web` (3 s drain), started:
/// every launch answered, every first probe answered healthy.
fn running(desired: u32) -> (Cluster, Vec<(InstanceId, SocketAddr)>) {
    let mut s = spec(0, 6, desired);
    s.has_target_groups = true;
    let mut c = Cluster::new(cluster_spec(&s, secs(3)), 7, Time::ZERO);
    c.handle_timeout(Time::ZERO);
    let ids = launches(&effects(&mut c));
    assert_eq!(ids.len(), desired as usize);
    let mut out = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let a = addr(9000 + i as u16);
        c.handle_launched(at(1), &id, a);
        let fx = effects(&mut c);
        assert_eq!(probes(&fx), vec![a], "registered and probed at once");
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::Persist(Durable::Instance(r)) if r.id == id)));
        c.handle_probe_result(at(1), "web", a, ProbeResult::Success);
        assert_eq!(
            target_state(&effects(&mut c), a),
            Some(TargetState::Healthy)
        );
        out.push((id, a));
    }
    (c, out)
}

#[test]
fn handle_launched_registers_and_handle_probe_result_routes() {
    let (c, members) = running(2);
    let g = c.group("web").unwrap();
    assert_eq!(g.asg.in_service_count(), 2);
    for (id, a) in &members {
        assert_eq!(c.instance_address(id), Some(*a));
        assert_eq!(c.instance_at(*a), Some(id));
    }
    // A launch the group gave up on is ignored.
    let mut c = c;
    c.handle_launched(at(2), &InstanceId::from("i-ghost".to_string()), addr(1));
    assert!(effects(&mut c).is_empty());
}

#[test]
fn handle_launch_failed_records_and_retries_after_back_off() {
    let mut c = Cluster::new(cluster_spec(&spec(1, 2, 1), secs(1)), 1, Time::ZERO);
    c.handle_timeout(Time::ZERO);
    let first = launches(&effects(&mut c)).pop().unwrap();
    c.handle_launch_failed(at(1), &first, "no capacity");
    let fx = effects(&mut c);
    assert!(launches(&fx).is_empty(), "back-off: no immediate relaunch");
    assert!(fx.iter().any(|e| matches!(e, Effect::Activity { activity, .. } if activity.description.contains(first.as_str()))));
    let retry = c.poll_timeout().unwrap();
    assert!(retry > at(1));
    c.handle_timeout(retry);
    assert_eq!(launches(&effects(&mut c)).len(), 1);
}

#[test]
fn handle_instance_exited_replaces_and_forgets() {
    let (mut c, members) = running(2);
    let (id, a) = members[0].clone();
    c.handle_instance_exited(at(5), &id, "signal 9");
    let fx = effects(&mut c);
    assert_eq!(launches(&fx).len(), 1, "replaced at once");
    assert_eq!(
        target_state(&fx, a),
        Some(TargetState::Draining),
        "no new traffic"
    );
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Persist(Durable::InstanceGone { id: gone }) if *gone == id)));
    assert_eq!(c.instance_address(&id), None, "the instance is forgotten");
    assert_eq!(
        c.instance_at(a),
        Some(&id),
        "its address stays known while the target group drains it"
    );
    // Past the drain (3 s), the target group lets go and so does the address map.
    let mut now = at(5);
    while let Some(t) = c.poll_timeout().filter(|t| *t <= at(10)) {
        now = t;
        c.handle_timeout(now);
        effects(&mut c);
    }
    assert!(now >= at(8), "ran past the drain");
    assert_eq!(c.instance_at(a), None);
    assert_eq!(c.instance_address(&members[1].0), Some(members[1].1));
}

#[test]
fn handle_probe_result_unhealthy_replaces_an_elb_instance_after_grace() {
    let mut s = spec(0, 4, 1);
    s.has_target_groups = true;
    s.health_check_type = HealthCheckType::Elb;
    s.health_check_grace_period = secs(0);
    let mut c = Cluster::new(cluster_spec(&s, secs(3)), 3, Time::ZERO);
    c.handle_timeout(Time::ZERO);
    let id = launches(&effects(&mut c)).pop().unwrap();
    c.handle_launched(at(1), &id, addr(7000));
    effects(&mut c);
    let fail = ProbeResult::Failure {
        reason: "Target.ResponseCodeMismatch".into(),
    };
    c.handle_probe_result(at(2), "web", addr(7000), fail);
    let fx = effects(&mut c);
    assert_eq!(target_state(&fx, addr(7000)), Some(TargetState::Draining));
    assert_eq!(launches(&fx).len(), 1, "the replacement launches at once");
}

#[test]
fn handle_target_idle_ends_draining_and_the_stop_follows() {
    let (mut c, members) = running(2);
    c.set_desired_capacity(at(5), "web", 1).unwrap();
    let fx = effects(&mut c);
    let draining: Vec<SocketAddr> = c.draining_targets().map(|(_, a)| a).collect();
    assert_eq!(draining.len(), 1);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Stop { .. })),
        "drain first"
    );
    c.handle_target_idle(at(6), "web", draining[0]);
    let fx = effects(&mut c);
    let victim = members
        .iter()
        .find(|(_, a)| *a == draining[0])
        .unwrap()
        .0
        .clone();
    // The data plane drops the target before its process is told to stop.
    let stop = fx
        .iter()
        .position(|e| matches!(e, Effect::Stop { id } if *id == victim));
    let publish = fx
        .iter()
        .position(|e| matches!(e, Effect::PublishTargets { .. }));
    assert!(publish.unwrap() < stop.unwrap(), "{fx:?}");
}

#[test]
fn handle_held_requests_scales_an_empty_group_from_zero() {
    let mut s = spec(0, 2, 0);
    s.has_target_groups = true;
    let mut c = Cluster::new(cluster_spec(&s, secs(3)), 5, Time::ZERO);
    let fx = effects(&mut c);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::HoldRequests { target_group } if target_group == "web")));
    assert_eq!(c.holding_target_groups().collect::<Vec<_>>(), ["web"]);
    c.handle_timeout(Time::ZERO);
    assert!(launches(&effects(&mut c)).is_empty());
    c.handle_held_requests(at(1), "web", 3);
    assert_eq!(launches(&effects(&mut c)).len(), 1);
    let g = c.group("web").unwrap();
    assert!(g
        .asg
        .activities()
        .any(|a| a.cause.contains("scaling from zero")));
}

/// A spec with a target tracking policy on requests per target.
fn with_policy(target: f64) -> ClusterSpec {
    let mut s = spec(1, 6, 1);
    s.has_target_groups = true;
    let mut cs = cluster_spec(&s, secs(3));
    let g = cs.groups.get_mut("web").unwrap();
    g.default_instance_warmup = Some(Duration::ZERO);
    g.scaling_policies = vec![ScalingPolicy::TargetTracking(TargetTrackingSpec {
        name: "keep-rps".into(),
        metric: Metric::RequestRatePerTarget,
        statistic: Statistic::Average,
        target_value: target,
        period: secs(1),
        scale_in_stabilization: secs(60),
        disable_scale_in: false,
    })];
    cs
}

#[test]
fn handle_samples_records_metrics_and_scales_on_them() {
    let mut c = Cluster::new(with_policy(100.0), 9, Time::ZERO);
    c.handle_timeout(Time::ZERO);
    let fx = effects(&mut c);
    assert!(fx.iter().any(|e| matches!(e, Effect::CollectSamples)));
    let id = launches(&fx).pop().unwrap();
    c.handle_launched(at(0), &id, addr(8000));
    c.handle_probe_result(at(0), "web", addr(8000), ProbeResult::Success);
    effects(&mut c);
    // One request for samples per second, none again before the answer.
    c.handle_timeout(at(0));
    assert!(!effects(&mut c)
        .iter()
        .any(|e| matches!(e, Effect::CollectSamples)));
    let wall = jiff::Timestamp::UNIX_EPOCH;
    for s in 0..3 {
        let samples = Samples {
            targets: vec![TargetSample {
                target_group: "web".into(),
                address: addr(8000),
                requests: 300,
                target_5xx: 0,
                response_times: vec![(0.02, 300)],
            }],
            ..Samples::default()
        };
        c.handle_samples(at(s), wall, samples);
    }
    let m = c.metrics();
    let rate = m.aggregate(
        Metric::RequestRatePerTarget,
        &Scope::Group("web".into()),
        1,
        Statistic::Average,
        at(2),
    );
    assert_eq!(rate, Some(300.0));
    assert!(m
        .aggregate(
            Metric::TargetResponseTime,
            &Scope::Instance(id),
            1,
            Statistic::P99,
            at(2)
        )
        .is_some());
    let g = c.group("web").unwrap();
    assert_eq!(
        g.asg.desired_capacity(),
        3,
        "300 per target at a target of 100"
    );
    assert_eq!(launches(&effects(&mut c)).len(), 2);
}

#[test]
fn operator_commands_apply_and_are_made_durable() {
    let (mut c, members) = running(2);
    let (id, _) = members[0].clone();
    c.set_instance_protection(at(3), &id, true).unwrap();
    let fx = effects(&mut c);
    assert!(fx.contains(&Effect::Persist(Durable::Protection {
        id: id.clone(),
        protected: true
    })));
    let wanted = [ScalingProcess::Launch].into_iter().collect();
    c.set_suspended_processes(at(3), "web", &wanted).unwrap();
    assert!(
        effects(&mut c).contains(&Effect::Persist(Durable::Suspended {
            group: "web".into(),
            processes: vec![ScalingProcess::Launch],
        }))
    );
    assert!(
        c.set_desired_capacity(at(3), "web", 99).is_err(),
        "outside min..max"
    );
    assert!(c.set_desired_capacity(at(3), "nope", 1).is_err());
    c.set_desired_capacity(at(3), "web", 3).unwrap();
    let fx = effects(&mut c);
    assert!(launches(&fx).is_empty(), "Launch is suspended");
    assert!(fx.contains(&Effect::Persist(Durable::Desired {
        group: "web".into(),
        desired: Some(3)
    })));
    let r = c
        .start_instance_refresh(at(4), "web", RefreshOverrides::default())
        .unwrap();
    assert!(r.status.is_active());
    c.cancel_instance_refresh(at(4), "web").unwrap();
    assert!(
        c.cancel_instance_refresh(at(4), "web").is_err(),
        "nothing to cancel"
    );
}

#[test]
fn zone_outage_kills_the_zones_instances_and_launches_elsewhere() {
    let (mut c, _) = running(3);
    let zone = c
        .group("web")
        .unwrap()
        .asg
        .instances()
        .next()
        .unwrap()
        .zone
        .clone();
    c.zone_drill(at(5), &zone, ZoneDrill::Outage, Some(secs(30)))
        .unwrap();
    let fx = effects(&mut c);
    let killed = fx
        .iter()
        .filter(|e| matches!(e, Effect::Kill { .. }))
        .count();
    assert_eq!(killed, 1);
    assert!(fx
        .iter()
        .all(|e| !matches!(e, Effect::Launch(r) if r.zone == zone)));
    c.zone_drill(at(6), &zone, ZoneDrill::Shift, Some(secs(30)))
        .unwrap();
    assert!(effects(&mut c).contains(&Effect::PublishShiftedZones {
        zones: vec![zone.clone()]
    }));
    assert!(c
        .zone_drill(at(6), "az-nowhere", ZoneDrill::Shift, Some(secs(3)))
        .is_err());
}

fn forward_spec() -> ClusterSpec {
    let mut cs = with_policy(100.0);
    let mut canary = cs.target_groups["web"].clone();
    canary.targets = vec![addr(6000)];
    cs.target_groups.insert("canary".into(), canary);
    let w = |name: &str, weight| WeightedTargetGroup {
        name: name.into(),
        weight,
    };
    cs.forwards = vec![ForwardSpec {
        rule: RuleKey {
            load_balancer: "front".into(),
            listener: addr(80),
            priority: None,
        },
        target_groups: vec![w("web", 50), w("canary", 50)],
        rollback: Some(RollbackSpec {
            target_group: "canary".into(),
            alarm: AlarmSpec {
                metric: Metric::HttpTarget5xxRate,
                statistic: Statistic::Average,
                period: secs(2),
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                comparison: Comparison::GreaterThanOrEqual,
                threshold: 20.0,
                treat_missing_data: MissingData::Missing,
            },
        }),
    }];
    cs
}

#[test]
fn weights_publish_persist_and_a_failing_canary_rolls_back() {
    let mut c = Cluster::new(forward_spec(), 2, Time::ZERO);
    let fx = effects(&mut c);
    let rule = RuleKey {
        load_balancer: "front".into(),
        listener: addr(80),
        priority: None,
    };
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::PublishWeights { rule: r, .. } if *r == rule)));
    let w: BTreeMap<String, u32> = [("canary".to_string(), 100)].into();
    c.set_weights(at(1), "front", "default", None, Some(&w))
        .unwrap();
    let fx = effects(&mut c);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Persist(Durable::WeightOverride {
            weights: Some(_),
            ..
        })
    )));
    assert!(c
        .set_weights(
            at(1),
            "front",
            "default",
            None,
            Some(&[("x".to_string(), 1)].into())
        )
        .is_err());
    // The canary answers half its requests with 5xx: its alarm fires, its weight goes to 0.
    let wall = jiff::Timestamp::UNIX_EPOCH;
    for s in 1..6 {
        let samples = Samples {
            targets: vec![TargetSample {
                target_group: "canary".into(),
                address: addr(6000),
                requests: 100,
                target_5xx: 50,
                response_times: Vec::new(),
            }],
            ..Samples::default()
        };
        c.handle_samples(at(s), wall, samples);
    }
    let fx = effects(&mut c);
    let published = fx.iter().rev().find_map(|e| match e {
        Effect::PublishWeights { weights, .. } => Some(weights.clone()),
        _ => None,
    });
    let canary = published
        .unwrap()
        .into_iter()
        .find(|g| g.name == "canary")
        .unwrap();
    assert_eq!(canary.weight, 0);
    let status = c.forward(&rule).unwrap();
    assert!(matches!(
        status.weights.map(|o| &o.source),
        Some(WeightSource::Rollback(_))
    ));
}

#[test]
fn reconfigure_checks_then_applies_in_place() {
    let (mut c, _) = running(2);
    let mut s = spec(0, 6, 2);
    s.has_target_groups = true;
    let mut next = cluster_spec(&s, secs(3));
    next.groups.get_mut("web").unwrap().max_size = 4;
    let mut moved = next.clone();
    moved.groups.get_mut("web").unwrap().target_groups = vec!["api".into()];
    assert_eq!(
        c.reconfigure_blockers(&moved),
        ["target groups of auto scaling group web changed"]
    );
    assert!(c.reconfigure_blockers(&next).is_empty());
    let mut template = next.launch_templates["web"].clone();
    template.command = vec!["app".into(), "--v2".into()];
    next.launch_templates.insert("web".into(), template);
    let changes = c.reconfigure(at(10), next);
    assert!(
        changes.iter().any(|l| l.contains("max_size 6 → 4")),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|l| l.contains("is now version 2")),
        "{changes:?}"
    );
    assert_eq!(
        c.group("web").unwrap().asg.spec().launch_template_version,
        2
    );
}

#[test]
fn restore_and_adopt_take_back_an_earlier_run() {
    let mut s = spec(0, 6, 1);
    s.has_target_groups = true;
    let mut cs = cluster_spec(&s, secs(3));
    let rule = RuleKey {
        load_balancer: "front".into(),
        listener: addr(80),
        priority: None,
    };
    let w = |name: &str, weight| WeightedTargetGroup {
        name: name.into(),
        weight,
    };
    cs.forwards = vec![ForwardSpec {
        rule: rule.clone(),
        target_groups: vec![w("web", 1)],
        rollback: None,
    }];
    let mut c = Cluster::new(cs, 4, Time::ZERO);
    effects(&mut c);
    c.restore(
        Time::ZERO,
        Restored {
            desired: [("web".to_string(), 3)].into(),
            suspended: [("web".to_string(), vec![ScalingProcess::AzRebalance])].into(),
            weight_overrides: vec![(
                rule.clone(),
                WeightOverride {
                    weights: vec![w("web", 1)],
                    base: vec![w("web", 9)],
                    source: WeightSource::Operator,
                },
            )],
            ..Restored::default()
        },
    );
    let fx = effects(&mut c);
    assert!(
        fx.contains(&Effect::Persist(Durable::WeightOverride {
            rule,
            weights: None
        })),
        "a stale override is dropped"
    );
    let adopted = c.adopt(
        Time::ZERO,
        InstanceRecord {
            id: InstanceId::from("i-old".to_string()),
            group: "web".into(),
            zone: "az-a".into(),
            address: addr(5000),
            launch_template_version: 4,
            protected_from_scale_in: true,
            lifecycle: LifecycleState::InService,
            purchase_option: flotilla_control::pricing::PurchaseOption::Spot,
        },
    );
    assert!(adopted);
    let g = c.group("web").unwrap();
    assert_eq!(g.asg.desired_capacity(), 3);
    assert!(g.asg.is_suspended(ScalingProcess::AzRebalance));
    assert_eq!(
        g.asg.spec().launch_template_version,
        4,
        "continues after the newest adopted"
    );
    c.handle_timeout(Time::ZERO);
    assert_eq!(
        launches(&effects(&mut c)).len(),
        2,
        "only the difference launches"
    );
    assert_eq!(c.instance_at(addr(5000)).map(|i| i.as_str()), Some("i-old"));
}

/// Groups never share instance ids: three groups launching a hundred instances each hand out
/// three hundred distinct ids (their generators were once seeded a golden step apart, which
/// made group n+1's first id group n's second).
#[test]
fn groups_never_share_instance_ids() {
    let mut spec = util::cluster_spec(&util::spec(0, 200, 100), util::secs(5));
    let web = spec.groups["web"].clone();
    for name in ["api", "jobs"] {
        spec.groups.insert(name.to_string(), web.clone());
    }
    let mut c = flotilla_control::Cluster::new(spec, 42, flotilla_control::Time::ZERO);
    c.handle_timeout(flotilla_control::Time::ZERO);
    let mut ids = std::collections::BTreeSet::new();
    let mut launches = 0;
    while let Some(e) = c.poll_effect() {
        if let flotilla_control::Effect::Launch(l) = e {
            launches += 1;
            ids.insert(l.id);
        }
    }
    assert_eq!(launches, 300);
    assert_eq!(ids.len(), 300);
}
