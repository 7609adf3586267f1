//! The shipped price table: common instance types in dollars per hour, so a config without
//! `[pricing]` still shows costs.
//!
//! On-Demand prices are AWS's us-east-1 Linux list prices (2024). The other rates are
//! derived from them with typical ratios, since they vary by type and (Spot) by the hour:
//! Reserved 1 year no upfront ≈ 62 % of On-Demand, 3 years no upfront ≈ 43 %, Spot on
//! average ≈ 32 % ("up to 72 %" and "up to 90 %" cheaper are the best cases). Override any
//! of them in `[pricing.instance_types."TYPE"]`.

use std::collections::BTreeMap;

use super::InstancePrices;

/// Reserved 1 year, no upfront, as a share of On-Demand.
const RESERVED_1Y: f64 = 0.62;
/// Reserved 3 years, no upfront, as a share of On-Demand.
const RESERVED_3Y: f64 = 0.43;
/// Average Spot price as a share of On-Demand.
const SPOT: f64 = 0.32;

/// On-Demand dollars per hour, us-east-1, Linux.
const ON_DEMAND: &[(&str, f64)] = &[
    ("t3.nano", 0.0052),
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3.xlarge", 0.1664),
    ("t3.2xlarge", 0.3328),
    ("t4g.micro", 0.0084),
    ("t4g.small", 0.0168),
    ("t4g.medium", 0.0336),
    ("m5.large", 0.096),
    ("m5.xlarge", 0.192),
    ("m5.2xlarge", 0.384),
    ("m5.4xlarge", 0.768),
    ("m6i.large", 0.096),
    ("m6i.xlarge", 0.192),
    ("m7g.large", 0.0816),
    ("c5.large", 0.085),
    ("c5.xlarge", 0.17),
    ("c5.2xlarge", 0.34),
    ("c6i.large", 0.085),
    ("c7g.large", 0.0725),
    ("r5.large", 0.126),
    ("r5.xlarge", 0.252),
    ("r6i.large", 0.126),
];

fn round(x: f64) -> f64 {
    (x * 1e5).round() / 1e5
}

/// The shipped table (see the module docs for where the numbers come from).
pub fn shipped_prices() -> BTreeMap<String, InstancePrices> {
    ON_DEMAND
        .iter()
        .map(|&(ty, od)| {
            (
                ty.to_string(),
                InstancePrices {
                    on_demand: od,
                    reserved_1y: round(od * RESERVED_1Y),
                    reserved_3y: round(od * RESERVED_3Y),
                    spot: round(od * SPOT),
                },
            )
        })
        .collect()
}
