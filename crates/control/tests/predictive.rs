//! Predictive scaling on the real cluster in virtual time: two days of a daily pattern, then
//! capacity in place ahead of each busier hour (the scheduling buffer), target tracking
//! scaling in no lower than the forecast, forecast-only changing nothing, and the history
//! made durable hour by hour and taken back after a restart.

mod util;

use std::time::Duration;

use flotilla_control::metrics::{Metric, Statistic};
use flotilla_control::policy::predictive::{MaxCapacityBreach, PredictiveMode};
use flotilla_control::policy::{PredictiveSpec, ScalingPolicy, TargetTrackingSpec};
use flotilla_control::{ClusterSpec, Restored, Time};
use util::{cluster_spec, secs, spec, Driver};

const HOUR: u64 = 3600;

/// Requests per second in hour `h` of the day: 40 at night, up to 600 at 18:00, hour by hour.
fn traffic(h: u64) -> f64 {
    let h = h % 24;
    if (6..=18).contains(&h) {
        40.0 + 560.0 * (h - 6) as f64 / 12.0
    } else {
        40.0
    }
}

/// Instances hour `h` needs at 40 requests/s each.
fn need(h: u64) -> u32 {
    (traffic(h) / 40.0).ceil() as u32
}

fn cluster(mode: PredictiveMode) -> ClusterSpec {
    let mut s = spec(1, 20, 1);
    s.has_target_groups = true;
    let mut cs = cluster_spec(&s, secs(5));
    let g = cs.groups.get_mut("web").expect("web");
    g.default_instance_warmup = Some(secs(60));
    g.scaling_policies = vec![
        ScalingPolicy::TargetTracking(TargetTrackingSpec {
            name: "keep-40".into(),
            metric: Metric::RequestRatePerTarget,
            statistic: Statistic::Average,
            target_value: 40.0,
            period: secs(60),
            scale_in_stabilization: secs(300),
            disable_scale_in: false,
        }),
        ScalingPolicy::Predictive(PredictiveSpec {
            name: "daily".into(),
            metric: Metric::RequestCount,
            target_value: 40.0,
            mode,
            scheduling_buffer_time: secs(300),
            max_capacity_breach_behavior: MaxCapacityBreach::HonorMaxCapacity,
            max_capacity_buffer: 0,
        }),
    ];
    cs
}

/// Runs until `until` seconds, hour by hour of traffic; calls `at` 4 minutes before each
/// hour with (hour, desired capacity).
fn run(d: &mut Driver, until: u64, mut at: impl FnMut(u64, u32)) {
    let mut t = d.now.as_duration().as_secs();
    while t < until {
        d.traffic = traffic(t / HOUR);
        let next = (t + 1).min(until);
        d.run_until(Time::ZERO + Duration::from_secs(next));
        t = next;
        if t % HOUR == HOUR - 240 {
            at(t / HOUR + 1, d.group().desired_capacity());
        }
    }
}

#[test]
fn capacity_is_in_place_before_the_busier_hours_of_day_two() {
    let mut d = Driver::with_cluster_spec(cluster(PredictiveMode::ForecastAndScale));
    d.health_delay = Some(secs(1));
    let mut early = Vec::new();
    run(&mut d, 48 * HOUR, |hour, desired| {
        if hour >= 24 && need(hour) > need(hour - 1) {
            early.push((hour, desired, need(hour)));
        }
    });
    assert_eq!(early.len(), 12, "{early:?}");
    for (hour, desired, need) in &early {
        assert!(
            desired >= need,
            "hour {hour}: desired {desired} < {need} needed, 4 min ahead"
        );
    }
    let causes: Vec<String> = d
        .group()
        .activities()
        .filter(|a| a.cause.contains("(predictive)"))
        .map(|a| a.cause.clone())
        .collect();
    assert!(!causes.is_empty());
    assert!(causes.iter().any(|c| c.contains("UTC needs")), "{causes:?}");
    let view = d.cluster.group("web").expect("web");
    let p = view.controller.predictive_policies().next().expect("daily");
    assert_eq!(p.forecast().len(), 48);
    assert_eq!(p.history_hours(), 48);
}

#[test]
fn forecast_only_changes_nothing() {
    let mut d = Driver::with_cluster_spec(cluster(PredictiveMode::ForecastOnly));
    d.health_delay = Some(secs(1));
    run(&mut d, 30 * HOUR, |_, _| {});
    assert!(d
        .group()
        .activities()
        .all(|a| !a.cause.contains("(predictive)")));
    let view = d.cluster.group("web").expect("web");
    let p = view.controller.predictive_policies().next().expect("daily");
    // Made at 06:00 on day 2 from the first day: 06:00-07:00 needs 1, 18:00 needs 15.
    assert_eq!(p.forecast().len(), 48);
    let at = |h: i64| {
        p.forecast()
            .iter()
            .find(|f| f.hour == h)
            .map(|f| f.capacity)
    };
    assert_eq!(at(30), Some(1));
    let evening = at(42).expect("18:00");
    assert!((14..=16).contains(&evening), "{evening}");
}

#[test]
fn the_history_is_made_durable_and_restored() {
    let mut d = Driver::with_cluster_spec(cluster(PredictiveMode::ForecastOnly));
    d.health_delay = Some(secs(1));
    run(&mut d, 26 * HOUR, |_, _| {});
    assert_eq!(d.load_hours.len(), 26, "one per completed hour (0-25)");
    assert!(d
        .load_hours
        .iter()
        .all(|(g, m, _)| g == "web" && *m == Metric::RequestCount));
    let before: Vec<_> = {
        let view = d.cluster.group("web").expect("web");
        let p = view.controller.predictive_policies().next().expect("daily");
        p.forecast().to_vec()
    };
    assert!(!before.is_empty());
    // A restart: a new cluster, the stored hours restored before it starts.
    let mut again = Driver::with_cluster_spec(cluster(PredictiveMode::ForecastOnly));
    let hours = d.load_hours.iter().map(|(_, m, h)| (*m, *h)).collect();
    let restored = Restored {
        load_history: [("web".to_string(), hours)].into(),
        ..Restored::default()
    };
    again.cluster.restore(Time::ZERO, restored);
    again.health_delay = Some(secs(1));
    // Its clock starts at the same wall hour as the first run's latest forecast.
    again.now = d.now;
    run(&mut again, 26 * HOUR + 10, |_, _| {});
    let view = again.cluster.group("web").expect("web");
    let p = view.controller.predictive_policies().next().expect("daily");
    assert_eq!(p.history_hours(), 26);
    assert_eq!(p.forecast(), &before[..]);
}

/// A hot upgrade hands the cluster over mid-run (a serde round trip, as the runtime's CBOR):
/// the learned load history, the forecast and the purchase-option split and Spot drill draws
/// carry on, so the run decides exactly as one that was never handed over.
#[test]
fn a_cluster_handed_over_mid_run_forecasts_and_scales_the_same() {
    fn round_trip(c: &flotilla_control::Cluster) -> flotilla_control::Cluster {
        let mut bytes = Vec::new();
        ciborium::into_writer(c, &mut bytes).expect("a cluster serialises");
        ciborium::from_reader(bytes.as_slice()).expect("and deserialises")
    }
    fn spot_mix(mut cs: ClusterSpec) -> ClusterSpec {
        let g = cs.groups.get_mut("web").expect("web");
        g.instances_distribution = Some(flotilla_control::pricing::InstancesDistribution {
            on_demand_base_capacity: 1,
            on_demand_percentage_above_base_capacity: 50,
            spot_interruption_rate: 0.5,
            ..flotilla_control::pricing::InstancesDistribution::default()
        });
        cs
    }
    let trace = |handover: Option<u64>| {
        let mut d = Driver::with_cluster_spec(spot_mix(cluster(PredictiveMode::ForecastAndScale)));
        d.health_delay = Some(secs(1));
        let mut desired = Vec::new();
        run(&mut d, 26 * HOUR, |hour, capacity| {
            desired.push((hour, capacity))
        });
        if handover.is_some() {
            d.cluster = round_trip(&d.cluster);
        }
        run(&mut d, 32 * HOUR, |hour, capacity| {
            desired.push((hour, capacity))
        });
        let causes: Vec<String> = d.group().activities().map(|a| a.cause.clone()).collect();
        (desired, causes)
    };
    let (straight, straight_causes) = trace(None);
    let (handed, handed_causes) = trace(Some(26 * HOUR));
    assert_eq!(straight, handed);
    assert_eq!(straight_causes, handed_causes);
    // Not vacuous: the second part of the run scaled ahead of the forecast.
    assert!(
        handed_causes.iter().any(|c| c.contains("(predictive)")),
        "{handed_causes:?}"
    );
}
