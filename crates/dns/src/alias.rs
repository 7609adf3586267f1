//! Where alias records find their targets' addresses. Under `flotilla up` a load balancer
//! has one node, its listener's address; in cluster mode every lb node publishes one address
//! per live lb node, each with that node's own health, and a node whose lease ran out is not
//! listed. Both publish an [`AliasTable`], so the answer code does not know which.

use std::collections::HashMap;
use std::net::IpAddr;

/// One node address of an alias target, and whether it may take traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliasAddress {
    /// The node's address.
    pub ip: IpAddr,
    /// False when the node (or everything behind it) is unhealthy.
    pub healthy: bool,
}

/// The current addresses of load balancers and distributions, by name.
pub trait AliasSource: Send + Sync {
    /// The nodes of a load balancer (none when unknown).
    fn load_balancer(&self, name: &str) -> Vec<AliasAddress>;
    /// The nodes of a distribution (none when unknown).
    fn distribution(&self, name: &str) -> Vec<AliasAddress>;
}

/// A fixed table of targets: what the runtime publishes each second, and what tests use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasTable {
    /// Load balancer nodes by name.
    pub load_balancers: HashMap<String, Vec<AliasAddress>>,
    /// Distribution nodes by name.
    pub distributions: HashMap<String, Vec<AliasAddress>>,
}

impl AliasSource for AliasTable {
    fn load_balancer(&self, name: &str) -> Vec<AliasAddress> {
        self.load_balancers.get(name).cloned().unwrap_or_default()
    }

    fn distribution(&self, name: &str) -> Vec<AliasAddress> {
        self.distributions.get(name).cloned().unwrap_or_default()
    }
}
