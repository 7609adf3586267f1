//! The simulator pinned to cases computed by hand: where target tracking settles, when a step
//! lands, what instances cost, what a zone outage loses, and that a run is a function of its
//! seed.

mod common;

use common::{config, cpu_policy, lb_group, rps_policy, scenario};
use flotilla_config::scenario::Scenario;
use flotilla_simulator::{csv, simulate, Second};

fn run(cfg: &str, sc: &Scenario) -> (flotilla_simulator::Summary, Vec<Second>) {
    simulate(sc, &config(cfg), None).expect("simulates")
}

/// Constant load L on instances serving C requests/s at 100 % CPU with a CPU target of T %:
/// the group settles at ceil(L / (T/100 × C)) instances.
#[test]
fn constant_load_settles_at_the_target_tracking_count() {
    let mut checked = 0;
    for (load, capacity, target) in [(730.0f64, 100.0f64, 50.0f64), (1000.0, 80.0, 70.0)] {
        let want = (load / (target / 100.0 * capacity)).ceil() as u32;
        let cfg = lb_group(2, 40, 2, "5s", &cpu_policy(target, "10s"));
        let sc = scenario(&format!(
            "duration = \"1h\"\n[traffic]\nbase = {load}\n\
             [instance]\nboot_time = \"30s\"\ncapacity = {capacity}\n"
        ));
        let (summary, rows) = run(&cfg, &sc);
        assert_eq!(rows.len(), 3600);
        for r in &rows[3000..] {
            assert_eq!(
                (r.desired, r.serving),
                (want, want),
                "{load}/{capacity}/{target} at {}",
                r.t
            );
        }
        assert!(
            summary.scaling_actions.contains_key("policy cpu"),
            "{summary:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

/// A step from 200 to 800 requests/s (target 50 requests per target and second: 4 → 16
/// instances) lands within one policy period plus the boot time plus the health checks that
/// put a new target in service (healthy_threshold × interval). On CPU the same step takes two
/// rounds (4 → 8 → 16): an overloaded instance shows 98 % CPU, not the demand behind it.
#[test]
fn a_step_lands_within_one_period_plus_boot_time() {
    let (period, boot, checks) = (10, 30, 2 * 2);
    let cfg = lb_group(2, 40, 4, "2s", &rps_policy(50.0, &format!("{period}s")));
    let step = 1800;
    let sc = scenario(&format!(
        "duration = \"1h\"\n[traffic]\nbase = 200\n\
         [[traffic.changes]]\ntype = \"step\"\nat = \"{step}s\"\nto = 800\n\
         [instance]\nboot_time = \"{boot}s\"\ncapacity = 100\n"
    ));
    let (_, rows) = run(&cfg, &sc);
    assert_eq!(rows[step - 1].serving, 4, "settled at 4 before the step");
    let decided = rows[step..]
        .iter()
        .find(|r| r.desired >= 16)
        .expect("scaled out to 16")
        .t as usize;
    let landed = rows[step..]
        .iter()
        .find(|r| r.serving >= 16)
        .expect("16 serving")
        .t as usize;
    // One second for the samples of the step's first second to arrive.
    assert!(decided <= step + period + 1, "decided at {decided}");
    assert!(
        landed <= step + period + 1 + boot + checks + 1,
        "landed at {landed} (decided at {decided})"
    );
    let cpu = lb_group(2, 40, 4, "2s", &cpu_policy(50.0, &format!("{period}s")));
    let (_, rows) = run(&cpu, &sc);
    let first = rows[step..]
        .iter()
        .find(|r| r.desired > 4)
        .expect("scaled out");
    assert_eq!(first.desired, 8, "4 × 98 % / 50 %: CPU saturates");
}

/// Instance-hours and cost by purchase option: a fixed group of 4 m5.large, an On-Demand base
/// of 2 and the rest Spot, one reserved m5.large: every hour bills 1 reserved, 1 On-Demand
/// and 2 Spot at the price table's rates.
#[test]
fn cost_is_instance_hours_times_price_by_option() {
    let extra = "[auto_scaling_groups.web.instances_distribution]\n\
                 on_demand_base_capacity = 2\n\
                 on_demand_percentage_above_base_capacity = 0\n\
                 [pricing]\nreserved = { \"m5.large\" = 1 }\n";
    let cfg_text = lb_group(4, 4, 4, "5s", extra);
    let sc = scenario(
        "duration = \"2h\"\n[traffic]\nbase = 100\n[instance]\nboot_time = \"30s\"\ncapacity = 100\n",
    );
    let cfg = config(&cfg_text);
    let (summary, _) = simulate(&sc, &cfg, None).expect("simulates");
    let pricing = cfg.cluster_spec(|a| a).pricing;
    let mut checked = 0;
    for billing in flotilla_control::pricing::Billing::ALL {
        let key = billing.as_str();
        let price = pricing.hourly("m5.large", billing).expect("priced");
        let hours = summary.instance_hours.get(key).copied().unwrap_or(0.0);
        let cost = summary.cost.get(key).copied().unwrap_or(0.0);
        let count = if billing == flotilla_control::pricing::Billing::Spot {
            2.0
        } else {
            1.0
        };
        assert!(
            (hours - count * 2.0).abs() < 1e-6,
            "{key}: {hours} instance-hours"
        );
        assert!(
            (cost - hours * price).abs() < 1e-9,
            "{key}: ${cost} for {hours} h at ${price}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    let total: f64 = summary.cost.values().sum();
    assert!((summary.cost_total - total).abs() < 1e-9);
    assert!((summary.cost_per_day - total * 12.0).abs() < 1e-6);
}

/// One zone of three down for 10 minutes under 600 requests/s on 6 instances: behind the load
/// balancer (the data plane retries a failed connect once on another target) the loss is at
/// most one health-check interval of requests; through DNS (no health checks, no retry) the
/// zone's share is lost until EC2's status checks find the instances (a minute) and their
/// replacements boot.
#[test]
fn a_zone_outage_loses_at_most_one_health_check_interval_with_retries() {
    let (load, interval) = (600.0, 5.0);
    let sc = scenario(&format!(
        "duration = \"1h\"\n[traffic]\nbase = {load}\n\
         [instance]\nboot_time = \"30s\"\ncapacity = 300\n\
         [[events]]\ntype = \"zone_outage\"\nzone = \"az-a\"\nat = \"20m\"\nfor = \"10m\"\n"
    ));
    let (lb, rows) = run(&lb_group(6, 6, 6, "5s", ""), &sc);
    assert!(rows[1199].dropped == 0.0 && rows[1199].serving == 6);
    let lost = lb.requests_dropped;
    assert!(
        lost > 0.0,
        "the outage cost something: both tries on dead targets"
    );
    assert!(
        lost <= load * interval,
        "lost {lost} > one interval ({})",
        load * interval
    );
    assert_eq!(rows[3599].serving, 6, "replaced in the other zones");

    let dns = lb_group(6, 6, 6, "5s", "")
        .replace("target_groups = [\"web\"]\n", "")
        .replace(
            "health_check_type = \"elb\"",
            "health_check_type = \"process\"",
        );
    let (dns, _) = run(&dns, &sc);
    let share = load / 3.0;
    assert!(
        dns.requests_dropped >= share * 60.0,
        "DNS lost {}",
        dns.requests_dropped
    );
}

/// The same scenario, config and seed give the same bytes; another seed gives others.
#[test]
fn same_seed_same_bytes() {
    let cfg = lb_group(2, 20, 3, "5s", &cpu_policy(50.0, "10s"));
    let sc = scenario(
        "duration = \"2h\"\nseed = 42\n[traffic]\nbase = 500\nnoise = 0.2\n\
         [instance]\nboot_time = \"40s\"\nboot_jitter = \"20s\"\ncapacity = 100\ncrash_rate = 0.5\n",
    );
    let bytes = |seed: Option<u64>| {
        let (summary, rows) = simulate(&sc, &config(&cfg), seed).expect("simulates");
        (csv(&rows), serde_json::to_string(&summary).expect("json"))
    };
    let (a, b) = (bytes(None), bytes(None));
    assert_eq!(a, b);
    assert_eq!(a.0.lines().count(), 7201);
    assert_ne!(a, bytes(Some(43)), "the seed matters");
}
