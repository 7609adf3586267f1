//! A group's mixed instances policy (AWS `InstancesDistribution`): how many of its instances
//! are On-Demand and how many Spot, and what happens when Spot capacity is taken back.

use std::time::Duration;

use super::PurchaseOption;

/// EC2's Spot interruption notice: two minutes.
pub const DEFAULT_SPOT_NOTICE: Duration = Duration::from_secs(120);

/// How Spot capacity is chosen among pools (AWS `SpotAllocationStrategy`). A group here runs
/// one instance type, so every strategy picks the same pool; the value is kept and shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SpotAllocationStrategy {
    /// Lowest price among the pools least likely to be interrupted (AWS's recommendation).
    #[default]
    PriceCapacityOptimized,
    /// Pools least likely to be interrupted.
    CapacityOptimized,
    /// Like `CapacityOptimized`, honouring the instance types' priority.
    CapacityOptimizedPrioritized,
    /// Cheapest pools.
    LowestPrice,
}

impl SpotAllocationStrategy {
    /// Every strategy with its config spelling.
    pub const ALL: [(&'static str, SpotAllocationStrategy); 4] = [
        (
            "price-capacity-optimized",
            SpotAllocationStrategy::PriceCapacityOptimized,
        ),
        (
            "capacity-optimized",
            SpotAllocationStrategy::CapacityOptimized,
        ),
        (
            "capacity-optimized-prioritized",
            SpotAllocationStrategy::CapacityOptimizedPrioritized,
        ),
        ("lowest-price", SpotAllocationStrategy::LowestPrice),
    ];

    /// The config spelling, e.g. `price-capacity-optimized`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("price-capacity-optimized", |(n, _)| n)
    }
}

/// `[auto_scaling_groups.NAME.instances_distribution]`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstancesDistribution {
    /// The first instances, always On-Demand. Default 0.
    pub on_demand_base_capacity: u32,
    /// Share (0..=100) of the instances above the base that are On-Demand, rounded up in
    /// favour of On-Demand; the rest are Spot. Default 100.
    pub on_demand_percentage_above_base_capacity: u32,
    /// How Spot pools are chosen.
    pub spot_allocation_strategy: SpotAllocationStrategy,
    /// On a Spot interruption notice, launch the replacement at once and take the interrupted
    /// instance out once the replacement is healthy (AWS Capacity Rebalancing). Default false:
    /// the replacement launches when the interrupted instance leaves.
    pub capacity_rebalance: bool,
    /// How long before reclaiming a Spot instance its notice comes. Default 2 minutes.
    pub spot_interruption_notice: Duration,
    /// A drill: expected Spot interruptions per Spot instance per hour, drawn at random
    /// (seeded). Default 0.
    pub spot_interruption_rate: f64,
}

impl Default for InstancesDistribution {
    fn default() -> Self {
        InstancesDistribution {
            on_demand_base_capacity: 0,
            on_demand_percentage_above_base_capacity: 100,
            spot_allocation_strategy: SpotAllocationStrategy::default(),
            capacity_rebalance: false,
            spot_interruption_notice: DEFAULT_SPOT_NOTICE,
            spot_interruption_rate: 0.0,
        }
    }
}

impl InstancesDistribution {
    /// How many of `total` instances are On-Demand: the base, then the percentage of the rest
    /// rounded up (AWS: base 10 and 50 % of 20 → 15; base 0 and 60 % of 10 → 6).
    pub fn on_demand_of(&self, total: u32) -> u32 {
        let base = self.on_demand_base_capacity.min(total);
        let above = u64::from(total - base);
        let pct = u64::from(self.on_demand_percentage_above_base_capacity.min(100));
        let od_above = (above * pct).div_ceil(100);
        base + u32::try_from(od_above).unwrap_or(u32::MAX)
    }

    /// The option of the next launch, given the live instances' options: On-Demand while
    /// there are fewer than the distribution wants of one more instance, else Spot.
    pub fn next_launch(&self, on_demand: u32, spot: u32) -> PurchaseOption {
        let total = on_demand.saturating_add(spot).saturating_add(1);
        if on_demand < self.on_demand_of(total) {
            PurchaseOption::OnDemand
        } else {
            PurchaseOption::Spot
        }
    }

    /// The option scale-in should take next, given the live instances' options: the one
    /// above what the distribution wants of one instance fewer; `None` when both fit.
    pub fn next_scale_in(&self, on_demand: u32, spot: u32) -> Option<PurchaseOption> {
        let total = (on_demand + spot).checked_sub(1)?;
        let want_od = self.on_demand_of(total);
        if spot > total - want_od {
            Some(PurchaseOption::Spot)
        } else if on_demand > want_od {
            Some(PurchaseOption::OnDemand)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(base: u32, pct: u32) -> InstancesDistribution {
        InstancesDistribution {
            on_demand_base_capacity: base,
            on_demand_percentage_above_base_capacity: pct,
            ..InstancesDistribution::default()
        }
    }

    #[test]
    fn aws_examples_round_up_in_favour_of_on_demand() {
        assert_eq!(dist(10, 50).on_demand_of(20), 15);
        assert_eq!(dist(0, 60).on_demand_of(10), 6);
        assert_eq!(dist(0, 50).on_demand_of(3), 2);
        assert_eq!(dist(2, 0).on_demand_of(1), 1);
        assert_eq!(dist(2, 0).on_demand_of(5), 2);
        assert_eq!(InstancesDistribution::default().on_demand_of(7), 7);
    }

    #[test]
    fn launching_one_at_a_time_reaches_the_split() {
        let d = dist(1, 50);
        let (mut od, mut spot) = (0, 0);
        for _ in 0..9 {
            match d.next_launch(od, spot) {
                PurchaseOption::OnDemand => od += 1,
                PurchaseOption::Spot => spot += 1,
            }
        }
        // base 1 + 50 % of 8 = 5 On-Demand, 4 Spot.
        assert_eq!((od, spot), (5, 4));
        // Scale-in keeps the split: 8 → base 1 + ceil(3.5) = 5 On-Demand, so a Spot goes.
        assert_eq!(d.next_scale_in(5, 4), Some(PurchaseOption::Spot));
        assert_eq!(d.next_scale_in(6, 3), Some(PurchaseOption::OnDemand));
        assert_eq!(d.next_scale_in(0, 0), None);
    }
}
