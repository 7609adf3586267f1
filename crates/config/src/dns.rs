//! The authoritative DNS server (`[dns]`): hosted zones, record sets with Route 53's routing
//! policies, and the health checks that take record sets out of answers.
//!
//! Names are kept lowercase, fully qualified and without the trailing dot
//! (`www.example.test`), so the server compares them without normalising again.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::matching::Cidr;

/// The `[dns]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Dns {
    /// Where the server answers, on UDP and TCP alike.
    pub bind: SocketAddr,
    /// Resolver networks mapped to a location (a zone of the cluster or any name a latency or
    /// geoproximity record uses), in file order: the first network containing the resolver's
    /// address (or its EDNS client subnet) gives its location.
    pub networks: Vec<(Cidr, String)>,
    /// Hosted zones by name.
    pub zones: BTreeMap<String, HostedZone>,
    /// Health checks by name (Route 53 `CreateHealthCheck`).
    pub health_checks: BTreeMap<String, DnsHealthCheck>,
}

/// A hosted zone: the names this server is authoritative for.
#[derive(Debug, Clone, PartialEq)]
pub struct HostedZone {
    /// The apex, e.g. `example.test`.
    pub name: String,
    /// The apex's name servers (NS records); default `ns1.<zone>`.
    pub name_servers: Vec<String>,
    /// The SOA's responsible mailbox in DNS form; default `hostmaster.<zone>`.
    pub hostmaster: String,
    /// SOA serial; default 1.
    pub serial: u32,
    /// TTL of the SOA and NS records, and the negative-caching TTL (SOA minimum); default 300.
    pub ttl: u32,
    /// Record sets in file order.
    pub records: Vec<RecordSet>,
}

/// The record types a record set may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Text.
    Txt,
    /// Mail exchanger.
    Mx,
    /// Service locator.
    Srv,
}

impl RecordType {
    /// Every type with its config spelling.
    pub const ALL: [(&'static str, RecordType); 6] = [
        ("A", RecordType::A),
        ("AAAA", RecordType::Aaaa),
        ("CNAME", RecordType::Cname),
        ("TXT", RecordType::Txt),
        ("MX", RecordType::Mx),
        ("SRV", RecordType::Srv),
    ];

    /// The spelling in the config and the API, e.g. `"AAAA"`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(n, _)| n)
    }
}

/// One record set: the records of one name and type under one routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSet {
    /// Fully qualified owner name, lowercase, no trailing dot.
    pub name: String,
    /// The type of every value.
    pub rtype: RecordType,
    /// Time to live in seconds (alias records: 60, as Route 53 answers for ELB aliases).
    pub ttl: u32,
    /// Distinguishes record sets of the same name and type (required by every policy but
    /// simple).
    pub set_identifier: Option<String>,
    /// Which of the name's record sets answers.
    pub routing: Routing,
    /// The health check whose state this record set follows.
    pub health_check: Option<String>,
    /// The values, or an alias.
    pub data: RecordData,
}

/// Route 53's routing policies.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// The one record set of its name and type; every value answers.
    Simple,
    /// Chosen at random in proportion to `weight` (0–255; 0 = only when all are 0).
    Weighted {
        /// Relative weight.
        weight: u8,
    },
    /// Active-passive: the secondary answers while the primary is unhealthy.
    Failover {
        /// Which side this record set is.
        primary: bool,
    },
    /// Up to eight healthy values, chosen at random.
    MultiValue,
    /// The record set of the resolver's location; else the nearest healthy one.
    Latency {
        /// The location (region) this record set serves.
        region: String,
    },
    /// The record set with the least biased distance to the resolver's location.
    Geoproximity {
        /// Where the resource is.
        location: String,
        /// −99..99: a positive bias grows the region this record set wins.
        bias: i8,
    },
}

impl Routing {
    /// The config spelling of the policy.
    pub fn as_str(&self) -> &'static str {
        match self {
            Routing::Simple => "simple",
            Routing::Weighted { .. } => "weighted",
            Routing::Failover { .. } => "failover",
            Routing::MultiValue => "multivalue",
            Routing::Latency { .. } => "latency",
            Routing::Geoproximity { .. } => "geoproximity",
        }
    }
}

/// What a record set answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordData {
    /// Literal values, all of the set's type.
    Values(Vec<RecordValue>),
    /// A Route 53 alias: the target's current addresses.
    Alias {
        /// What the alias points at.
        target: AliasTarget,
        /// Whether the target's health decides this record set's health.
        evaluate_target_health: bool,
    },
}

/// One value of a record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A name (CNAME target), lowercase, no trailing dot.
    Cname(String),
    /// Text (at most 255 bytes per string).
    Txt(String),
    /// `PREFERENCE EXCHANGE`.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// Mail host.
        exchange: String,
    },
    /// `PRIORITY WEIGHT PORT TARGET`.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Share among equal priorities.
        weight: u16,
        /// Service port.
        port: u16,
        /// Service host.
        target: String,
    },
}

/// The target of an alias record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasTarget {
    /// A load balancer of this config: the addresses of its nodes.
    LoadBalancer(String),
    /// A distribution of this config: the addresses of its listeners.
    Distribution(String),
    /// Another record set name of the same zone and type.
    Record(String),
}

/// What a health check probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsHealthCheckKind {
    /// TCP connect, then `GET path`; 2xx and 3xx are healthy.
    Http,
    /// The same over TLS (the certificate is not validated, as Route 53).
    Https,
    /// TCP connect only.
    Tcp,
    /// Healthy while at least `healthy_threshold` children are healthy.
    Calculated,
}

impl DnsHealthCheckKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Tcp => "tcp",
            Self::Calculated => "calculated",
        }
    }
}

/// A Route 53 health check.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsHealthCheck {
    /// The probe.
    pub kind: DnsHealthCheckKind,
    /// The endpoint (`http`, `https`, `tcp`).
    pub target: Option<SocketAddr>,
    /// `Host` of HTTP(S) probes; default the target's address.
    pub host: Option<String>,
    /// Path of HTTP(S) probes; default `/`.
    pub path: String,
    /// Time between probes (Route 53: 30 s standard or 10 s fast; any duration ≥ 1 s here).
    pub interval: Duration,
    /// How long one probe may take; default min(interval, 4 s).
    pub timeout: Duration,
    /// Consecutive results that flip the state (1–10, default 3).
    pub failure_threshold: u32,
    /// Must appear in the first 5,120 bytes of the body (HTTP(S)).
    pub search_string: Option<String>,
    /// Healthy means the probe failed.
    pub inverted: bool,
    /// Children of a calculated check.
    pub children: Vec<String>,
    /// Healthy children a calculated check needs; default all of them.
    pub healthy_threshold: u32,
}
