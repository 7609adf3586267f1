//! The data plane's target groups as the runtime holds them: built from the config, told the
//! cluster's routing decisions (targets, shifted zones, held requests), and how their targets
//! are probed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_config::{Config, Matcher};
use flotilla_control::{RoutedTarget, TargetState};
use flotilla_proxy::{HoldConfig, RouteState, TargetGroup, TargetGroupSettings, TargetUpdate};

use crate::shared::lock;

/// At most this many requests wait at once for a group scaling from zero; each waits at most
/// this long (then 503). Long enough for a process to start and pass its first health check.
const HOLD: HoldConfig = HoldConfig {
    max_waiting: 1024,
    timeout: Duration::from_secs(30),
};

/// How to probe a target group's targets.
#[derive(Clone, Debug)]
pub(crate) struct ProbeSpec {
    pub(crate) http_path: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) matcher: Matcher,
}

impl ProbeSpec {
    fn from_config(tg: &flotilla_config::TargetGroup) -> Self {
        let hc = &tg.health_check;
        ProbeSpec {
            http_path: (hc.protocol == flotilla_config::Protocol::Http).then(|| hc.path.clone()),
            timeout: hc.timeout,
            matcher: hc.matcher.clone(),
        }
    }
}

struct Entry {
    proxy: Arc<TargetGroup>,
    probe: ProbeSpec,
    proxy_protocol_v2: bool,
}

/// Every data-plane target group, by name.
#[derive(Default)]
pub(crate) struct DataPlane {
    groups: Mutex<BTreeMap<String, Entry>>,
    /// Zones no new traffic goes to, applied to target groups added later too.
    shifted: Mutex<Vec<String>>,
}

fn entry(config: &Config, name: &str, tg: &flotilla_config::TargetGroup) -> Entry {
    Entry {
        proxy: TargetGroup::with_settings(
            name.to_string(),
            TargetGroupSettings::from_config(tg, config.target_group_cross_zone(name)),
        ),
        probe: ProbeSpec::from_config(tg),
        proxy_protocol_v2: tg.proxy_protocol_v2,
    }
}

impl DataPlane {
    pub(crate) fn from_config(config: &Config) -> Self {
        let groups = config
            .target_groups
            .iter()
            .map(|(name, tg)| (name.clone(), entry(config, name, tg)))
            .collect();
        DataPlane {
            groups: Mutex::new(groups),
            shifted: Mutex::new(Vec::new()),
        }
    }

    /// The target groups by name, what listener rules are compiled against.
    pub(crate) fn proxy_groups(&self) -> HashMap<String, Arc<TargetGroup>> {
        lock(&self.groups)
            .iter()
            .map(|(n, e)| (n.clone(), Arc::clone(&e.proxy)))
            .collect()
    }

    /// One target group.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<TargetGroup>> {
        lock(&self.groups).get(name).map(|e| Arc::clone(&e.proxy))
    }

    /// Whether TCP flows to `name` start with a PROXY protocol v2 header.
    pub(crate) fn proxy_protocol_v2(&self, name: &str) -> bool {
        lock(&self.groups)
            .get(name)
            .is_some_and(|e| e.proxy_protocol_v2)
    }

    /// How `name`'s targets are probed.
    pub(crate) fn probe_spec(&self, name: &str) -> Option<ProbeSpec> {
        lock(&self.groups).get(name).map(|e| e.probe.clone())
    }

    /// Routes `name` by `targets` from now on (one atomic snapshot swap in the proxy).
    pub(crate) fn publish_targets(&self, name: &str, targets: Vec<RoutedTarget>) {
        let Some(tg) = self.get(name) else { return };
        let updates = targets
            .into_iter()
            .filter_map(|t| {
                let state = match t.state {
                    TargetState::Initial => RouteState::Initial,
                    TargetState::Healthy => RouteState::Healthy,
                    TargetState::Unhealthy => RouteState::Unhealthy,
                    TargetState::Draining => RouteState::Draining,
                    TargetState::Unused => return None,
                };
                Some(TargetUpdate {
                    addr: t.address,
                    instance_id: t.instance.map(|i| i.to_string()),
                    zone: t.zone.map(|z| z.to_string()),
                    state,
                })
            })
            .collect();
        tg.update(updates);
    }

    /// No new traffic to `zones` in any target group.
    pub(crate) fn set_shifted_zones(&self, zones: Vec<String>) {
        for e in lock(&self.groups).values() {
            e.proxy.set_shifted_zones(zones.clone());
        }
        *lock(&self.shifted) = zones;
    }

    /// Holds requests `name` cannot route yet; `on_demand` runs when one starts waiting.
    pub(crate) fn hold_requests(&self, name: &str, on_demand: impl Fn() + Send + Sync + 'static) {
        if let Some(tg) = self.get(name) {
            tg.enable_hold(HOLD, Arc::new(on_demand));
        }
    }

    /// Requests in flight to `target` in `name`.
    pub(crate) fn in_flight(&self, name: &str, target: SocketAddr) -> usize {
        self.get(name)
            .and_then(|tg| tg.in_flight(target))
            .unwrap_or(0)
    }

    /// Requests held in `name` for want of a target.
    pub(crate) fn held_requests(&self, name: &str) -> usize {
        self.get(name).map_or(0, |tg| tg.held_requests())
    }

    /// Brings the target groups to `new`: adds new ones (with any zonal shift in force),
    /// takes new probe settings and cross-zone switches, and rebuilds the ones whose balancing
    /// settings changed (algorithm, slow start, stickiness, protocol version, connect and
    /// per-try timeouts: the proxy builds those once). Returns one line per change and the rebuilt groups' names, whose targets
    /// must be published again and whose listeners recompiled. Removed groups go in
    /// [`remove_absent`](Self::remove_absent), after listeners stop naming them.
    pub(crate) fn reconfigure(&self, old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
        let mut changes = Vec::new();
        let mut replaced = Vec::new();
        let shifted = lock(&self.shifted).clone();
        let mut groups = lock(&self.groups);
        for (name, tg) in &new.target_groups {
            let rebuilt = old.target_groups.get(name).is_some_and(|o| {
                (
                    o.protocol_version,
                    o.algorithm,
                    o.slow_start,
                    o.stickiness,
                    o.connect_timeout,
                    o.per_try_timeout,
                ) != (
                    tg.protocol_version,
                    tg.algorithm,
                    tg.slow_start,
                    tg.stickiness,
                    tg.connect_timeout,
                    tg.per_try_timeout,
                )
            });
            match groups.get_mut(name) {
                Some(e) if !rebuilt => {
                    e.probe = ProbeSpec::from_config(tg);
                    let cross_zone = new.target_group_cross_zone(name);
                    if cross_zone != old.target_group_cross_zone(name) {
                        e.proxy.set_cross_zone(cross_zone);
                        changes.push(format!(
                            "target group {name}: cross-zone load balancing {}",
                            if cross_zone { "on" } else { "off" }
                        ));
                    }
                }
                _ => {
                    let e = entry(new, name, tg);
                    e.proxy.set_shifted_zones(shifted.clone());
                    if groups.insert(name.clone(), e).is_some() {
                        replaced.push(name.clone());
                    }
                }
            }
        }
        (changes, replaced)
    }

    /// Forgets target groups `new` no longer has (requests in flight to them finish: the
    /// routing tables hold their own reference until they do).
    pub(crate) fn remove_absent(&self, new: &Config) {
        lock(&self.groups).retain(|name, _| new.target_groups.contains_key(name));
    }

    /// Every target group with its counters, for the sampler and `/metrics`.
    pub(crate) fn each(&self) -> Vec<(String, Arc<TargetGroup>)> {
        lock(&self.groups)
            .iter()
            .map(|(n, e)| (n.clone(), Arc::clone(&e.proxy)))
            .collect()
    }
}
