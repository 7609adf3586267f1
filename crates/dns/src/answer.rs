//! Answering one question from the hosted zones: a pure function of the zones, the health
//! checks' states, the alias targets' addresses, the resolver's location and a random
//! source. The server turns its result into a DNS message.

use std::net::IpAddr;

use flotilla_config::dns::{AliasTarget, RecordData, RecordType, RecordValue, Routing};

use crate::alias::{AliasAddress, AliasSource};
use crate::policy::{choose, Random, MULTIVALUE_MAX};
use crate::zones::{in_zone, NameState, Zone, ZoneSet};

/// How many CNAMEs and record aliases are followed before giving up (loops in the zone).
const MAX_CHAIN: usize = 8;

/// The type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// A record set type.
    Record(RecordType),
    /// The zone's name servers.
    Ns,
    /// The zone's start of authority.
    Soa,
    /// Anything else (e.g. DNSKEY, CAA): answered with no data.
    Other,
}

/// Resource data of one answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A value of a record set.
    Value(RecordValue),
    /// A name server of the zone.
    Ns(String),
    /// The zone's SOA.
    Soa {
        /// Primary name server.
        mname: String,
        /// Hostmaster mailbox.
        rname: String,
        /// Serial.
        serial: u32,
        /// Negative-caching TTL.
        minimum: u32,
    },
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// Owner name.
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The data.
    pub data: Data,
}

/// The outcome of a question.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The name is outside every hosted zone: not an open resolver.
    Refused,
    /// Authoritative answer; `answers` empty means no data (NODATA) and `nxdomain` says the
    /// name does not exist. `authority` holds the SOA for negative answers.
    Answer {
        /// Answer section.
        answers: Vec<Rr>,
        /// Authority section.
        authority: Vec<Rr>,
        /// The name does not exist (NXDOMAIN).
        nxdomain: bool,
    },
}

/// How the answer reads the health checks.
pub trait HealthView {
    /// Whether the named check is healthy (an unknown check is healthy).
    fn healthy(&self, check: &str) -> bool;
}

/// What one question needs besides the zones.
pub struct Context<'a> {
    /// Health check states.
    pub health: &'a dyn HealthView,
    /// Addresses of alias targets.
    pub aliases: &'a dyn AliasSource,
    /// The resolver's address, or its EDNS client subnet's.
    pub client: Option<IpAddr>,
    /// Random numbers for weighted and multivalue answers.
    pub rng: &'a mut dyn Random,
}

/// Answers `qname` (lowercase, no trailing dot) of type `qtype`.
pub fn answer(zones: &ZoneSet, qname: &str, qtype: QType, cx: &mut Context<'_>) -> Outcome {
    let Some(zone) = zones.zone_for(qname) else {
        return Outcome::Refused;
    };
    let mut answers = Vec::new();
    let mut name = qname.to_string();
    for _ in 0..MAX_CHAIN {
        let Some(owner) = zone.owner_for(&name) else {
            let nx = answers.is_empty();
            return negative(zone, answers, nx);
        };
        if let (QType::Record(t), false) = (qtype, zone.sets(owner, RecordType::Cname).is_empty()) {
            if t != RecordType::Cname {
                // Follow the CNAME inside the zone; a target outside is the resolver's job.
                let got = records(zones, zone, owner, &name, RecordType::Cname, cx, 0);
                let next = got.rrs.iter().find_map(|r| match &r.data {
                    Data::Value(RecordValue::Cname(t)) => Some(t.clone()),
                    _ => None,
                });
                answers.extend(got.rrs);
                match next {
                    Some(t) if in_zone(&t, zone.name()) => {
                        name = t;
                        continue;
                    }
                    _ => return positive(answers),
                }
            }
        }
        answers.extend(apex_or_records(zones, zone, owner, &name, qtype, cx));
        return if answers.is_empty() {
            negative(zone, answers, false)
        } else {
            positive(answers)
        };
    }
    positive(answers)
}

fn apex_or_records(
    zones: &ZoneSet,
    zone: &Zone,
    owner: &str,
    name: &str,
    qtype: QType,
    cx: &mut Context<'_>,
) -> Vec<Rr> {
    let apex = owner == zone.name();
    match qtype {
        QType::Ns if apex => ns_records(zone),
        QType::Soa if apex => vec![soa(zone)],
        QType::Record(t) => records(zones, zone, owner, name, t, cx, 0).rrs,
        _ => Vec::new(),
    }
}

fn positive(answers: Vec<Rr>) -> Outcome {
    Outcome::Answer {
        answers,
        authority: Vec::new(),
        nxdomain: false,
    }
}

fn negative(zone: &Zone, answers: Vec<Rr>, nxdomain: bool) -> Outcome {
    Outcome::Answer {
        answers,
        authority: vec![soa(zone)],
        nxdomain,
    }
}

/// The zone's SOA record.
pub fn soa(zone: &Zone) -> Rr {
    let c = &zone.config;
    Rr {
        name: c.name.clone(),
        ttl: c.ttl,
        data: Data::Soa {
            mname: c.name_servers.first().cloned().unwrap_or_default(),
            rname: c.hostmaster.clone(),
            serial: c.serial,
            minimum: c.ttl,
        },
    }
}

/// The zone's NS records.
pub fn ns_records(zone: &Zone) -> Vec<Rr> {
    zone.config
        .name_servers
        .iter()
        .map(|ns| Rr {
            name: zone.config.name.clone(),
            ttl: zone.config.ttl,
            data: Data::Ns(ns.clone()),
        })
        .collect()
}

/// What answering one name and type gave, and whether it was healthy.
struct Got {
    rrs: Vec<Rr>,
    healthy: bool,
}

/// The records of `owner`/`rtype` by routing policy, written with owner name `name` (the
/// question's, for wildcard owners). `depth` counts record aliases followed.
fn records(
    zones: &ZoneSet,
    zone: &Zone,
    owner: &str,
    name: &str,
    rtype: RecordType,
    cx: &mut Context<'_>,
    depth: usize,
) -> Got {
    let sets = zone.sets(owner, rtype);
    if sets.is_empty() || depth > MAX_CHAIN {
        return Got {
            rrs: Vec::new(),
            healthy: false,
        };
    }
    // Each set's health: its check, and its alias target when evaluated.
    let mut alias_rrs: Vec<Option<Got>> = Vec::with_capacity(sets.len());
    for s in &sets {
        alias_rrs.push(match &s.data {
            RecordData::Alias { target, .. } => {
                Some(resolve_alias(zones, zone, target, name, rtype, cx, depth))
            }
            RecordData::Values(_) => None,
        });
    }
    let health = |i: usize| {
        let s = sets[i];
        let check_ok = s
            .health_check
            .as_deref()
            .is_none_or(|c| cx.health.healthy(c));
        let target_ok = match (&s.data, &alias_rrs[i]) {
            (
                RecordData::Alias {
                    evaluate_target_health: true,
                    ..
                },
                Some(g),
            ) => g.healthy,
            _ => true,
        };
        check_ok && target_ok
    };
    let client = cx.client.and_then(|ip| zones.locations.locate(ip));
    let choice = choose(&sets, &health, client, &zones.locations, &mut *cx.rng);
    let mut rrs = Vec::new();
    for chosen in &choice.sets {
        let i = sets
            .iter()
            .position(|s| std::ptr::eq(*s, *chosen))
            .unwrap_or(0);
        match (&chosen.data, alias_rrs[i].take()) {
            (RecordData::Values(values), _) => rrs.extend(values.iter().map(|v| Rr {
                name: name.to_string(),
                ttl: chosen.ttl,
                data: Data::Value(v.clone()),
            })),
            (RecordData::Alias { .. }, Some(got)) => rrs.extend(got.rrs),
            (RecordData::Alias { .. }, None) => {}
        }
    }
    if matches!(sets[0].routing, Routing::MultiValue) {
        rrs.truncate(MULTIVALUE_MAX);
    }
    Got {
        rrs,
        healthy: choice.healthy,
    }
}

/// An alias's records, written under `name` with Route 53's 60 s TTL for resources (a
/// record alias keeps its target's TTLs).
fn resolve_alias(
    zones: &ZoneSet,
    zone: &Zone,
    target: &AliasTarget,
    name: &str,
    rtype: RecordType,
    cx: &mut Context<'_>,
    depth: usize,
) -> Got {
    let addrs: Vec<AliasAddress> = match target {
        AliasTarget::LoadBalancer(lb) => cx.aliases.load_balancer(lb),
        AliasTarget::Distribution(d) => cx.aliases.distribution(d),
        AliasTarget::Record(r) => {
            let Some(owner) = zone.owner_for(r) else {
                return Got {
                    rrs: Vec::new(),
                    healthy: false,
                };
            };
            let got = records(zones, zone, owner, r, rtype, cx, depth + 1);
            let rrs = got
                .rrs
                .into_iter()
                .map(|rr| Rr {
                    name: name.to_string(),
                    ..rr
                })
                .collect();
            return Got {
                rrs,
                healthy: got.healthy,
            };
        }
    };
    let want = |ip: &IpAddr| match rtype {
        RecordType::A => ip.is_ipv4(),
        RecordType::Aaaa => ip.is_ipv6(),
        _ => false,
    };
    let any_healthy = addrs.iter().any(|a| a.healthy);
    // Healthy nodes only; if none is healthy, every node (as ELB keeps all zones in DNS).
    let mut rrs: Vec<Rr> = addrs
        .iter()
        .filter(|a| (a.healthy || !any_healthy) && want(&a.ip))
        .map(|a| Rr {
            name: name.to_string(),
            ttl: flotilla_config::ALIAS_TTL,
            data: Data::Value(match a.ip {
                IpAddr::V4(v4) => RecordValue::A(v4),
                IpAddr::V6(v6) => RecordValue::Aaaa(v6),
            }),
        })
        .collect();
    // Rotated at random, as ELB's answers come: clients that take the first address spread
    // over the nodes.
    if rrs.len() > 1 {
        let turn = cx.rng.below(rrs.len() as u64) as usize;
        rrs.rotate_left(turn);
    }
    Got {
        rrs,
        healthy: any_healthy,
    }
}

/// Whether a name exists in a zone (for tests and the API).
pub fn exists(zone: &Zone, name: &str) -> bool {
    zone.name_state(name) != NameState::Absent
}
