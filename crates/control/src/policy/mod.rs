//! Scaling policies (AWS §6): target tracking, step and simple scaling, predictive scaling,
//! and the rule that combines what several policies want into one desired capacity.
//!
//! Each policy is evaluated by the [`ScalingController`](crate::ScalingController) with the
//! metric value it watches and answers with an optional [`Proposal`]: a new desired capacity and
//! the cause in words. The policies never touch the group themselves.

pub mod predictive;
mod simple;
mod step;
mod target_tracking;

pub use predictive::{PredictivePolicy, PredictiveSpec};
pub use simple::{SimplePolicy, SimpleSpec};
pub use step::{StepAdjustment, StepPolicy, StepSpec};
pub use target_tracking::{TargetTrackingPolicy, TargetTrackingSpec};

/// One dynamic scaling policy of a group (AWS `PutScalingPolicy`), as the config file and the
/// API describe it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ScalingPolicy {
    /// Keep a metric near a target value.
    TargetTracking(TargetTrackingSpec),
    /// Adjust by an amount chosen from the size of the alarm breach.
    Step(StepSpec),
    /// Adjust by a fixed amount, then wait for the cooldown.
    Simple(SimpleSpec),
    /// Forecast the load from its history and scale ahead of it.
    Predictive(PredictiveSpec),
}

impl ScalingPolicy {
    /// The policy's name, unique within its group.
    pub fn name(&self) -> &str {
        match self {
            ScalingPolicy::TargetTracking(s) => &s.name,
            ScalingPolicy::Step(s) => &s.name,
            ScalingPolicy::Simple(s) => &s.name,
            ScalingPolicy::Predictive(s) => &s.name,
        }
    }

    /// `target_tracking`, `step`, `simple` or `predictive`, as the config's `type` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            ScalingPolicy::TargetTracking(_) => "target_tracking",
            ScalingPolicy::Step(_) => "step",
            ScalingPolicy::Simple(_) => "simple",
            ScalingPolicy::Predictive(_) => "predictive",
        }
    }
}

/// How a step or simple adjustment changes the capacity (AWS §6.4).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum AdjustmentType {
    /// Add (or, negative, remove) this many instances.
    #[default]
    ChangeInCapacity,
    /// Set the capacity to this value.
    ExactCapacity,
    /// Change by this percentage of the current capacity.
    PercentChangeInCapacity,
}

/// A policy's wish: the desired capacity it wants and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    /// The new desired capacity (before clamping to min/max).
    pub capacity: u32,
    /// Why, in words, e.g. "policy keep-rps: request_rate_per_target 212.4 > target 100 for
    /// 2 periods".
    pub cause: String,
    /// Whether it came from a target tracking policy (they combine by AWS's "out if any, in only
    /// if all" rule).
    pub target_tracking: bool,
}

/// The capacity after applying an adjustment to `current` (AWS §6.4), never negative.
///
/// Percent changes round as AWS does: a change above 1 rounds down (12.7 → 12), between 0 and 1
/// becomes 1, between −1 and 0 becomes −1, below −1 rounds toward zero (−6.67 → −6); then
/// `min_adjustment_magnitude` raises a smaller non-zero change to that size.
pub fn apply_adjustment(
    current: u32,
    kind: AdjustmentType,
    adjustment: i64,
    min_adjustment_magnitude: Option<u32>,
) -> u32 {
    let cur = i64::from(current);
    let new = match kind {
        AdjustmentType::ChangeInCapacity => cur.saturating_add(adjustment),
        AdjustmentType::ExactCapacity => adjustment,
        AdjustmentType::PercentChangeInCapacity => {
            let x = cur as f64 * adjustment as f64 / 100.0;
            let mut change = if x >= 1.0 {
                x.floor()
            } else if x > 0.0 {
                1.0
            } else if x > -1.0 && x < 0.0 {
                -1.0
            } else {
                x.ceil()
            } as i64;
            if let Some(min) = min_adjustment_magnitude {
                let min = i64::from(min);
                if change != 0 && change.abs() < min {
                    change = change.signum() * min;
                }
            }
            cur.saturating_add(change)
        }
    };
    u32::try_from(new.max(0)).unwrap_or(u32::MAX)
}

/// Combines the policies' proposals into the one the group executes (AWS §6.1), or `None`.
///
/// Scale out if any proposal is above `desired` (the largest wins). Otherwise scale in, to the
/// largest of the scale-in proposals, but a target tracking scale-in only counts when every
/// target tracking policy that may scale in (`tt_scale_in_voters`) proposed one.
pub fn combine(
    desired: u32,
    proposals: &[Proposal],
    tt_scale_in_voters: usize,
) -> Option<Proposal> {
    let out = proposals
        .iter()
        .filter(|p| p.capacity > desired)
        .max_by_key(|p| p.capacity);
    if let Some(p) = out {
        return Some(p.clone());
    }
    let tt_in = proposals
        .iter()
        .filter(|p| p.target_tracking && p.capacity < desired)
        .count();
    let tt_agree = tt_scale_in_voters > 0 && tt_in == tt_scale_in_voters;
    proposals
        .iter()
        .filter(|p| p.capacity < desired && (!p.target_tracking || tt_agree))
        .max_by_key(|p| p.capacity)
        .cloned()
}

/// `value` for causes: at most one decimal, no trailing `.0` noise.
pub(crate) fn fmt_value(v: f64) -> String {
    if v.abs() < 1.0 && v != 0.0 {
        // Small values (response times in seconds, 0.05) keep three decimals, trimmed.
        let s = format!("{:.3}", (v * 1000.0).round() / 1000.0);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.to_string()
        };
    }
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AdjustmentType::*;

    #[test]
    fn values_in_causes_keep_what_matters() {
        assert_eq!(fmt_value(212.43), "212.4");
        assert_eq!(fmt_value(100.0), "100");
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(0.05), "0.05");
        assert_eq!(fmt_value(0.2544), "0.254");
        assert_eq!(fmt_value(0.0004), "0");
        assert_eq!(fmt_value(-0.5), "-0.5");
    }

    #[test]
    fn percent_rounding_as_aws() {
        // 12.7 → 12
        assert_eq!(
            apply_adjustment(127, PercentChangeInCapacity, 10, None),
            139
        );
        // 0 < x < 1 → 1
        assert_eq!(apply_adjustment(4, PercentChangeInCapacity, 10, None), 5);
        // -1 < x < 0 → -1
        assert_eq!(apply_adjustment(4, PercentChangeInCapacity, -10, None), 3);
        // -6.67 → -6
        assert_eq!(apply_adjustment(20, PercentChangeInCapacity, -33, None), 14);
        // min adjustment magnitude: 25 % of 4 = 1 but min 2 ⇒ +2
        assert_eq!(apply_adjustment(4, PercentChangeInCapacity, 25, Some(2)), 6);
        assert_eq!(apply_adjustment(3, ChangeInCapacity, -5, None), 0);
        assert_eq!(apply_adjustment(3, ExactCapacity, 7, None), 7);
    }

    #[test]
    fn several_policies_largest_capacity_wins_for_out_and_in() {
        let p = |c, tt| Proposal {
            capacity: c,
            cause: String::new(),
            target_tracking: tt,
        };
        // AWS example: −3 vs −25 % of 8 ⇒ remove 2.
        let minus3 = apply_adjustment(8, ChangeInCapacity, -3, None);
        let minus25 = apply_adjustment(8, PercentChangeInCapacity, -25, None);
        let got = combine(8, &[p(minus3, false), p(minus25, false)], 0);
        assert_eq!(got.map(|p| p.capacity), Some(6));
        // Out if any TT policy wants out.
        assert_eq!(
            combine(4, &[p(2, true), p(6, true)], 2).map(|p| p.capacity),
            Some(6)
        );
        // In only if all TT policies agree.
        assert_eq!(combine(4, &[p(2, true)], 2), None);
        assert_eq!(
            combine(4, &[p(2, true), p(3, true)], 2).map(|p| p.capacity),
            Some(3)
        );
        assert_eq!(combine(4, &[p(4, true)], 1), None);
    }
}
