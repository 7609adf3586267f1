//! Where a resolver is: its source network (or EDNS client subnet) mapped to a location, and
//! how far locations are from each other, for latency and geoproximity records.
//!
//! Route 53 measures latency between resolvers and AWS regions; here the operator maps
//! networks to locations (`[dns] networks`), and the locations lie on a line in name order
//! (`az-a`, `az-b`, `az-c`): the distance between two is how many steps apart they are.

use std::net::IpAddr;

use flotilla_config::dns::{Dns, Routing};
use flotilla_config::Cidr;

/// Networks → locations, and the line of locations.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    networks: Vec<(Cidr, String)>,
    line: Vec<String>,
}

impl Locations {
    /// The networks of `[dns]`, and every location a network or record names.
    pub fn new(dns: &Dns) -> Self {
        let mut line: Vec<String> = dns.networks.iter().map(|(_, l)| l.clone()).collect();
        for z in dns.zones.values() {
            for r in &z.records {
                match &r.routing {
                    Routing::Latency { region } => line.push(region.clone()),
                    Routing::Geoproximity { location, .. } => line.push(location.clone()),
                    _ => {}
                }
            }
        }
        line.sort();
        line.dedup();
        Locations {
            networks: dns.networks.clone(),
            line,
        }
    }

    /// The location of a resolver (or client subnet) address: the first network holding it.
    pub fn locate(&self, ip: IpAddr) -> Option<&str> {
        self.networks
            .iter()
            .find(|(c, _)| c.contains(ip))
            .map(|(_, l)| l.as_str())
    }

    /// Steps between two locations on the line; unknown ones are as far as the line is long.
    pub fn distance(&self, a: &str, b: &str) -> usize {
        if a == b {
            return 0;
        }
        let pos = |x: &str| self.line.iter().position(|l| l == x);
        match (pos(a), pos(b)) {
            (Some(i), Some(j)) => i.abs_diff(j),
            _ => self.line.len() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locs() -> Locations {
        Locations {
            networks: vec![
                ("10.1.0.0/16".parse().unwrap(), "az-a".into()),
                ("10.0.0.0/8".parse().unwrap(), "az-c".into()),
            ],
            line: vec!["az-a".into(), "az-b".into(), "az-c".into()],
        }
    }

    #[test]
    fn first_network_holding_the_address_wins() {
        let l = locs();
        assert_eq!(l.locate("10.1.2.3".parse().unwrap()), Some("az-a"));
        assert_eq!(l.locate("10.2.2.3".parse().unwrap()), Some("az-c"));
        assert_eq!(l.locate("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn distance_is_steps_on_the_line() {
        let l = locs();
        assert_eq!(l.distance("az-a", "az-a"), 0);
        assert_eq!(l.distance("az-a", "az-c"), 2);
        assert_eq!(l.distance("az-c", "az-b"), 1);
        assert_eq!(l.distance("az-a", "mars"), 4);
    }
}
