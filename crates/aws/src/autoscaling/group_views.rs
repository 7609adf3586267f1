//! DescribeAutoScalingGroups: each group in AWS's shape with its live bounds and instances
//! (the cluster's), its launch template or mixed instances policy, tags and warm pool.

use crate::backend::InstanceLive;
use crate::call::{iso, Call};
use crate::model::GroupRes;
use crate::protocol::xml::Xml;
use crate::protocol::AwsResult;
use crate::views;

/// AWS's lifecycle state spelling of an instance in a group listing.
pub(crate) fn write_instance(
    call: &Call<'_>,
    x: &mut Xml,
    g: &GroupRes,
    i: &InstanceLive,
    with_group: bool,
) {
    x.leaf("InstanceId", &i.id)
        .leaf("InstanceType", &i.instance_type);
    if with_group {
        x.leaf("AutoScalingGroupName", &g.name);
    }
    x.leaf("AvailabilityZone", call.zones.api(&i.zone))
        .leaf("LifecycleState", &i.lifecycle)
        .leaf("HealthStatus", &i.health)
        .node("LaunchTemplate", |x| {
            x.leaf("LaunchTemplateId", &g.lt_id)
                .leaf("LaunchTemplateName", &g.lt_name)
                .leaf("Version", i.launch_template_version.to_string());
        })
        .boolean("ProtectedFromScaleIn", i.protected);
}

fn write_group(call: &Call<'_>, x: &mut Xml, g: &GroupRes) {
    let live = call.backend.group(&g.name);
    let (min, max, desired) = live
        .as_ref()
        .map_or((g.min_size, g.max_size, g.desired_capacity), |l| {
            (l.min, l.max, l.desired)
        });
    let instances: Vec<InstanceLive> = live
        .as_ref()
        .map(|l| l.instances.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.lifecycle.starts_with("Warmed"))
        .collect();
    let tg_arns: Vec<String> = g
        .target_groups
        .iter()
        .filter_map(|n| {
            views::target_groups(call)
                .into_iter()
                .find(|(t, _)| &t.name == n)
        })
        .map(|(t, _)| t.arn)
        .collect();
    x.leaf("AutoScalingGroupName", &g.name)
        .leaf("AutoScalingGroupARN", &g.arn);
    // AWS shows one of the two: a group with a mixed instances policy has no LaunchTemplate.
    match &g.mixed {
        Some(m) => super::mixed::write(x, g, m),
        None => {
            x.node("LaunchTemplate", |x| {
                x.leaf("LaunchTemplateId", &g.lt_id)
                    .leaf("LaunchTemplateName", &g.lt_name)
                    .leaf("Version", &g.lt_version);
            });
        }
    }
    x        .leaf("MinSize", min.to_string())
        .leaf("MaxSize", max.to_string())
        .leaf("DesiredCapacity", desired.to_string())
        .leaf("DefaultCooldown", g.default_cooldown.to_string())
        .strings("AvailabilityZones", "member", g.zones.iter().map(|z| call.zones.api(z)))
        .strings("LoadBalancerNames", "member", Vec::<String>::new())
        .strings("TargetGroupARNs", "member", &tg_arns)
        .leaf("HealthCheckType", &g.health_check_type)
        .leaf("HealthCheckGracePeriod", g.health_check_grace_period.to_string())
        .list("Instances", "member", &instances, |x, i| write_instance(call, x, g, i, false))
        .leaf("CreatedTime", iso(g.created_ms))
        .list(
            "SuspendedProcesses",
            "member",
            live.as_ref().map(|l| l.suspended.clone()).unwrap_or_default(),
            |x, p| {
                x.leaf("ProcessName", p).leaf("SuspensionReason", "User suspended at the API or CLI");
            },
        )
        .leaf(
            "VPCZoneIdentifier",
            g.vpc_zone_identifier.clone().unwrap_or_else(|| {
                g.zones.iter().map(|z| call.ids.subnet_id(z)).collect::<Vec<_>>().join(",")
            }),
        )
        .list("EnabledMetrics", "member", Vec::<()>::new(), |_, _| {})
        .list("Tags", "member", &g.tags, |x, t| {
            x.leaf("ResourceId", &g.name)
                .leaf("ResourceType", "auto-scaling-group")
                .leaf("Key", &t.key)
                .leaf("Value", &t.value)
                .boolean("PropagateAtLaunch", t.propagate_at_launch);
        })
        .strings("TerminationPolicies", "member", &g.termination_policies)
        .boolean("NewInstancesProtectedFromScaleIn", g.new_instances_protected)
        .boolean("CapacityRebalance", g.capacity_rebalance)
        .leaf(
            "ServiceLinkedRoleARN",
            format!(
                "arn:aws:iam::{}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
                call.ids.account
            ),
        );
    if let Some(w) = g.default_instance_warmup {
        x.leaf("DefaultInstanceWarmup", w.to_string());
    }
    if let Some(w) = &g.warm_pool {
        x.node("WarmPoolConfiguration", |x| {
            super::hooks::write_warm_pool_config(x, w);
        });
        let pooled = live.as_ref().map_or(0, |l| {
            l.instances
                .iter()
                .filter(|i| i.lifecycle.starts_with("Warmed"))
                .count()
        });
        x.leaf("WarmPoolSize", pooled.to_string());
    }
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let names = p
        .strings("AutoScalingGroupNames", true)?
        .unwrap_or_default();
    let mut groups: Vec<GroupRes> = views::groups(call)
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| names.is_empty() || names.contains(&g.name))
        .collect();
    for f in p.list_entries("Filters", true)?.unwrap_or_default() {
        let name = f.required("Name")?.to_string();
        let values = f.strings("Values", true)?.unwrap_or_default();
        groups.retain(|g| match name.as_str() {
            "tag-key" => g.tags.iter().any(|t| values.contains(&t.key)),
            "tag-value" => g.tags.iter().any(|t| values.contains(&t.value)),
            n if n.starts_with("tag:") => g
                .tags
                .iter()
                .any(|t| t.key == n[4..] && values.contains(&t.value)),
            _ => true,
        });
    }
    let (page, next) = super::page(call, groups, 100)?;
    let mut x = Xml::new();
    x.list("AutoScalingGroups", "member", &page, |x, g| {
        write_group(call, x, g)
    });
    x.opt("NextToken", next);
    Ok(x.finish())
}
