//! Auto Scaling groups and their instances: create (launch template, zones or subnets,
//! target groups, bounds), describe with live instances, update, set desired capacity, delete
//! (ForceDelete drains and stops the instances), terminate, health and protection.

use std::collections::BTreeMap;

use crate::call::{now_ms, Call};
use crate::model::overlay::target_group_name;
use crate::model::{GroupRes, Tag};
use crate::protocol::{AwsError, AwsResult, Params};
use crate::views;

use super::{api_group, existing, mixed, no_group};

const TERMINATION_POLICIES: [&str; 7] = [
    "Default",
    "OldestInstance",
    "NewestInstance",
    "OldestLaunchTemplate",
    "OldestLaunchConfiguration",
    "ClosestToNextInstanceHour",
    "AllocationStrategy",
];

fn bad_template(why: String) -> AwsError {
    AwsError::validation(format!(
        "You must use a valid fully-formed launch template. {why}"
    ))
}

/// A launch template specification (`LaunchTemplate.*`, or a mixed instances policy's)
/// resolved: (id, name, version spec, from the file).
fn launch_template(call: &Call<'_>, lt: &Params) -> AwsResult<(String, String, String, bool)> {
    let all = views::launch_templates(call);
    let found = match (lt.get("LaunchTemplateId"), lt.get("LaunchTemplateName")) {
        (Some(_), Some(_)) => {
            return Err(bad_template(
                "Specify either a launch template ID or a name, not both".into(),
            ))
        }
        (Some(id), None) => all.into_iter().find(|(l, _)| l.id == id).ok_or_else(|| {
            bad_template(format!(
                "The specified launch template, with template ID {id}, does not exist."
            ))
        })?,
        (None, Some(name)) => all
            .into_iter()
            .find(|(l, _)| l.name == name)
            .ok_or_else(|| {
                bad_template(format!(
                    "The specified launch template, with template name {name}, does not exist."
                ))
            })?,
        (None, None) => {
            return Err(bad_template(
                "A launch template ID or name is required".into(),
            ))
        }
    };
    let (lt_res, file) = found;
    let version = lt.get("Version").unwrap_or("$Default").to_string();
    let number = match version.as_str() {
        "$Latest" => lt_res.latest_version,
        "$Default" => lt_res.default_version,
        n => n
            .parse()
            .map_err(|_| bad_template(format!("Version '{n}' is not valid")))?,
    };
    let v = lt_res.versions.get(&number).ok_or_else(|| {
        bad_template(format!(
            "The specified launch template version {number} of {} does not exist.",
            lt_res.name
        ))
    })?;
    if !file {
        let image = v.data.image_id.clone().unwrap_or_default();
        if !call.images().contains_key(&image) {
            return Err(bad_template(format!(
                "The image id '[{image}]' does not exist"
            )));
        }
    }
    if file && version != "$Default" && version != "$Latest" && number != 1 {
        return Err(bad_template(
            "A config file template has one version".into(),
        ));
    }
    Ok((lt_res.id, lt_res.name, version, file))
}

/// Cluster zones from `AvailabilityZones` and/or `VPCZoneIdentifier`.
fn zones(
    call: &Call<'_>,
    p: &Params,
    required: bool,
) -> AwsResult<Option<(Vec<String>, Option<String>)>> {
    let mut zones = Vec::new();
    for z in p.strings("AvailabilityZones", true)?.unwrap_or_default() {
        let c = call
            .zones
            .cluster(&z)
            .ok_or_else(|| AwsError::validation(format!("Invalid Availability Zone: [{z}]")))?;
        zones.push(c.to_string());
    }
    let vpc = p.get("VPCZoneIdentifier").filter(|v| !v.is_empty());
    if let Some(list) = vpc {
        for s in list.split(',').map(str::trim) {
            let z = call
                .file
                .cluster
                .zones
                .iter()
                .find(|z| call.ids.subnet_id(z) == s)
                .ok_or_else(|| {
                    AwsError::validation(format!("The subnet ID '{s}' does not exist"))
                })?;
            zones.push(z.clone());
        }
    }
    zones.sort_by_key(|z| call.file.cluster.zones.iter().position(|c| c == z));
    zones.dedup();
    if zones.is_empty() {
        if required {
            return Err(AwsError::validation(
                "At least one Availability Zone or VPC Subnet is required.",
            ));
        }
        return Ok(None);
    }
    Ok(Some((zones, vpc.map(str::to_string))))
}

fn bounds(min: u32, max: u32, desired: u32) -> AwsResult<()> {
    if min > max {
        return Err(AwsError::validation(format!(
            "Max bound, {max}, must be greater than or equal to min bound, {min}"
        )));
    }
    if desired < min || desired > max {
        return Err(AwsError::validation(format!(
            "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
        )));
    }
    Ok(())
}

fn settings(p: &Params, g: &mut GroupRes) -> AwsResult<()> {
    if let Some(t) = p.get("HealthCheckType") {
        if !matches!(t, "EC2" | "ELB") {
            return Err(AwsError::validation(format!(
                "Health check type '{t}' is not supported by Flotilla (EC2, ELB)"
            )));
        }
        g.health_check_type = t.to_string();
    }
    if let Some(s) = p.u32("HealthCheckGracePeriod", 0, 86_400 * 7)? {
        g.health_check_grace_period = s;
    }
    if let Some(s) = p.u32("DefaultCooldown", 0, 86_400 * 7)? {
        g.default_cooldown = s;
    }
    if let Some(w) = p.int("DefaultInstanceWarmup", -1, 3600)? {
        g.default_instance_warmup = u32::try_from(w).ok();
    }
    if let Some(b) = p.boolean("NewInstancesProtectedFromScaleIn")? {
        g.new_instances_protected = b;
    }
    if let Some(tp) = p.strings("TerminationPolicies", true)? {
        if let Some(bad) = tp
            .iter()
            .find(|t| !TERMINATION_POLICIES.contains(&t.as_str()))
        {
            return Err(AwsError::validation(format!(
                "Termination policy '{bad}' is not valid ({})",
                TERMINATION_POLICIES.join(", ")
            )));
        }
        g.termination_policies = tp;
    }
    if let Some(b) = p.boolean("CapacityRebalance")? {
        g.capacity_rebalance = b;
    }
    if p.has("LaunchConfigurationName") || p.has("InstanceId") {
        return Err(AwsError::validation(
            "Flotilla's groups launch from launch templates only (no LaunchConfigurationName \
             or InstanceId)",
        ));
    }
    Ok(())
}

/// `Tags.member.N` of a group.
fn tags(p: &Params, group: &str) -> AwsResult<Vec<Tag>> {
    let mut out: Vec<Tag> = Vec::new();
    for t in p.list_entries("Tags", true)?.unwrap_or_default() {
        let key = t.required("Key")?.to_string();
        if let Some(r) = t.get("ResourceId") {
            if r != group {
                return Err(AwsError::validation(format!(
                    "Tag ResourceId '{r}' is not {group}"
                )));
            }
        }
        out.retain(|x| x.key != key);
        out.push(Tag {
            key,
            value: t.get("Value").unwrap_or("").to_string(),
            propagate_at_launch: t.boolean("PropagateAtLaunch")?.unwrap_or(false),
        });
    }
    Ok(out)
}

pub(crate) fn create(call: &mut Call<'_>) -> AwsResult<()> {
    let p = call.p;
    let name = p.required("AutoScalingGroupName")?.to_string();
    if name.is_empty() || name.len() > 255 || name.contains(':') {
        return Err(AwsError::validation(format!(
            "AutoScalingGroupName '{name}' must be 1-255 characters without ':'"
        )));
    }
    let min = p
        .u32("MinSize", 0, 1000)?
        .ok_or_else(|| AwsError::missing("MinSize"))?;
    let max = p
        .u32("MaxSize", 0, 1000)?
        .ok_or_else(|| AwsError::missing("MaxSize"))?;
    let mixed = mixed::parse(p, None)?;
    let spec = match (p.has("LaunchTemplate"), &mixed) {
        (true, None) => p.sub("LaunchTemplate"),
        (false, Some(_)) => mixed::template_spec(p),
        _ => return Err(mixed::one_launch_source()),
    };
    let (lt_id, lt_name, lt_version, file_lt) = launch_template(call, &spec)?;
    mixed::types_need_api_template(mixed.as_ref(), file_lt)?;
    let desired = p.u32("DesiredCapacity", 0, 1000)?.unwrap_or(min);
    bounds(min, max, desired)?;
    let Some((zones, vpc)) = zones(call, p, true)? else {
        return Err(AwsError::validation(
            "At least one Availability Zone or VPC Subnet is required.",
        ));
    };
    let mut target_groups = Vec::new();
    let known = views::target_groups(call);
    for arn in p.strings("TargetGroupARNs", true)?.unwrap_or_default() {
        let ok = known.iter().any(|(t, _)| t.arn == arn);
        let name = target_group_name(&arn).filter(|_| ok).ok_or_else(|| {
            AwsError::validation(
                "Provided Target Groups may not be valid. Please ensure they exist and try again.",
            )
        })?;
        target_groups.push(name.to_string());
    }
    if p.strings("LoadBalancerNames", true)?
        .is_some_and(|l| !l.is_empty())
    {
        return Err(AwsError::validation(
            "Classic load balancers do not exist here; use TargetGroupARNs",
        ));
    }
    if views::group(call, &name).is_some() {
        return Err(AwsError::new(
            "AlreadyExists",
            format!("AutoScalingGroup by this name already exists - A group with the name {name} already exists"),
        ));
    }
    let mut g = GroupRes {
        arn: call.ids.group_arn(&call.ids.uuid(), &name),
        name: name.clone(),
        lt_id,
        lt_name,
        lt_version,
        min_size: min,
        max_size: max,
        desired_capacity: desired,
        default_cooldown: 300,
        zones,
        vpc_zone_identifier: vpc,
        target_groups,
        health_check_type: "EC2".into(),
        health_check_grace_period: 0,
        termination_policies: vec!["Default".into()],
        new_instances_protected: false,
        default_instance_warmup: None,
        tags: tags(p, &name)?,
        policies: BTreeMap::new(),
        scheduled: BTreeMap::new(),
        hooks: BTreeMap::new(),
        warm_pool: None,
        created_ms: now_ms(),
        mixed,
        capacity_rebalance: false,
    };
    settings(p, &mut g)?;
    for h in p
        .list_entries("LifecycleHookSpecificationList", true)?
        .unwrap_or_default()
    {
        let hook = super::hooks::parse_hook(&h)?;
        g.hooks.insert(hook.name.clone(), hook);
    }
    call.reg.groups.insert(name, g);
    Ok(())
}

pub(crate) fn update(call: &mut Call<'_>) -> AwsResult<()> {
    let p = call.p;
    let name = existing(call)?;
    if p.has("LaunchTemplate") && p.has("MixedInstancesPolicy") {
        return Err(mixed::one_launch_source());
    }
    let spec = if p.has("LaunchTemplate") {
        p.sub("LaunchTemplate")
    } else {
        mixed::template_spec(p)
    };
    let lt = if spec.has("LaunchTemplateId") || spec.has("LaunchTemplateName") {
        Some(launch_template(call, &spec)?)
    } else {
        None
    };
    let zones = zones(call, p, false)?;
    let live = call.backend.group(&name);
    let lt_name = lt
        .as_ref()
        .map(|l| l.1.clone())
        .or_else(|| call.reg.groups.get(&name).map(|g| g.lt_name.clone()));
    let file_lt = lt_name.is_some_and(|n| !call.reg.launch_templates.contains_key(&n));
    let g = api_group(call, &name)?;
    if let Some((id, lt_name, version, _)) = lt {
        (g.lt_id, g.lt_name, g.lt_version) = (id, lt_name, version);
    }
    // A plain `LaunchTemplate` ends a mixed instances policy (as in AWS).
    if p.has("LaunchTemplate") {
        g.mixed = None;
    } else if let Some(m) = mixed::parse(p, g.mixed.as_ref())? {
        g.mixed = Some(m);
        mixed::types_need_api_template(g.mixed.as_ref(), file_lt)?;
    }
    mixed::no_warm_pool_with_mixed(g)?;
    let min = p.u32("MinSize", 0, 1000)?.unwrap_or(g.min_size);
    let max = p.u32("MaxSize", 0, 1000)?.unwrap_or(g.max_size);
    let current = live.map_or(g.desired_capacity, |l| l.desired);
    let desired = p.u32("DesiredCapacity", 0, 1000)?;
    if min > max {
        bounds(min, max, min)?;
    }
    if let Some(d) = desired {
        bounds(min, max, d)?;
    }
    (g.min_size, g.max_size) = (min, max);
    g.desired_capacity = desired.unwrap_or_else(|| current.clamp(min, max));
    if let Some((z, vpc)) = zones {
        g.zones = z;
        g.vpc_zone_identifier = vpc;
    }
    settings(p, g)?;
    if let Some(d) = desired {
        // Applied after the commit too, so an earlier SetDesiredCapacity cannot hide it.
        call.after_commit.push(Box::new(move |b| {
            b.set_desired_capacity(&name, d).map(|_| ())
        }));
    }
    Ok(())
}

pub(crate) fn set_desired_capacity(call: &mut Call<'_>) -> AwsResult<()> {
    let name = existing(call)?;
    let desired = call
        .p
        .u32("DesiredCapacity", 0, 1000)?
        .ok_or_else(|| AwsError::missing("DesiredCapacity"))?;
    let live = call.backend.group(&name).ok_or_else(|| no_group(&name))?;
    if desired < live.min || desired > live.max {
        let bound = if desired < live.min {
            format!("below min value {}", live.min)
        } else {
            format!("above max value {}", live.max)
        };
        return Err(AwsError::validation(format!(
            "New SetDesiredCapacity value {desired} is {bound} for the AutoScalingGroup."
        )));
    }
    call.backend
        .set_desired_capacity(&name, desired)
        .map_err(AwsError::validation)
}

pub(crate) fn delete(call: &mut Call<'_>) -> AwsResult<()> {
    let name = existing(call)?;
    let force = call.p.boolean("ForceDelete")?.unwrap_or(false);
    let live = call.backend.group(&name);
    api_group(call, &name)?;
    let running = live.as_ref().map_or(0, |l| l.instances.len());
    if !force && running > 0 {
        return Err(AwsError::new(
            "ResourceInUse",
            "You cannot delete an AutoScalingGroup while there are instances or pending Spot \
             instance request(s) still in the group.",
        ));
    }
    call.reg.groups.remove(&name);
    Ok(())
}
