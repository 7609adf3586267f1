//! What DNS alias records to a load balancer answer with, as rules (ELB's, as Route 53 applies
//! them to an alias): a load balancer node may take a load balancer's traffic while some target
//! group that load balancer forwards to has a healthy target *as that node sees it*; an alias
//! answers with one address per live load balancer node, each with its own verdict. A node
//! whose lease expired (dead, cut off) has no registration and is simply absent; one that is
//! alive but unhealthy stays listed as unhealthy, so the answer code can fail open (every node)
//! when no node is healthy, as ELB keeps all of its nodes in DNS then.
//!
//! `flotilla up` applies the first rule to its one node; cluster mode's load balancer nodes
//! apply it to themselves and publish the verdict in their registration (`lb/<node>`), and
//! every node's DNS turns the registrations into answers with [`alias_addresses`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::health::{TargetGroupHealth, TargetState};

/// Whether a load balancer may take traffic: some target group it forwards to (`groups`, each
/// as the deciding node's health machine sees it; `None` for one it does not know) has a
/// healthy target.
pub fn load_balancer_healthy<'h>(
    groups: impl IntoIterator<Item = Option<&'h TargetGroupHealth>>,
) -> bool {
    groups
        .into_iter()
        .flatten()
        .any(|h| h.states().any(|(_, s)| s == TargetState::Healthy))
}

/// One live load balancer node as its registration says: its address and, per load balancer
/// it serves, its own verdict.
#[derive(Clone, Copy, Debug)]
pub struct LbNodeView<'a> {
    /// Where its listeners are bound.
    pub address: IpAddr,
    /// Load balancer name → healthy ([`load_balancer_healthy`] on that node).
    pub load_balancers: &'a BTreeMap<String, bool>,
}

/// Per load balancer, the nodes an alias to it answers with: every live node that serves it,
/// once per address (healthy if any node at that address says so), in address order.
pub fn alias_addresses<'a>(
    nodes: impl IntoIterator<Item = LbNodeView<'a>>,
) -> BTreeMap<String, Vec<(IpAddr, bool)>> {
    let mut by_lb: BTreeMap<String, BTreeMap<IpAddr, bool>> = BTreeMap::new();
    for node in nodes {
        for (lb, healthy) in node.load_balancers {
            let slot = by_lb
                .entry(lb.clone())
                .or_default()
                .entry(node.address)
                .or_insert(false);
            *slot |= *healthy;
        }
    }
    by_lb
        .into_iter()
        .map(|(lb, addrs)| (lb, addrs.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthCheckSpec, ProbeResult};
    use crate::time::Time;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn group_with(target: SocketAddr, passes: bool) -> TargetGroupHealth {
        let spec = HealthCheckSpec {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        };
        let mut h = TargetGroupHealth::new(spec, Duration::ZERO);
        let now = Time::ZERO;
        h.register(now, target);
        let result = if passes {
            ProbeResult::Success
        } else {
            ProbeResult::Failure {
                reason: "Target.Timeout".into(),
            }
        };
        h.handle_probe_result(now, target, result);
        h
    }

    #[test]
    fn a_load_balancer_is_healthy_while_one_forwarded_group_has_a_healthy_target() {
        let t: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let up = group_with(t, true);
        let down = group_with(t, false);
        assert!(load_balancer_healthy([Some(&down), Some(&up)]));
        assert!(!load_balancer_healthy([Some(&down), None]));
        assert!(!load_balancer_healthy(std::iter::empty()));
        let mut fresh = group_with(t, true);
        fresh.deregister(Time::ZERO, t);
        assert!(
            !load_balancer_healthy([Some(&fresh)]),
            "a draining target is not a healthy one"
        );
    }

    #[test]
    fn aliases_list_each_live_node_once_with_its_own_verdict() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = BTreeMap::from([("front".to_string(), true), ("back".to_string(), false)]);
        let b = BTreeMap::from([("front".to_string(), false)]);
        let c = BTreeMap::from([("front".to_string(), true)]);
        let table = alias_addresses([
            LbNodeView {
                address: ip("10.0.0.3"),
                load_balancers: &c,
            },
            LbNodeView {
                address: ip("10.0.0.1"),
                load_balancers: &a,
            },
            LbNodeView {
                address: ip("10.0.0.2"),
                load_balancers: &b,
            },
            // A second registration at a known address: healthy wins.
            LbNodeView {
                address: ip("10.0.0.2"),
                load_balancers: &c,
            },
        ]);
        assert_eq!(
            table["front"],
            vec![
                (ip("10.0.0.1"), true),
                (ip("10.0.0.2"), true),
                (ip("10.0.0.3"), true)
            ]
        );
        assert_eq!(table["back"], vec![(ip("10.0.0.1"), false)]);
        assert_eq!(table.len(), 2);
    }
}
