//! Purchase options and prices (EC2's On-Demand, Reserved and Spot): which option each launch
//! uses (a group's mixed instances policy, [`InstancesDistribution`]), which running
//! instances a reservation covers, and what each costs per hour.
//!
//! Reserved Instances are a billing discount, not a kind of instance: AWS applies a
//! reservation of N instances of a type to N running On-Demand instances of that type. Here
//! the N longest-running On-Demand instances of the type (across the cluster) are billed at
//! the reserved rate; the rest at the On-Demand rate.

mod defaults;
mod distribution;

use std::collections::BTreeMap;
use std::fmt;

use crate::id::InstanceId;
use crate::time::Time;

pub use defaults::shipped_prices;
pub use distribution::{InstancesDistribution, SpotAllocationStrategy, DEFAULT_SPOT_NOTICE};

/// How an instance was bought at launch.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum PurchaseOption {
    /// Paid by the hour, never taken back (may be billed at a reserved rate).
    #[default]
    OnDemand,
    /// Spare capacity at a discount, reclaimed with a two-minute notice.
    Spot,
}

impl PurchaseOption {
    /// `on-demand` or `spot`, as the API and the state store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseOption::OnDemand => "on-demand",
            PurchaseOption::Spot => "spot",
        }
    }

    /// The option named `s` (as [`as_str`](Self::as_str) spells it).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "on-demand" => Some(PurchaseOption::OnDemand),
            "spot" => Some(PurchaseOption::Spot),
            _ => None,
        }
    }
}

impl fmt::Display for PurchaseOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rate an instance is billed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Billing {
    /// On-Demand, not covered by a reservation.
    OnDemand,
    /// On-Demand covered by a reservation of its type.
    Reserved,
    /// Spot.
    Spot,
}

impl Billing {
    /// Every rate, in the order summaries list them.
    pub const ALL: [Billing; 3] = [Billing::Reserved, Billing::OnDemand, Billing::Spot];

    /// `on-demand`, `reserved` or `spot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Billing::OnDemand => "on-demand",
            Billing::Reserved => "reserved",
            Billing::Spot => "spot",
        }
    }
}

impl fmt::Display for Billing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance type's prices in dollars per hour.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstancePrices {
    /// On-Demand.
    pub on_demand: f64,
    /// Reserved for one year (no upfront), per hour.
    pub reserved_1y: f64,
    /// Reserved for three years (no upfront), per hour.
    pub reserved_3y: f64,
    /// The average Spot price.
    pub spot: f64,
}

/// Which reservation term's rate reserved instances are billed at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReservedTerm {
    /// One year (the default).
    #[default]
    OneYear,
    /// Three years.
    ThreeYears,
}

/// The price table and the reservations (`[pricing]`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PricingSpec {
    /// Prices by instance type: the shipped table, with the config's entries added or
    /// replacing shipped ones.
    pub instance_types: BTreeMap<String, InstancePrices>,
    /// Reserved instances owned, by type: that many running On-Demand instances of the type
    /// are billed at the reserved rate.
    pub reserved: BTreeMap<String, u32>,
    /// The term of those reservations.
    pub reserved_term: ReservedTerm,
}

impl Default for PricingSpec {
    fn default() -> Self {
        PricingSpec {
            instance_types: shipped_prices(),
            reserved: BTreeMap::new(),
            reserved_term: ReservedTerm::OneYear,
        }
    }
}

impl PricingSpec {
    /// Dollars per hour of one instance of `instance_type` billed at `billing`; `None` for a
    /// type without prices.
    pub fn hourly(&self, instance_type: &str, billing: Billing) -> Option<f64> {
        let p = self.instance_types.get(instance_type)?;
        Some(match billing {
            Billing::OnDemand => p.on_demand,
            Billing::Spot => p.spot,
            Billing::Reserved => match self.reserved_term {
                ReservedTerm::OneYear => p.reserved_1y,
                ReservedTerm::ThreeYears => p.reserved_3y,
            },
        })
    }
}

/// What billing needs of one running instance.
#[derive(Clone, Debug)]
pub struct Billable<'a> {
    /// The instance.
    pub id: &'a InstanceId,
    /// Its type.
    pub instance_type: &'a str,
    /// How it was bought.
    pub purchase_option: PurchaseOption,
    /// When it was launched: reservations cover the longest-running first.
    pub launched_at: Time,
}

/// One instance's bill.
#[derive(Clone, Debug, PartialEq)]
pub struct Bill {
    /// The rate it is billed at.
    pub billing: Billing,
    /// Dollars per hour, `None` when its type has no price.
    pub hourly: Option<f64>,
}

/// Each instance's rate and price: reservations of a type cover its longest-running
/// On-Demand instances (ties by id), the rest pay On-Demand or Spot.
pub fn bill<'a>(
    pricing: &PricingSpec,
    instances: impl IntoIterator<Item = Billable<'a>>,
) -> BTreeMap<InstanceId, Bill> {
    let mut on_demand: BTreeMap<&str, Vec<(Time, &InstanceId)>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for i in instances {
        match i.purchase_option {
            PurchaseOption::Spot => {
                let hourly = pricing.hourly(i.instance_type, Billing::Spot);
                out.insert(
                    i.id.clone(),
                    Bill {
                        billing: Billing::Spot,
                        hourly,
                    },
                );
            }
            PurchaseOption::OnDemand => on_demand
                .entry(i.instance_type)
                .or_default()
                .push((i.launched_at, i.id)),
        }
    }
    for (ty, mut ids) in on_demand {
        ids.sort();
        let covered = pricing.reserved.get(ty).copied().unwrap_or(0) as usize;
        for (k, (_, id)) in ids.into_iter().enumerate() {
            let billing = if k < covered {
                Billing::Reserved
            } else {
                Billing::OnDemand
            };
            let hourly = pricing.hourly(ty, billing);
            out.insert(id.clone(), Bill { billing, hourly });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reservations_cover_the_longest_running_on_demand_instances() {
        let mut pricing = PricingSpec::default();
        pricing.reserved.insert("t3.micro".into(), 2);
        let ids: Vec<InstanceId> = (0..5).map(|i| InstanceId::from(format!("i-{i}"))).collect();
        let at = |s| Time::ZERO + Duration::from_secs(s);
        let b = |i: usize, ty, o, s| Billable {
            id: &ids[i],
            instance_type: ty,
            purchase_option: o,
            launched_at: at(s),
        };
        use PurchaseOption::*;
        let bills = bill(
            &pricing,
            [
                b(0, "t3.micro", OnDemand, 30),
                b(1, "t3.micro", OnDemand, 10),
                b(2, "t3.micro", Spot, 0),
                b(3, "t3.micro", OnDemand, 20),
                b(4, "m5.large", OnDemand, 0),
            ],
        );
        let rate = |i: usize| bills[&ids[i]].billing;
        assert_eq!(rate(1), Billing::Reserved);
        assert_eq!(rate(3), Billing::Reserved);
        assert_eq!(rate(0), Billing::OnDemand);
        assert_eq!(rate(2), Billing::Spot);
        assert_eq!(rate(4), Billing::OnDemand, "no reservation of its type");
        let p = pricing.instance_types["t3.micro"];
        assert_eq!(bills[&ids[1]].hourly, Some(p.reserved_1y));
        assert_eq!(bills[&ids[2]].hourly, Some(p.spot));
        assert_eq!(pricing.hourly("z9.huge", Billing::OnDemand), None);
    }
}
