//! `MixedInstancesPolicy` of `CreateAutoScalingGroup`/`UpdateAutoScalingGroup`: a launch
//! template with instance type overrides, and the On-Demand/Spot split
//! (`InstancesDistribution`). It maps onto the group's purchase options, which the control
//! core already runs (`instances_distribution`: each launch toward capacity is On-Demand or
//! Spot by base and percentage). A group here runs one instance type, so the first override
//! (AWS's highest priority) is the type every instance gets; the others are kept and shown.

use crate::model::{GroupRes, MixedRes};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};

/// AWS's Spot allocation strategies (the config's spelling is the same).
const SPOT_STRATEGIES: [&str; 4] = [
    "lowest-price",
    "capacity-optimized",
    "capacity-optimized-prioritized",
    "price-capacity-optimized",
];

/// AWS's On-Demand allocation strategies.
const ON_DEMAND_STRATEGIES: [&str; 2] = ["prioritized", "lowest-price"];

/// AWS's refusal of a request naming no way to launch (or two).
pub(crate) fn one_launch_source() -> AwsError {
    AwsError::validation(
        "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, \
         InstanceId or MixedInstancesPolicy parameter.",
    )
}

/// AWS's defaults: everything On-Demand, `prioritized`, Spot `lowest-price` over 2 pools.
fn defaults() -> MixedRes {
    MixedRes {
        instance_types: Vec::new(),
        on_demand_allocation_strategy: "prioritized".into(),
        on_demand_base_capacity: 0,
        on_demand_percentage_above_base_capacity: 100,
        spot_allocation_strategy: "lowest-price".into(),
        spot_instance_pools: Some(2),
        spot_max_price: None,
    }
}

/// The parameters of `MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification`.
pub(crate) fn template_spec(p: &Params) -> Params {
    p.sub("MixedInstancesPolicy")
        .sub("LaunchTemplate")
        .sub("LaunchTemplateSpecification")
}

/// `MixedInstancesPolicy.*` applied over `current` (an update changes only what it names);
/// `None` when the request has none.
pub(crate) fn parse(p: &Params, current: Option<&MixedRes>) -> AwsResult<Option<MixedRes>> {
    if !p.has("MixedInstancesPolicy") {
        return Ok(None);
    }
    let m = p.sub("MixedInstancesPolicy");
    let mut out = current.cloned().unwrap_or_else(defaults);
    if let Some(entries) = m.sub("LaunchTemplate").list_entries("Overrides", true)? {
        out.instance_types = overrides(entries)?;
    }
    distribution(&m.sub("InstancesDistribution"), &mut out)?;
    Ok(Some(out))
}

fn overrides(entries: Vec<Params>) -> AwsResult<Vec<String>> {
    if entries.len() > 40 {
        return Err(AwsError::validation(
            "The number of overrides must be at most 40",
        ));
    }
    let mut types: Vec<String> = Vec::new();
    for o in entries {
        if o.has("LaunchTemplateSpecification") || o.has("InstanceRequirements") {
            return Err(AwsError::validation(
                "Flotilla's overrides name instance types only (no per-override \
                 LaunchTemplateSpecification or InstanceRequirements)",
            ));
        }
        if let Some(w) = o.get("WeightedCapacity").filter(|w| *w != "1") {
            return Err(AwsError::validation(format!(
                "WeightedCapacity '{w}' is not supported: a group here runs one instance type, \
                 one unit each"
            )));
        }
        let t = o.required("InstanceType")?;
        if t.is_empty() || t.len() > 255 {
            return Err(AwsError::validation(format!(
                "Invalid instance type '{t}' in Overrides"
            )));
        }
        if types.iter().any(|x| x == t) {
            return Err(AwsError::validation(format!(
                "Duplicate instance type '{t}' in Overrides"
            )));
        }
        types.push(t.to_string());
    }
    Ok(types)
}

fn distribution(d: &Params, out: &mut MixedRes) -> AwsResult<()> {
    if let Some(s) = d.get("OnDemandAllocationStrategy") {
        if !ON_DEMAND_STRATEGIES.contains(&s) {
            return Err(AwsError::validation(format!(
                "Invalid On-Demand allocation strategy '{s}' ({})",
                ON_DEMAND_STRATEGIES.join(", ")
            )));
        }
        out.on_demand_allocation_strategy = s.to_string();
    }
    if let Some(n) = d.u32("OnDemandBaseCapacity", 0, 1000)? {
        out.on_demand_base_capacity = n;
    }
    if let Some(n) = d.u32("OnDemandPercentageAboveBaseCapacity", 0, 100)? {
        out.on_demand_percentage_above_base_capacity = n;
    }
    if let Some(s) = d.get("SpotAllocationStrategy") {
        if !SPOT_STRATEGIES.contains(&s) {
            return Err(AwsError::validation(format!(
                "Invalid Spot allocation strategy '{s}' ({})",
                SPOT_STRATEGIES.join(", ")
            )));
        }
        out.spot_allocation_strategy = s.to_string();
        if s != "lowest-price" {
            out.spot_instance_pools = None;
        }
    }
    if let Some(n) = d.u32("SpotInstancePools", 1, 20)? {
        if out.spot_allocation_strategy != "lowest-price" {
            return Err(AwsError::validation(
                "SpotInstancePools is only valid with the lowest-price Spot allocation strategy",
            ));
        }
        out.spot_instance_pools = Some(n);
    }
    if let Some(price) = d.get("SpotMaxPrice") {
        let ok = price.is_empty() || price.parse::<f64>().is_ok_and(|x| x > 0.0);
        if !ok {
            return Err(AwsError::validation(format!(
                "SpotMaxPrice '{price}' must be a price in dollars per hour"
            )));
        }
        out.spot_max_price = Some(price.to_string()).filter(|p| !p.is_empty());
    }
    Ok(())
}

/// Overrides' instance types replace an API template's; a template of the config file keeps
/// the file's `instance_type` (the file is read-only through the API).
pub(crate) fn types_need_api_template(m: Option<&MixedRes>, file_template: bool) -> AwsResult<()> {
    if file_template && m.is_some_and(|m| !m.instance_types.is_empty()) {
        return Err(AwsError::validation(
            "Overrides need a launch template created through the API: a config file \
             template's instance type is the file's",
        ));
    }
    Ok(())
}

/// A warm pool and a mixed instances policy exclude each other (AWS; the config too).
pub(crate) fn no_warm_pool_with_mixed(g: &GroupRes) -> AwsResult<()> {
    if g.mixed.is_some() && g.warm_pool.is_some() {
        return Err(AwsError::validation(
            "You can't add a warm pool to an Auto Scaling group that has a mixed instances \
             policy.",
        ));
    }
    Ok(())
}

/// The group's `MixedInstancesPolicy` as DescribeAutoScalingGroups shows it.
pub(crate) fn write(x: &mut Xml, g: &GroupRes, m: &MixedRes) {
    x.node("MixedInstancesPolicy", |x| {
        x.node("LaunchTemplate", |x| {
            x.node("LaunchTemplateSpecification", |x| {
                x.leaf("LaunchTemplateId", &g.lt_id)
                    .leaf("LaunchTemplateName", &g.lt_name)
                    .leaf("Version", &g.lt_version);
            })
            .list("Overrides", "member", &m.instance_types, |x, t| {
                x.leaf("InstanceType", t);
            });
        })
        .node("InstancesDistribution", |x| {
            x.leaf(
                "OnDemandAllocationStrategy",
                &m.on_demand_allocation_strategy,
            )
            .leaf(
                "OnDemandBaseCapacity",
                m.on_demand_base_capacity.to_string(),
            )
            .leaf(
                "OnDemandPercentageAboveBaseCapacity",
                m.on_demand_percentage_above_base_capacity.to_string(),
            )
            .leaf("SpotAllocationStrategy", &m.spot_allocation_strategy)
            .opt(
                "SpotInstancePools",
                m.spot_instance_pools.map(|n| n.to_string()),
            )
            .opt("SpotMaxPrice", m.spot_max_price.as_ref());
        });
    });
}
