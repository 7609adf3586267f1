//! What the rest of the cluster reads of a target group's health: states, routable targets.

use super::*;

impl TargetGroupHealth {
    /// Every registered or draining target's state, by address (the routing table's view,
    /// without the reasons).
    pub fn states(&self) -> impl Iterator<Item = (SocketAddr, TargetState)> + '_ {
        self.targets.iter().map(|(addr, t)| (*addr, t.state))
    }

    /// Every registered or draining target, by address.
    pub fn targets(&self) -> impl Iterator<Item = TargetStatus> + '_ {
        self.targets.iter().map(|(addr, t)| TargetStatus {
            target: *addr,
            state: t.state,
            reason: t.reason.as_deref().map(str::to_string),
        })
    }

    /// Whether some target is healthy (stops at the first one found).
    pub(crate) fn any_healthy(&self) -> bool {
        self.targets
            .values()
            .any(|t| t.state == TargetState::Healthy)
    }

    /// A target's state; `None` if it is not registered (AWS would say `unused`).
    pub fn state(&self, target: SocketAddr) -> Option<TargetState> {
        self.targets.get(&target).map(|t| t.state)
    }

    /// Targets that may receive new requests: the healthy ones; if none is healthy, every
    /// registered target that is not draining (AWS fails open rather than sending nothing);
    /// empty when nothing is registered.
    pub fn routable_targets(&self) -> Vec<SocketAddr> {
        let healthy: Vec<SocketAddr> = self
            .targets
            .iter()
            .filter(|(_, t)| t.state == TargetState::Healthy)
            .map(|(a, _)| *a)
            .collect();
        if !healthy.is_empty() {
            return healthy;
        }
        self.targets
            .iter()
            .filter(|(_, t)| t.state != TargetState::Draining)
            .map(|(a, _)| *a)
            .collect()
    }
}
