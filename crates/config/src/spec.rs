//! The config as the control plane runs it: the same values, gathered into a
//! [`ClusterSpec`]. Nothing here can fail — what validated can always be applied.

use std::net::SocketAddr;

use flotilla_control::{ClusterSpec, ForwardSpec, HealthCheckSpec, RuleKey, TargetGroupSpec};

use crate::model::{Config, TargetGroup};
use crate::routing::Action;

impl TargetGroup {
    /// The control plane's view: probe schedule and thresholds, draining, static targets.
    pub fn spec(&self) -> TargetGroupSpec {
        let hc = &self.health_check;
        TargetGroupSpec {
            health_check: HealthCheckSpec {
                interval: hc.interval,
                timeout: hc.timeout,
                healthy_threshold: hc.healthy_threshold,
                unhealthy_threshold: hc.unhealthy_threshold,
            },
            deregistration_delay: self.deregistration_delay,
            targets: self.targets.clone(),
        }
    }
}

impl Config {
    /// What the control plane runs. `bound` maps a listener's configured address to the one
    /// it is bound to (they differ for port 0), which keys its forward actions.
    pub fn cluster_spec(&self, bound: impl Fn(SocketAddr) -> SocketAddr) -> ClusterSpec {
        let mut forwards = Vec::new();
        for (lb_name, lb) in &self.load_balancers {
            for l in &lb.listeners {
                let actions = std::iter::once((None, &l.default_action))
                    .chain(l.rules.iter().map(|r| (Some(r.priority), &r.action)));
                for (priority, action) in actions {
                    let Action::Forward {
                        target_groups,
                        rollback,
                    } = action
                    else {
                        continue;
                    };
                    forwards.push(ForwardSpec {
                        rule: RuleKey {
                            load_balancer: lb_name.clone(),
                            listener: bound(l.bind),
                            priority,
                        },
                        target_groups: target_groups.clone(),
                        rollback: rollback.clone(),
                    });
                }
            }
        }
        ClusterSpec {
            zones: self.cluster.zones.clone(),
            launch_templates: self.launch_templates.clone(),
            groups: self.auto_scaling_groups.clone(),
            target_groups: self
                .target_groups
                .iter()
                .map(|(n, tg)| (n.clone(), tg.spec()))
                .collect(),
            forwards,
            pricing: self.pricing.clone(),
        }
    }
}
