//! What instances cost, and the Spot interruptions that take them back: the billing view the
//! API, Prometheus and the dashboard read, the `cost_per_hour` series, the interruption
//! notice an operator sends, and the seeded drill that sends them at random.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::group::{AutoScalingGroup, SpotError};
use crate::id::InstanceId;
use crate::metrics::{Metric, Scope};
use crate::pricing::{self, Billable, Billing, PurchaseOption};
use crate::time::Time;

use super::operator::OperatorError;
use super::{Cluster, GroupState};

/// One instance's purchase option and price, as status, the API and the dashboard show it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceBill {
    /// Its instance type (from its launch template version).
    pub instance_type: String,
    /// On-Demand or Spot.
    pub purchase_option: PurchaseOption,
    /// The rate it is billed at (an On-Demand instance a reservation covers is `Reserved`).
    pub billing: Billing,
    /// Dollars per hour; `None` when the type has no price.
    pub hourly: Option<f64>,
    /// When EC2 takes it back, for a Spot instance with an interruption notice.
    pub interruption_deadline: Option<Time>,
}

/// The instance type of an instance launched from `version` of `g`'s template.
fn instance_type(g: &GroupState, version: u64) -> Option<&str> {
    g.templates
        .get(&version)
        .or_else(|| g.templates.values().next_back())
        .map(|t| t.instance_type.as_str())
}

impl Cluster {
    /// Every running instance's bill (warm pool instances run, so they are billed too).
    pub fn bills(&self) -> BTreeMap<InstanceId, InstanceBill> {
        let mut billable = Vec::new();
        let mut deadlines = BTreeMap::new();
        for g in self.groups.values() {
            deadlines.extend(g.asg.interruption_deadlines());
            for i in g.asg.instances() {
                let Some(ty) = instance_type(g, i.launch_template_version) else {
                    continue;
                };
                billable.push((i, ty));
            }
        }
        let bills = pricing::bill(
            &self.pricing,
            billable.iter().map(|(i, ty)| Billable {
                id: &i.id,
                instance_type: ty,
                purchase_option: i.purchase_option,
                launched_at: i.launched_at,
            }),
        );
        billable
            .iter()
            .filter_map(|(i, ty)| {
                let b = bills.get(&i.id)?;
                Some((
                    i.id.clone(),
                    InstanceBill {
                        instance_type: ty.to_string(),
                        purchase_option: i.purchase_option,
                        billing: b.billing,
                        hourly: b.hourly,
                        interruption_deadline: deadlines.get(&i.id).copied(),
                    },
                ))
            })
            .collect()
    }

    /// Dollars per hour each group's instances cost now, by group.
    pub fn cost_per_hour(&self) -> BTreeMap<String, f64> {
        let bills = self.bills();
        self.groups
            .iter()
            .map(|(name, g)| (name.clone(), group_cost_per_hour(&g.asg, &bills)))
            .collect()
    }

    /// Records each group's `cost_per_hour` for this second (billed again only when the
    /// fleet changed since the last second).
    pub(crate) fn record_cost(&mut self, now: Time) {
        let fleet = self.groups.values().fold((0, 0), |(removals, count), g| {
            (
                removals + g.asg.removals(),
                count + g.asg.instances().count(),
            )
        });
        let costs = match self.cost_cache.take() {
            Some((seen, costs)) if seen == fleet => costs,
            _ => self.cost_per_hour().into_iter().collect(),
        };
        for (group, cost) in &costs {
            self.metrics.record(
                Metric::CostPerHour,
                &Scope::Group(group.clone()),
                now,
                *cost,
            );
        }
        self.cost_cache = Some((fleet, costs));
    }

    /// A Spot interruption notice for `id` (the drill an operator runs, as EC2 sends it):
    /// reclaimed after `notice`, or the group's `spot_interruption_notice` (2 minutes).
    /// Returns the deadline.
    pub fn interrupt_spot(
        &mut self,
        now: Time,
        id: &InstanceId,
        notice: Option<Duration>,
    ) -> Result<Time, OperatorError> {
        let g = self
            .group_of_mut(id)
            .ok_or_else(|| OperatorError::NoInstance(id.to_string()))?;
        let notice = notice.unwrap_or_else(|| default_notice(g));
        let deadline =
            g.asg
                .interrupt_spot(now, id, notice, "an operator's spot interruption drill")?;
        self.pump(now);
        Ok(deadline)
    }

    /// The drill of `spot_interruption_rate`: once a second, each Spot instance without a
    /// notice gets one with probability rate / 3600, from the cluster's seeded generator.
    pub(crate) fn spot_drill(&mut self, now: Time) {
        for g in self.groups.values_mut() {
            let Some(d) = g.config.instances_distribution else {
                continue;
            };
            if d.spot_interruption_rate <= 0.0 {
                continue;
            }
            let p = d.spot_interruption_rate / 3600.0;
            let candidates: Vec<InstanceId> = g
                .asg
                .instances()
                .filter(|i| {
                    i.purchase_option == PurchaseOption::Spot
                        && i.lifecycle.is_live()
                        && g.asg.interruption_deadline(&i.id).is_none()
                })
                .map(|i| i.id.clone())
                .collect();
            for id in candidates {
                if self.drill_rng.unit() >= p {
                    continue;
                }
                let cause = format!(
                    "the spot interruption drill ({} per spot instance-hour)",
                    d.spot_interruption_rate
                );
                let notice = d.spot_interruption_notice;
                if let Err(e) = g.asg.interrupt_spot(now, &id, notice, &cause) {
                    tracing::debug!(instance = %id, error = %e, "drill skipped an instance");
                }
            }
        }
    }
}

fn default_notice(g: &GroupState) -> Duration {
    g.config
        .instances_distribution
        .map_or(pricing::DEFAULT_SPOT_NOTICE, |d| d.spot_interruption_notice)
}

impl From<SpotError> for OperatorError {
    fn from(e: SpotError) -> Self {
        OperatorError::Spot(e)
    }
}

/// Dollars per hour `group`'s instances cost now, from [`Cluster::bills`] computed once by a
/// caller that reads several groups (billing is over the whole cluster: reserved coverage).
pub fn group_cost_per_hour(
    group: &AutoScalingGroup,
    bills: &BTreeMap<InstanceId, InstanceBill>,
) -> f64 {
    group
        .instances()
        .filter_map(|i| bills.get(&i.id)?.hourly)
        .sum()
}
