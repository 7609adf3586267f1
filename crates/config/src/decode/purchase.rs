//! `[pricing]` and `[auto_scaling_groups.NAME.instances_distribution]`: what instances cost
//! and how a group buys them.

use std::time::Duration;

use flotilla_control::pricing::{
    shipped_prices, InstancePrices, InstancesDistribution, PricingSpec, ReservedTerm,
    SpotAllocationStrategy,
};

use super::{named, Ctx, Span, Val};

/// Longest Spot interruption notice accepted (the drill is for minutes, not days).
const MAX_NOTICE: Duration = Duration::from_secs(3600);

pub(crate) fn decode_pricing(ctx: &mut Ctx, v: &Val<'_>) -> PricingSpec {
    let mut spec = PricingSpec::default();
    let keys = ["instance_types", "reserved", "reserved_term"];
    let Some(t) = ctx.table(v, "pricing".into(), &keys) else {
        return spec;
    };
    if let Some(types) = t.get("instance_types") {
        for (name, _, body) in named(ctx, types, "instance types") {
            let path = format!("{}.{}", t.child("instance_types"), super::quote_key(&name));
            if let Some(p) = decode_prices(ctx, body, path, spec.instance_types.get(&name)) {
                spec.instance_types.insert(name, p);
            }
        }
    }
    if let Some(r) = t.get("reserved") {
        for (name, span, count) in named(ctx, r, "reserved instance counts") {
            if let Some(n) = ctx.u32(count, "a reserved instance count") {
                ctx.priced_types.push((name.clone(), span));
                spec.reserved.insert(name, n);
            }
        }
    }
    let terms = [
        ("1y", ReservedTerm::OneYear),
        ("3y", ReservedTerm::ThreeYears),
    ];
    if let Some(term) = t.opt(ctx, "reserved_term", |c, v| {
        c.choice(v, "reserved_term", &terms)
    }) {
        spec.reserved_term = term;
    }
    spec
}

/// One type's prices; `on_demand` is required for a type not in the shipped table, the
/// other rates default to the shipped ratios of it.
fn decode_prices(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
    shipped: Option<&InstancePrices>,
) -> Option<InstancePrices> {
    let keys = ["on_demand", "reserved_1y", "reserved_3y", "spot"];
    let t = ctx.table(v, path, &keys)?;
    let price = |ctx: &mut Ctx, v: &Val<'_>| {
        let x = ctx.number(v)?;
        if !(x.is_finite() && x >= 0.0) {
            ctx.err(
                v.span(),
                format!("a price must be 0 or more dollars per hour, found {x}"),
            );
            return None;
        }
        Some(x)
    };
    let on_demand = match shipped {
        Some(s) => t.opt(ctx, "on_demand", price).unwrap_or(s.on_demand),
        None => t.req(ctx, "on_demand", price)?,
    };
    let derived = scaled(on_demand);
    let base = match shipped {
        Some(s) if t.get("on_demand").is_none() => *s,
        _ => derived,
    };
    Some(InstancePrices {
        on_demand,
        reserved_1y: t.opt(ctx, "reserved_1y", price).unwrap_or(base.reserved_1y),
        reserved_3y: t.opt(ctx, "reserved_3y", price).unwrap_or(base.reserved_3y),
        spot: t.opt(ctx, "spot", price).unwrap_or(base.spot),
    })
}

/// The other rates of an On-Demand price, by the shipped table's ratios.
fn scaled(on_demand: f64) -> InstancePrices {
    let reference = shipped_prices()
        .remove("t3.micro")
        .unwrap_or(InstancePrices {
            on_demand: 1.0,
            reserved_1y: 0.62,
            reserved_3y: 0.43,
            spot: 0.32,
        });
    let ratio = |x: f64| on_demand * x / reference.on_demand;
    InstancePrices {
        on_demand,
        reserved_1y: ratio(reference.reserved_1y),
        reserved_3y: ratio(reference.reserved_3y),
        spot: ratio(reference.spot),
    }
}

pub(crate) fn decode_distribution(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
) -> Option<InstancesDistribution> {
    let keys = [
        "on_demand_base_capacity",
        "on_demand_percentage_above_base_capacity",
        "spot_allocation_strategy",
        "capacity_rebalance",
        "spot_interruption_notice",
        "spot_interruption_rate",
    ];
    let t = ctx.table(v, path, &keys)?;
    let d = InstancesDistribution::default();
    let notice = t.opt(ctx, "spot_interruption_notice", |ctx, v| {
        let n = ctx.positive_duration(v, "spot_interruption_notice")?;
        if n > MAX_NOTICE {
            ctx.err(v.span(), "spot_interruption_notice must be at most 1h");
            return None;
        }
        Some(n)
    });
    let rate = t.opt(ctx, "spot_interruption_rate", |ctx, v| {
        let x = ctx.number(v)?;
        if !(x.is_finite() && (0.0..=3600.0).contains(&x)) {
            ctx.err(
                v.span(),
                format!(
                    "spot_interruption_rate is interruptions per spot instance per hour, \
                     0 to 3600; found {x}"
                ),
            );
            return None;
        }
        Some(x)
    });
    Some(InstancesDistribution {
        on_demand_base_capacity: t
            .opt(ctx, "on_demand_base_capacity", |c, v| {
                c.u32(v, "on_demand_base_capacity")
            })
            .unwrap_or(d.on_demand_base_capacity),
        on_demand_percentage_above_base_capacity: t
            .opt(ctx, "on_demand_percentage_above_base_capacity", |c, v| {
                c.int_in(v, "on_demand_percentage_above_base_capacity", 0..=100)
                    .and_then(|n| u32::try_from(n).ok())
            })
            .unwrap_or(d.on_demand_percentage_above_base_capacity),
        spot_allocation_strategy: t
            .opt(ctx, "spot_allocation_strategy", |c, v| {
                c.choice(v, "spot_allocation_strategy", &SpotAllocationStrategy::ALL)
            })
            .unwrap_or(d.spot_allocation_strategy),
        capacity_rebalance: t
            .opt(ctx, "capacity_rebalance", Ctx::boolean)
            .unwrap_or(d.capacity_rebalance),
        spot_interruption_notice: notice.unwrap_or(d.spot_interruption_notice),
        spot_interruption_rate: rate.unwrap_or(d.spot_interruption_rate),
    })
}

/// Every instance type named by a launch template or a reservation must have a price.
pub(crate) fn check_priced(ctx: &mut Ctx, pricing: &PricingSpec) {
    let named: Vec<(String, Span)> = std::mem::take(&mut ctx.priced_types);
    for (ty, span) in named {
        if !pricing.instance_types.contains_key(&ty) {
            let known = pricing.instance_types.keys().map(String::as_str);
            let hint = crate::suggest::hint(&ty, known);
            ctx.err(
                span,
                format!(
                    "instance type `{ty}` has no price{hint} (give it one in \
                     [pricing.instance_types.\"{ty}\"] with on_demand = dollars per hour)"
                ),
            );
        }
    }
}
