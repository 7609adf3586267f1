//! Which instances a policy's metric is read over, as AWS's warm-up defines them.

use std::time::Duration;

use crate::group::{AutoScalingGroup, Instance, LifecycleState};
use crate::id::InstanceId;
use crate::metrics::Metric;
use crate::time::Time;

/// Whether `i` warms up at `now` (see [`ScalingController::is_warming`]).
pub(super) fn is_warming(i: &Instance, now: Time, warmup: Duration) -> bool {
    match i.lifecycle {
        LifecycleState::Pending | LifecycleState::PendingWait => true,
        LifecycleState::InService => !i.initial && i.in_service_at.is_none_or(|t| now < t + warmup),
        _ => false,
    }
}

/// The instances a policy's metric is read over, as AWS's warm-up defines them.
pub(super) struct Measured {
    /// Every in-service instance its target groups route to, warming or not: load balancer
    /// metrics count all of them, as `ALBRequestCountPerTarget` divides by the healthy
    /// targets (a target still in its first health checks gets no requests and would dilute
    /// the rate).
    serving: Vec<InstanceId>,
    /// In-service instances past their warm-up: instance metrics (CPU) count only these.
    warm: Vec<InstanceId>,
    /// Live instances still warming (pending, or in service within the warm-up).
    pub(super) warming: u32,
}

impl Measured {
    pub(super) fn of(group: &AutoScalingGroup, now: Time, warmup: Duration) -> Measured {
        let mut m = Measured {
            serving: Vec::new(),
            warm: Vec::new(),
            warming: 0,
        };
        for i in group.instances().filter(|i| i.lifecycle.is_live()) {
            let warming = is_warming(i, now, warmup);
            m.warming += u32::from(warming);
            if i.lifecycle == LifecycleState::InService {
                if group.is_serving(&i.id) {
                    m.serving.push(i.id.clone());
                }
                if !warming {
                    m.warm.push(i.id.clone());
                }
            }
        }
        m
    }

    /// Every instance in service that its target groups route to.
    pub(super) fn serving(&self) -> &[InstanceId] {
        &self.serving
    }

    /// The instances `metric` is aggregated over.
    pub(super) fn for_metric(&self, metric: Metric) -> &[InstanceId] {
        if metric.is_instance_metric() {
            &self.warm
        } else {
            &self.serving
        }
    }
}
