//! The API's resources in config terms: what the control plane and data plane will run.

use std::collections::BTreeMap;
use std::path::Path;

use flotilla_aws::model::overlay::OverlayContext;
use flotilla_aws::model::{
    ActionRes, GroupRes, HealthCheckRes, LaunchTemplateRes, ListenerRes, LoadBalancerRes, LtData,
    LtVersion, MixedRes, PolicyRes, Registry, TargetGroupRes, TargetTrackingRes,
};
use flotilla_aws::Overlay;
use flotilla_config::{Action, ScalingPolicy};
use flotilla_control::pricing::SpotAllocationStrategy;

const TG_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:0:targetgroup/web/00";

fn version(n: u64, image: &str, kind: &str) -> (u64, LtVersion) {
    let data = LtData {
        image_id: Some(image.into()),
        instance_type: Some(kind.into()),
        user_data: Some("aGVsbG8=".into()),
        ..LtData::default()
    };
    let v = LtVersion {
        number: n,
        description: None,
        created_ms: 0,
        data,
    };
    (n, v)
}

fn target_group() -> TargetGroupRes {
    TargetGroupRes {
        arn: TG_ARN.into(),
        name: "web".into(),
        protocol: "HTTP".into(),
        protocol_version: "HTTP1".into(),
        port: 80,
        vpc_id: "vpc-0".into(),
        target_type: "instance".into(),
        health: HealthCheckRes {
            protocol: "HTTP".into(),
            port: "traffic-port".into(),
            path: "/health".into(),
            enabled: true,
            interval: 5,
            timeout: 2,
            healthy: 2,
            unhealthy: 2,
            matcher: "200-299".into(),
        },
        attributes: [(
            "deregistration_delay.timeout_seconds".to_string(),
            "7".to_string(),
        )]
        .into(),
        tags: Vec::new(),
        targets: Vec::new(),
        created_ms: 0,
    }
}

fn policy() -> PolicyRes {
    PolicyRes {
        name: "rps".into(),
        arn: "p".into(),
        policy_type: "TargetTrackingScaling".into(),
        adjustment_type: None,
        scaling_adjustment: None,
        cooldown: None,
        min_adjustment_magnitude: None,
        metric_aggregation_type: None,
        steps: Vec::new(),
        estimated_instance_warmup: Some(15),
        target_tracking: Some(TargetTrackingRes {
            predefined: Some("ALBRequestCountPerTarget".into()),
            resource_label: Some("app/front/00/targetgroup/web/00".into()),
            customized: None,
            dimensions: Vec::new(),
            target_value: 600.0,
            disable_scale_in: false,
        }),
        enabled: true,
    }
}

fn group() -> GroupRes {
    GroupRes {
        arn: "g".into(),
        name: "asg".into(),
        lt_id: "lt-0".into(),
        lt_name: "lt".into(),
        lt_version: "$Latest".into(),
        min_size: 1,
        max_size: 3,
        desired_capacity: 2,
        default_cooldown: 300,
        zones: vec!["az-a".into()],
        vpc_zone_identifier: None,
        target_groups: vec!["web".into()],
        health_check_type: "ELB".into(),
        health_check_grace_period: 10,
        termination_policies: vec!["OldestLaunchTemplate".into(), "Default".into()],
        new_instances_protected: false,
        default_instance_warmup: None,
        tags: Vec::new(),
        policies: [("rps".to_string(), policy())].into(),
        scheduled: BTreeMap::new(),
        hooks: BTreeMap::new(),
        warm_pool: None,
        created_ms: 0,
        mixed: None,
        capacity_rebalance: false,
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    r.launch_templates.insert(
        "lt".into(),
        LaunchTemplateRes {
            id: "lt-0".into(),
            name: "lt".into(),
            created_ms: 0,
            default_version: 1,
            latest_version: 2,
            versions: [
                version(1, "ami-aa", "t3.micro"),
                version(2, "ami-bb", "t3.large"),
            ]
            .into(),
            tags: Vec::new(),
            client_token: None,
        },
    );
    r.target_groups.insert("web".into(), target_group());
    r.load_balancers.insert(
        "front".into(),
        LoadBalancerRes {
            arn: "arn:x:loadbalancer/app/front/00".into(),
            name: "front".into(),
            kind: "application".into(),
            scheme: "internet-facing".into(),
            zones: vec!["az-a".into()],
            security_groups: Vec::new(),
            attributes: BTreeMap::new(),
            tags: Vec::new(),
            created_ms: 0,
        },
    );
    let forward = ActionRes {
        kind: "forward".into(),
        order: None,
        forward: vec![(TG_ARN.into(), 1)],
        forward_config: false,
        stickiness: None,
        redirect: None,
        fixed: None,
    };
    r.listeners.insert(
        "l".into(),
        ListenerRes {
            arn: "l".into(),
            load_balancer: "front".into(),
            protocol: "HTTP".into(),
            port: 8080,
            default_actions: vec![forward],
            tags: Vec::new(),
        },
    );
    r.groups.insert("asg".into(), group());
    r
}

fn images() -> BTreeMap<String, Vec<String>> {
    [
        ("ami-aa".to_string(), vec!["v1".to_string()]),
        ("ami-bb".to_string(), vec!["v2".to_string()]),
    ]
    .into()
}

fn build(r: &Registry, images: &BTreeMap<String, Vec<String>>) -> Result<Overlay, String> {
    let cx = OverlayContext {
        images,
        listen_ip: "127.0.0.1".parse().unwrap(),
        working_dir: Path::new("/srv"),
    };
    Overlay::build(r, &cx)
}

#[test]
fn resources_become_the_configs_own_types() {
    let o = build(&registry(), &images()).unwrap();
    let t = &o.launch_templates["lt@$Latest"];
    assert_eq!(t.command, ["v2"], "$Latest is version 2, image ami-bb");
    assert_eq!(t.instance_type, "t3.large");
    assert_eq!(
        t.user_data.as_deref(),
        Some(&b"hello"[..]),
        "UserData decoded"
    );
    let tg = &o.target_groups["web"];
    assert_eq!(tg.deregistration_delay.as_secs(), 7);
    assert_eq!(tg.health_check.path, "/health");
    let l = &o.load_balancers["front"].listeners[0];
    assert_eq!(l.bind.to_string(), "127.0.0.1:8080");
    assert!(matches!(&l.default_action,
        Action::Forward { target_groups, .. } if target_groups[0].name == "web"));
    let g = &o.auto_scaling_groups["asg"];
    assert_eq!(g.launch_template, "lt@$Latest");
    assert_eq!(g.default_instance_warmup.map(|d| d.as_secs()), Some(15));
    let ScalingPolicy::TargetTracking(tt) = &g.scaling_policies[0] else {
        panic!("a target tracking policy");
    };
    assert_eq!(tt.target_value, 10.0, "600 per minute is 10 per second");
}

#[test]
fn an_image_gone_from_the_config_and_a_name_clash_are_refused() {
    let mut only_one = images();
    only_one.remove("ami-bb");
    let e = build(&registry(), &only_one).unwrap_err();
    assert!(e.contains("ami-bb"), "{e}");
    let o = build(&registry(), &images()).unwrap();
    let file = flotilla_config::parse("[target_groups.web]\n", Path::new("f.toml")).unwrap();
    let e = o.merge_into(&file).unwrap_err();
    assert!(e.contains("target group web"), "{e}");
    let empty = flotilla_config::parse("", Path::new("f.toml")).unwrap();
    let merged = o.merge_into(&empty).unwrap();
    assert!(merged.auto_scaling_groups.contains_key("asg"));
}

#[test]
fn records_round_trip_and_unreadable_ones_are_skipped() {
    let r = registry();
    let back = Registry::from_records(&r.to_records());
    assert_eq!(back, r);
    let mut bad = r.to_records();
    bad.push(("target_group".into(), "x".into(), "{not json".into()));
    bad.push(("spaceship".into(), "y".into(), "{}".into()));
    assert_eq!(Registry::from_records(&bad), r);
}

#[test]
fn a_mixed_instances_policy_becomes_the_groups_purchase_options_and_type() {
    let mut r = registry();
    let g = r.groups.get_mut("asg").unwrap();
    g.capacity_rebalance = true;
    g.mixed = Some(MixedRes {
        instance_types: vec!["m5.large".into(), "m5a.large".into()],
        on_demand_allocation_strategy: "prioritized".into(),
        on_demand_base_capacity: 1,
        on_demand_percentage_above_base_capacity: 25,
        spot_allocation_strategy: "capacity-optimized".into(),
        spot_instance_pools: None,
        spot_max_price: None,
    });
    let o = build(&r, &images()).unwrap();
    let g = &o.auto_scaling_groups["asg"];
    let d = g.instances_distribution.expect("a distribution");
    assert_eq!(d.on_demand_base_capacity, 1);
    assert_eq!(d.on_demand_percentage_above_base_capacity, 25);
    assert_eq!(
        d.spot_allocation_strategy,
        SpotAllocationStrategy::CapacityOptimized
    );
    assert!(d.capacity_rebalance);
    // The first override is the type the group runs; the template itself is not changed.
    assert_eq!(g.launch_template, "lt@$Latest@m5.large");
    assert_eq!(
        o.launch_templates[&g.launch_template].instance_type,
        "m5.large"
    );
    assert_eq!(o.launch_templates.len(), 1);
    // Stored and read back whole; a record written before the field existed reads as None.
    assert_eq!(Registry::from_records(&r.to_records()), r);
    let old = r#"{"arn":"g","name":"old","lt_id":"lt-0","lt_name":"lt","lt_version":"1","min_size":0,"max_size":1,"desired_capacity":0,"default_cooldown":300,"zones":[],"vpc_zone_identifier":null,"target_groups":[],"health_check_type":"EC2","health_check_grace_period":0,"termination_policies":[],"new_instances_protected":false,"default_instance_warmup":null,"tags":[],"policies":{},"scheduled":{},"hooks":{},"warm_pool":null,"created_ms":0}"#;
    let back = Registry::from_records(&[("auto_scaling_group".into(), "old".into(), old.into())]);
    assert_eq!(back.groups["old"].mixed, None);
}

#[test]
fn a_group_on_a_file_template_uses_the_files_name() {
    let mut r = registry();
    r.groups.get_mut("asg").unwrap().lt_name = "file-lt".into();
    let o = build(&r, &images()).unwrap();
    assert_eq!(o.auto_scaling_groups["asg"].launch_template, "file-lt");
}
