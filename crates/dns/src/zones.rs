//! The hosted zones as the answer code reads them: record sets indexed by owner name, an
//! immutable snapshot swapped whole on reload or API change.

use std::collections::{BTreeMap, HashMap, HashSet};

use flotilla_config::dns::{Dns, HostedZone, RecordSet, RecordType};

use crate::location::Locations;

/// Every hosted zone, indexed for lookups.
#[derive(Debug, Default)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    /// Resolver networks and the line the locations lie on.
    pub locations: Locations,
}

/// One hosted zone and its record sets by owner name.
#[derive(Debug)]
pub struct Zone {
    /// Its configuration (SOA fields, name servers, record sets in file order).
    pub config: HostedZone,
    /// Indexes into `config.records` by owner name, in file order.
    by_name: HashMap<String, Vec<usize>>,
    /// Every proper ancestor of an owner name (so empty non-terminals are found without a
    /// scan of the names).
    above_owners: HashSet<String>,
    /// `*.PARENT` owner names by `PARENT` (so wildcards are found without formatting one).
    wildcards: HashMap<String, String>,
}

/// What is at a name, for answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameState {
    /// Record sets exist at the name.
    Exists,
    /// No record sets, but names below it exist (an empty non-terminal).
    EmptyNonTerminal,
    /// Nothing at or below the name.
    Absent,
}

impl ZoneSet {
    /// Indexes the zones of `[dns]`.
    pub fn new(dns: &Dns) -> Self {
        let mut zones: Vec<Zone> = dns.zones.values().map(|z| Zone::new(z.clone())).collect();
        // Longest apex first: the most specific zone answers for a name.
        zones.sort_by_key(|z| std::cmp::Reverse(z.config.name.len()));
        ZoneSet {
            zones,
            locations: Locations::new(dns),
        }
    }

    /// The zone authoritative for `name` (lowercase, no trailing dot), if any.
    pub fn zone_for(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| in_zone(name, &z.config.name))
    }

    /// Every zone, most specific first.
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    /// The zone named exactly `name`.
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.config.name == name)
    }

    /// A copy with one zone's record sets replaced (the admin API's changes).
    pub fn with_records(&self, zone: &str, records: Vec<RecordSet>) -> Option<ZoneSet> {
        let mut zones = Vec::with_capacity(self.zones.len());
        let mut found = false;
        for z in &self.zones {
            let mut config = z.config.clone();
            if config.name == zone {
                config.records = records.clone();
                config.serial = config.serial.wrapping_add(1);
                found = true;
            }
            zones.push(Zone::new(config));
        }
        found.then(|| ZoneSet {
            zones,
            locations: self.locations.clone(),
        })
    }
}

/// Whether `name` is `zone` or below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

impl Zone {
    fn new(config: HostedZone) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut above_owners = HashSet::new();
        let mut wildcards = HashMap::new();
        for (i, r) in config.records.iter().enumerate() {
            by_name.entry(r.name.clone()).or_default().push(i);
            if let Some(parent) = r.name.strip_prefix("*.") {
                wildcards.insert(parent.to_string(), r.name.clone());
            }
            let mut rest = r.name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                above_owners.insert(parent.to_string());
                rest = parent;
            }
        }
        Zone {
            config,
            by_name,
            above_owners,
            wildcards,
        }
    }

    /// The apex.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The record sets at `name` of type `rtype`, in file order.
    pub fn sets(&self, name: &str, rtype: RecordType) -> Vec<&RecordSet> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.config.records[i])
            .filter(|r| r.rtype == rtype)
            .collect()
    }

    /// Every record type present at `name`.
    pub fn types_at(&self, name: &str) -> Vec<RecordType> {
        let mut types: Vec<RecordType> = self
            .by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| self.config.records[i].rtype)
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Whether anything is at or below `name`.
    pub fn name_state(&self, name: &str) -> NameState {
        if name == self.config.name || self.by_name.contains_key(name) {
            return NameState::Exists;
        }
        if self.above_owners.contains(name) {
            NameState::EmptyNonTerminal
        } else {
            NameState::Absent
        }
    }

    /// The owner name that answers for `name`: itself when something is there, else the
    /// closest wildcard `*.ANCESTOR` (RFC 4592: only while no closer ancestor exists).
    /// Borrowed, not built: it is asked on every query the full path answers.
    pub fn owner_for<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        if self.name_state(name) != NameState::Absent {
            return Some(name);
        }
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if !in_zone(parent, &self.config.name) {
                break;
            }
            if let Some(wildcard) = self.wildcards.get(parent) {
                return Some(wildcard);
            }
            if self.name_state(parent) != NameState::Absent {
                break;
            }
            rest = parent;
        }
        None
    }

    /// Record sets grouped by (name, type), for the API.
    pub fn grouped(&self) -> BTreeMap<(String, RecordType), Vec<&RecordSet>> {
        let mut out: BTreeMap<(String, RecordType), Vec<&RecordSet>> = BTreeMap::new();
        for r in &self.config.records {
            out.entry((r.name.clone(), r.rtype)).or_default().push(r);
        }
        out
    }
}
