//! `[pricing]`, `instances_distribution` and predictive scaling policies: decoded into the
//! control plane's types, and every mistake reported at its FILE:LINE:COL.

use std::path::Path;

use flotilla_config::{parse, ConfigError};
use flotilla_control::pricing::{ReservedTerm, SpotAllocationStrategy};

fn errs(src: &str) -> Vec<String> {
    match parse(src, Path::new("f.toml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(d)) => d
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

const GROUP: &str = "[launch_templates.web]\ncommand = [\"app\"]\ninstance_type = \"m5.large\"\n\
    [auto_scaling_groups.web]\nlaunch_template = \"web\"\nmin_size = 1\nmax_size = 4\n";

#[test]
fn a_mixed_group_and_a_price_table_decode() {
    let src = format!(
        "{GROUP}[auto_scaling_groups.web.instances_distribution]
on_demand_base_capacity = 1
on_demand_percentage_above_base_capacity = 25
spot_allocation_strategy = \"capacity-optimized\"
capacity_rebalance = true
spot_interruption_notice = \"30s\"
spot_interruption_rate = 0.5

[pricing]
reserved = {{ \"m5.large\" = 2 }}
reserved_term = \"3y\"

[pricing.instance_types.\"local.tiny\"]
on_demand = 0.01

[pricing.instance_types.\"m5.large\"]
spot = 0.02
"
    );
    let c = parse(&src, Path::new("f.toml")).expect("valid");
    let d = c.auto_scaling_groups["web"]
        .instances_distribution
        .expect("a distribution");
    assert_eq!(d.on_demand_base_capacity, 1);
    assert_eq!(d.on_demand_percentage_above_base_capacity, 25);
    assert_eq!(
        d.spot_allocation_strategy,
        SpotAllocationStrategy::CapacityOptimized
    );
    assert!(d.capacity_rebalance);
    assert_eq!(d.spot_interruption_notice.as_secs(), 30);
    assert_eq!(d.spot_interruption_rate, 0.5);
    let p = &c.pricing;
    assert_eq!(p.reserved["m5.large"], 2);
    assert_eq!(p.reserved_term, ReservedTerm::ThreeYears);
    let tiny = p.instance_types["local.tiny"];
    assert_eq!(tiny.on_demand, 0.01);
    assert!(
        tiny.spot > 0.0 && tiny.spot < 0.01,
        "derived from on_demand"
    );
    let m5 = p.instance_types["m5.large"];
    assert_eq!(
        (m5.on_demand, m5.spot),
        (0.096, 0.02),
        "shipped, spot overridden"
    );
    assert!(
        p.instance_types.contains_key("t3.micro"),
        "shipped table kept"
    );
    assert_eq!(c.cluster_spec(|a| a).pricing, c.pricing);
}

#[test]
fn mistakes_are_reported_where_they_are() {
    let src = "[launch_templates.web]
command = [\"app\"]
instance_type = \"t3.mciro\"
[auto_scaling_groups.web]
launch_template = \"web\"
min_size = 1
max_size = 4
[auto_scaling_groups.web.warm_pool]
[auto_scaling_groups.web.instances_distribution]
on_demand_percentage_above_base_capacity = 101
spot_allocation_strategy = \"cheapest\"
spot_interruption_rate = -1
[pricing]
reserved = { \"x9.huge\" = 1 }
[pricing.instance_types.\"new.type\"]
spot = 0.01
";
    let got = errs(src);
    let want = [
        "3:17: instance type `t3.mciro` has no price; did you mean `t3.micro`?",
        "9:1: a group with a warm_pool cannot have instances_distribution",
        "10:44: on_demand_percentage_above_base_capacity must be between 0 and 100, found 101",
        "11:28: unknown spot_allocation_strategy",
        "12:26: spot_interruption_rate is interruptions per spot instance per hour",
        "14:14: instance type `x9.huge` has no price",
        "15:1: missing required key `on_demand`",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w:?} in {got:#?}"
        );
    }
}

#[test]
fn a_predictive_policy_decodes_and_its_mistakes_are_reported() {
    use flotilla_control::policy::predictive::{MaxCapacityBreach, PredictiveMode};
    use flotilla_control::policy::ScalingPolicy;
    let src = format!(
        "{GROUP}[[auto_scaling_groups.web.scaling_policies]]
name = \"daily\"
type = \"predictive\"
metric = \"request_count\"
target_value = 40.0
mode = \"forecast_and_scale\"
scheduling_buffer_time = \"10m\"
max_capacity_breach_behavior = \"increase_max_capacity\"
max_capacity_buffer = 10
"
    );
    let c = parse(&src, Path::new("f.toml")).expect("valid");
    let ScalingPolicy::Predictive(p) = &c.auto_scaling_groups["web"].scaling_policies[0] else {
        panic!("a predictive policy");
    };
    assert_eq!(p.mode, PredictiveMode::ForecastAndScale);
    assert_eq!(p.scheduling_buffer_time.as_secs(), 600);
    assert_eq!(
        p.max_capacity_breach_behavior,
        MaxCapacityBreach::IncreaseMaxCapacity
    );
    assert_eq!((p.target_value, p.max_capacity_buffer), (40.0, 10));
    let bad = format!(
        "{GROUP}[[auto_scaling_groups.web.scaling_policies]]
name = \"daily\"
type = \"predictive\"
metric = \"request_rate_per_target\"
target_value = 0
scheduling_buffer_time = \"2h\"
max_capacity_buffer = 10
period = \"10s\"
"
    );
    let got = errs(&bad);
    let lines = |needle: &str| {
        let off = bad.find(needle).expect("needle");
        bad[..off].matches('\n').count() + 1
    };
    for (needle, msg) in [
        ("metric = ", "predictive scaling load metric"),
        (
            "target_value = 0",
            "target_value (the load one instance carries)",
        ),
        ("scheduling_buffer_time", "at most 1h"),
        (
            "max_capacity_buffer",
            "only applies with max_capacity_breach_behavior",
        ),
        ("period", "unknown key `period`"),
    ] {
        let line = lines(needle);
        assert!(
            got.iter()
                .any(|g| g.starts_with(&format!("{line}:")) && g.contains(msg)),
            "{msg} at line {line}: {got:#?}"
        );
    }
    assert_eq!(got.len(), 5, "{got:#?}");
}
