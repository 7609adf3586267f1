//! An API group in config terms: bounds, zones, health checks, termination policies, and its
//! target tracking policies, scheduled actions, lifecycle hooks and warm pool as Flotilla's
//! own types.

use std::time::Duration;

use flotilla_config::{AutoScalingGroupConfig, HealthCheckType, TerminationPolicy};
use flotilla_control::metrics::{Metric, Statistic};
use flotilla_control::{
    InstanceRefreshSettings, LifecycleActionResult, LifecycleHook, LifecycleTransition,
    ScalingPolicy, WarmPool,
};

use flotilla_control::pricing::{InstancesDistribution, SpotAllocationStrategy};

use super::{GroupRes, MixedRes, Registry};

/// A `MixedInstancesPolicy` as the group's purchase options (`instances_distribution`).
fn distribution(m: &MixedRes, capacity_rebalance: bool) -> InstancesDistribution {
    InstancesDistribution {
        on_demand_base_capacity: m.on_demand_base_capacity,
        on_demand_percentage_above_base_capacity: m.on_demand_percentage_above_base_capacity,
        spot_allocation_strategy: SpotAllocationStrategy::ALL
            .iter()
            .find(|(n, _)| *n == m.spot_allocation_strategy)
            .map(|(_, s)| *s)
            .unwrap_or_default(),
        capacity_rebalance,
        ..InstancesDistribution::default()
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

pub(crate) fn group(g: &GroupRes, template: String, reg: &Registry) -> AutoScalingGroupConfig {
    let _ = reg;
    AutoScalingGroupConfig {
        launch_template: template,
        target_groups: g.target_groups.clone(),
        zones: g.zones.clone(),
        min_size: g.min_size,
        max_size: g.max_size,
        desired_capacity: g.desired_capacity,
        health_check_type: if g.health_check_type == "ELB" {
            HealthCheckType::Elb
        } else {
            HealthCheckType::Process
        },
        health_check_grace_period: secs(g.health_check_grace_period),
        // AWS's chain: a policy's EstimatedInstanceWarmup, else DefaultInstanceWarmup, else
        // DefaultCooldown (the controller's own fallback). Flotilla has one warm-up per group.
        default_instance_warmup: g
            .policies
            .values()
            .filter(|p| p.enabled && p.target_tracking.is_some())
            .filter_map(|p| p.estimated_instance_warmup)
            .min()
            .or(g.default_instance_warmup)
            .map(secs),
        default_cooldown: secs(g.default_cooldown),
        termination_policies: termination_policies(&g.termination_policies),
        new_instances_protected_from_scale_in: g.new_instances_protected,
        instances_distribution: g
            .mixed
            .as_ref()
            .map(|m| distribution(m, g.capacity_rebalance)),
        scaling_policies: target_tracking_policies(g),
        scheduled_actions: g
            .scheduled
            .values()
            .filter_map(|s| {
                flotilla_control::schedule::ScheduledActionSpec::parse(
                    &s.name,
                    s.recurrence.as_deref(),
                    s.time_zone.as_deref().unwrap_or("UTC"),
                    s.start_time.as_deref(),
                    s.end_time.as_deref(),
                    s.min_size,
                    s.max_size,
                    s.desired_capacity,
                )
                .ok()
            })
            .collect(),
        lifecycle_hooks: g
            .hooks
            .values()
            .map(|h| LifecycleHook {
                name: h.name.clone(),
                transition: if h.transition.ends_with("TERMINATING") {
                    LifecycleTransition::Terminating
                } else {
                    LifecycleTransition::Launching
                },
                heartbeat_timeout: secs(h.heartbeat_timeout),
                default_result: if h.default_result == "CONTINUE" {
                    LifecycleActionResult::Continue
                } else {
                    LifecycleActionResult::Abandon
                },
            })
            .collect(),
        warm_pool: g.warm_pool.as_ref().map(|w| WarmPool {
            min_size: w.min_size,
            max_group_prepared_capacity: w.max_group_prepared_capacity,
            reuse_on_scale_in: w.reuse_on_scale_in,
        }),
        instance_refresh: InstanceRefreshSettings::default(),
    }
}

/// The group's enabled target tracking policies (step and simple ones run only through
/// `ExecutePolicy`: there is no CloudWatch alarm to drive them).
fn target_tracking_policies(g: &GroupRes) -> Vec<ScalingPolicy> {
    g.policies
        .values()
        .filter(|p| p.enabled)
        .filter_map(|p| {
            let tt = p.target_tracking.as_ref()?;
            let (metric, statistic, per_minute) = tracked_metric(tt).ok()?;
            Some(ScalingPolicy::TargetTracking(
                flotilla_control::policy::TargetTrackingSpec {
                    name: p.name.clone(),
                    metric,
                    statistic,
                    target_value: if per_minute {
                        tt.target_value / 60.0
                    } else {
                        tt.target_value
                    },
                    period: Duration::from_secs(10),
                    scale_in_stabilization: Duration::from_secs(300),
                    disable_scale_in: tt.disable_scale_in,
                },
            ))
        })
        .collect()
}

/// AWS termination policy names in Flotilla's terms (unknown ones were refused on the way in;
/// `ClosestToNextInstanceHour` and `AllocationStrategy` fold into `Default`).
pub fn termination_policies(names: &[String]) -> Vec<TerminationPolicy> {
    let mut out: Vec<TerminationPolicy> = names
        .iter()
        .map(|n| match n.as_str() {
            "OldestInstance" => TerminationPolicy::OldestInstance,
            "NewestInstance" => TerminationPolicy::NewestInstance,
            "OldestLaunchTemplate" | "OldestLaunchConfiguration" => {
                TerminationPolicy::OldestLaunchTemplate
            }
            _ => TerminationPolicy::Default,
        })
        .collect();
    out.dedup();
    if out.is_empty() {
        out.push(TerminationPolicy::Default);
    }
    out
}

/// A target tracking configuration's metric in Flotilla's terms: (metric, statistic, whether
/// AWS counts it per minute where Flotilla counts per second).
pub fn tracked_metric(tt: &super::TargetTrackingRes) -> Result<(Metric, Statistic, bool), String> {
    if let Some(p) = &tt.predefined {
        return match p.as_str() {
            "ASGAverageCPUUtilization" => Ok((Metric::CpuUtilization, Statistic::Average, false)),
            "ALBRequestCountPerTarget" => {
                Ok((Metric::RequestRatePerTarget, Statistic::Average, true))
            }
            other => Err(format!(
                "PredefinedMetricType {other} is not supported by Flotilla (use \
                 ASGAverageCPUUtilization or ALBRequestCountPerTarget)"
            )),
        };
    }
    let Some((name, _namespace, statistic, _)) = &tt.customized else {
        return Err(
            "TargetTrackingConfiguration needs a PredefinedMetricSpecification or a \
             CustomizedMetricSpecification"
                .into(),
        );
    };
    let statistic = match statistic.as_str() {
        "Average" => Statistic::Average,
        "Sum" => Statistic::Sum,
        "Minimum" => Statistic::Minimum,
        "Maximum" => Statistic::Maximum,
        "SampleCount" => Statistic::SampleCount,
        other => {
            return Err(format!(
                "Statistic {other} is not one of Average, Sum, Minimum, Maximum, SampleCount"
            ))
        }
    };
    let (metric, per_minute) = match name.as_str() {
        "CPUUtilization" => (Metric::CpuUtilization, false),
        "RequestCountPerTarget" => (Metric::RequestRatePerTarget, true),
        "RequestCount" => (Metric::RequestCount, true),
        "TargetResponseTime" => (Metric::TargetResponseTime, false),
        "ActiveConnectionCount" => (Metric::ActiveConnections, false),
        other => {
            let m = Metric::SCALING
                .into_iter()
                .find(|m| m.as_str() == other)
                .ok_or_else(|| {
                    format!(
                        "MetricName {other} is not a metric Flotilla has (CPUUtilization, \
                         RequestCountPerTarget, RequestCount, TargetResponseTime, \
                         ActiveConnectionCount, or one of Flotilla's own names)"
                    )
                })?;
            (m, false)
        }
    };
    Ok((metric, statistic, per_minute))
}
