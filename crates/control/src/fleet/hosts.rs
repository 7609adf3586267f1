//! The compute hosts a cluster-mode leader places instances on — their zones, slots and
//! liveness — and the two decisions about them: where a new instance goes (placement) and when
//! a host that stopped renewing its lease is lost for good (host loss).
//!
//! Host loss follows Kubernetes' node lifecycle controller: a host is lost `grace` after its
//! lease was seen to expire; a zone where most hosts are down at once (a partition, a power
//! cut) is a *disrupted* zone whose hosts are declared lost one per `zone_interval` rather than
//! all at once; and when every zone is disrupted the fault is more likely on our side (the
//! leader's network, the store) than in the whole fleet, so nothing is declared lost at all.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::id::InstanceId;
use crate::time::Time;

/// A zone is disrupted when at least this share of its compute hosts is down (Kubernetes'
/// `unhealthy-zone-threshold`).
pub const ZONE_DISRUPTION_THRESHOLD: f64 = 0.55;

/// A compute host as it registered: where it is and how much it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// Its zone.
    pub zone: String,
    /// The address its instances listen on.
    pub address: IpAddr,
    /// How many instances it runs at most.
    pub slots: u32,
}

/// One host as the operator surface shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStatus {
    /// Its name.
    pub name: String,
    /// Its registration.
    pub spec: HostSpec,
    /// Its lease is alive.
    pub alive: bool,
    /// When its lease was seen to go, while it is down.
    pub down_since: Option<Time>,
    /// Declared lost: its instances were replaced.
    pub lost: bool,
    /// Instances assigned to it.
    pub instances: usize,
}

#[derive(Clone, Debug)]
struct Host {
    spec: HostSpec,
    alive: bool,
    down_since: Option<Time>,
    lost: bool,
    /// Instances assigned here, with their group (its name shared by every instance of it).
    instances: BTreeMap<InstanceId, Arc<str>>,
}

impl Host {
    fn free(&self) -> u32 {
        self.spec
            .slots
            .saturating_sub(u32::try_from(self.instances.len()).unwrap_or(u32::MAX))
    }

    fn of_group(&self, group: &str) -> usize {
        self.instances.values().filter(|g| &***g == group).count()
    }
}

/// Every compute host the leader knows, with the decisions about them.
#[derive(Debug)]
pub(crate) struct Hosts {
    hosts: BTreeMap<String, Host>,
    grace: Duration,
    zone_interval: Duration,
    /// When a host of a disrupted zone was last declared lost, per zone.
    last_declared: BTreeMap<String, Time>,
    /// Why losses are held back, as last logged (so it is logged once per change).
    held: Option<String>,
    /// Each group's name, once: every host's instances refer to it (a copy of the name per
    /// instance cost an allocation each when a new leader adopts 10,000).
    group_names: Vec<Arc<str>>,
}

impl Hosts {
    pub(crate) fn new(grace: Duration, zone_interval: Duration) -> Self {
        Hosts {
            hosts: BTreeMap::new(),
            grace,
            zone_interval,
            last_declared: BTreeMap::new(),
            held: None,
            group_names: Vec::new(),
        }
    }

    /// The host registered (again): it takes instances. Returns true when it had been declared
    /// lost (its old instances were replaced; its agent stops them).
    pub(crate) fn up(&mut self, name: &str, spec: HostSpec) -> bool {
        let h = self.hosts.entry(name.to_string()).or_insert_with(|| Host {
            spec: spec.clone(),
            alive: true,
            down_since: None,
            lost: false,
            instances: BTreeMap::new(),
        });
        let healed = h.lost;
        h.spec = spec;
        h.alive = true;
        h.down_since = None;
        h.lost = false;
        healed
    }

    /// The host's lease went (expired or revoked): its grace starts now.
    pub(crate) fn down(&mut self, now: Time, name: &str) {
        if let Some(h) = self.hosts.get_mut(name) {
            if h.alive {
                h.alive = false;
                h.down_since = Some(now);
            }
        }
    }

    /// A host an assignment names but that has not registered (a new leader found its
    /// instances after the host went): down from now, so its grace starts now.
    pub(crate) fn ensure(&mut self, now: Time, name: &str, zone: &str) {
        // Asked once per adopted instance: no copy of the name unless the host is new.
        if self.hosts.contains_key(name) {
            return;
        }
        self.hosts.insert(
            name.to_string(),
            Host {
                spec: HostSpec {
                    zone: zone.to_string(),
                    address: IpAddr::from([0, 0, 0, 0]),
                    slots: 0,
                },
                alive: false,
                down_since: Some(now),
                lost: false,
                instances: BTreeMap::new(),
            },
        );
    }

    /// The host of `zone` where the next instance of `group` goes: alive, with a free slot,
    /// not `suspect` (the balancers fail every instance it runs: its lease may just not have
    /// run out yet); fewest instances of the group, then most free slots, then by name.
    pub(crate) fn place(
        &self,
        group: &str,
        zone: &str,
        suspect: impl Fn(&str) -> bool,
    ) -> Option<String> {
        // Best first, and `suspect` (a look at every instance of the host) asked only until
        // one passes: a zone has hundreds of candidates.
        let mut candidates: Vec<_> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.alive && !h.lost && h.spec.zone == zone && h.free() > 0)
            .map(|(name, h)| ((h.of_group(group), std::cmp::Reverse(h.free()), name), name))
            .collect();
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        candidates
            .into_iter()
            .find(|(_, name)| !suspect(name))
            .map(|(_, name)| name.clone())
    }

    /// An instance a previous leader assigned to `host` (of `zone`): assigned here too, the
    /// host taken in as down if it has not registered (see [`ensure`](Self::ensure)). One
    /// lookup of the host when it is known: a new leader adopts 10,000 instances at once.
    pub(crate) fn adopt(
        &mut self,
        now: Time,
        host: &str,
        zone: &str,
        id: &InstanceId,
        group: &str,
    ) {
        let group = self.group_name(group);
        if let Some(h) = self.hosts.get_mut(host) {
            h.instances.insert(id.clone(), group);
            return;
        }
        self.ensure(now, host, zone);
        if let Some(h) = self.hosts.get_mut(host) {
            h.instances.insert(id.clone(), group);
        }
    }

    pub(crate) fn assign(&mut self, host: &str, id: &InstanceId, group: &str) {
        let group = self.group_name(group);
        if let Some(h) = self.hosts.get_mut(host) {
            h.instances.insert(id.clone(), group);
        }
    }

    /// The shared name of `group` (a handful of groups: a scan finds it).
    fn group_name(&mut self, group: &str) -> Arc<str> {
        if let Some(name) = self.group_names.iter().find(|n| &***n == group) {
            return Arc::clone(name);
        }
        let name: Arc<str> = group.into();
        self.group_names.push(Arc::clone(&name));
        name
    }

    pub(crate) fn release(&mut self, host: &str, id: &InstanceId) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.instances.remove(id);
        }
    }

    /// The address instances of `host` listen on, while it is registered.
    pub(crate) fn address(&self, host: &str) -> Option<IpAddr> {
        self.hosts
            .get(host)
            .filter(|h| h.spec.slots > 0 || h.alive)
            .map(|h| h.spec.address)
    }

    /// The instances assigned to `host`.
    pub(crate) fn instances_of(&self, host: &str) -> Vec<InstanceId> {
        self.hosts
            .get(host)
            .map(|h| h.instances.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// (down, all) compute hosts per zone.
    fn zones(&self) -> BTreeMap<String, (usize, usize)> {
        let mut zones: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for h in self.hosts.values() {
            let z = zones.entry(h.spec.zone.clone()).or_default();
            z.1 += 1;
            if !h.alive {
                z.0 += 1;
            }
        }
        zones
    }

    fn disrupted((down, all): (usize, usize)) -> bool {
        all > 0 && down as f64 >= ZONE_DISRUPTION_THRESHOLD * all as f64
    }

    /// Whether every zone with hosts is disrupted: then nothing is declared lost.
    fn all_disrupted(zones: &BTreeMap<String, (usize, usize)>) -> bool {
        !zones.is_empty() && zones.values().all(|z| Self::disrupted(*z))
    }

    /// When a down host's loss may be declared, ignoring the all-zones rule.
    fn due_at(&self, h: &Host, zones: &BTreeMap<String, (usize, usize)>) -> Option<Time> {
        if h.alive || h.lost {
            return None;
        }
        let mut at = h.down_since? + self.grace;
        let zone = zones.get(&h.spec.zone).copied().unwrap_or_default();
        if Self::disrupted(zone) {
            if let Some(last) = self.last_declared.get(&h.spec.zone) {
                at = at.max(*last + self.zone_interval);
            }
        }
        Some(at)
    }

    /// When [`declare_losses`](Self::declare_losses) has something to do next.
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        let zones = self.zones();
        if Self::all_disrupted(&zones) {
            return None; // held until a host comes back or registers
        }
        self.hosts
            .values()
            .filter_map(|h| self.due_at(h, &zones))
            .min()
    }

    /// Declares lost, and returns, the hosts whose grace (and their zone's rate limit) has
    /// passed; none while every zone is disrupted. Within a disrupted zone at most one host
    /// per `zone_interval`.
    pub(crate) fn declare_losses(&mut self, now: Time) -> Vec<String> {
        let zones = self.zones();
        if Self::all_disrupted(&zones) {
            let why = format!(
                "every zone has most of its compute hosts down ({}): holding back host loss; \
                 nothing is replaced until hosts return",
                zones
                    .iter()
                    .map(|(z, (d, a))| format!("{z} {d}/{a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if self.held.as_deref() != Some(why.as_str()) {
                tracing::warn!(reason = why.as_str(), "host loss held back");
                self.held = Some(why);
            }
            return Vec::new();
        }
        self.held = None;
        let mut due: Vec<(Time, String)> = self
            .hosts
            .iter()
            .filter_map(|(n, h)| self.due_at(h, &zones).map(|t| (t, n.clone())))
            .filter(|(t, _)| *t <= now)
            .collect();
        due.sort();
        let mut lost = Vec::new();
        for (_, name) in due {
            let Some(h) = self.hosts.get(&name) else {
                continue;
            };
            let zone = h.spec.zone.clone();
            if Self::disrupted(zones.get(&zone).copied().unwrap_or_default()) {
                // Re-checked here: another host of the zone may have been declared above.
                if self
                    .last_declared
                    .get(&zone)
                    .is_some_and(|t| now < *t + self.zone_interval)
                {
                    continue;
                }
                self.last_declared.insert(zone, now);
            }
            if let Some(h) = self.hosts.get_mut(&name) {
                h.lost = true;
            }
            lost.push(name);
        }
        lost
    }

    /// How long `host` has been down, for messages.
    pub(crate) fn down_for(&self, now: Time, host: &str) -> Duration {
        self.hosts
            .get(host)
            .and_then(|h| h.down_since)
            .map_or(Duration::ZERO, |t| now.saturating_since(t))
    }

    /// Every host, by name.
    pub(crate) fn statuses(&self) -> Vec<HostStatus> {
        self.hosts
            .iter()
            .map(|(name, h)| HostStatus {
                name: name.clone(),
                spec: h.spec.clone(),
                alive: h.alive,
                down_since: h.down_since,
                lost: h.lost,
                instances: h.instances.len(),
            })
            .collect()
    }
}
