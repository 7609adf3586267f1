//! The control plane's state as the runtime holds it: the sans-IO machines plus the facts
//! only the runtime knows (addresses and pids of launched instances), and `pump`, which
//! moves actions between the machines until they are quiet and returns the I/O to do.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_config::{LaunchTemplate, Matcher};
use flotilla_control::{
    ActivityStatus, AutoScalingGroup, GroupAction, HealthAction, InstanceId, TargetGroupHealth,
    TargetState, Time, ZoneDrill, ZoneDrills, ZoneEvent,
};
use flotilla_proxy::{RouteState, TargetUpdate};

use crate::persist::Persister;

/// Something the control plane asked for that needs I/O.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Start a process for a new instance.
    Launch {
        group: String,
        id: InstanceId,
        zone: String,
        /// The launch template version the group asked for, when this run still knows it
        /// (a rollback launches an earlier one); `None`: the config's current template.
        template: Option<LaunchTemplate>,
    },
    /// Gracefully stop an instance (stop signal, then SIGKILL after its stop timeout).
    Stop { id: InstanceId },
    /// SIGKILL an instance now (its zone had an outage).
    Kill { id: InstanceId },
    /// Run one health check.
    Probe {
        target_group: String,
        target: SocketAddr,
        check: ProbeSpec,
    },
}

/// How to probe a target group's targets.
#[derive(Clone, Debug)]
pub(crate) struct ProbeSpec {
    pub(crate) http_path: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) matcher: Matcher,
}

/// One auto scaling group and what the runtime needs to act for it.
pub(crate) struct GroupRuntime {
    pub(crate) asg: AutoScalingGroup,
    pub(crate) launch_template: String,
    /// The launch template's versions this run has seen, newest last (at most
    /// [`KEPT_TEMPLATE_VERSIONS`]), so an instance refresh can roll back to the previous one.
    templates: BTreeMap<u64, LaunchTemplate>,
    pub(crate) target_groups: Vec<String>,
    last_logged_activity: Option<u64>,
    /// Start-up progress: `None` once the group first had all its desired instances in
    /// service; until then the last (in service, desired) reported.
    startup: Option<(u32, u32)>,
    /// Activities written to the store while still in progress, to write again once finished.
    unfinished: Vec<u64>,
}

impl GroupRuntime {
    pub(crate) fn new(
        asg: AutoScalingGroup,
        launch_template: String,
        target_groups: Vec<String>,
    ) -> Self {
        Self {
            asg,
            launch_template,
            templates: BTreeMap::new(),
            target_groups,
            last_logged_activity: None,
            startup: Some((u32::MAX, u32::MAX)),
            unfinished: Vec::new(),
        }
    }
}

/// How many launch template versions a group remembers for rollbacks.
const KEPT_TEMPLATE_VERSIONS: usize = 8;

impl GroupRuntime {
    /// Remembers what `version` of the group's launch template is.
    pub(crate) fn record_template(&mut self, version: u64, template: LaunchTemplate) {
        self.templates.insert(version, template);
        while self.templates.len() > KEPT_TEMPLATE_VERSIONS {
            self.templates.pop_first();
        }
    }

    /// After a restart adopted instances may carry a launch template version above the one
    /// this run started with (1): the group continues from the newest of them, with the
    /// file's template as that version (the file is all a restarted run knows), so new
    /// launches are not taken for older than the running instances.
    pub(crate) fn continue_template_versions(&mut self) {
        let current = self.asg.spec().launch_template_version;
        let newest = self
            .asg
            .instances()
            .map(|i| i.launch_template_version)
            .max()
            .unwrap_or(current);
        if newest <= current {
            return;
        }
        if let Some(t) = self.templates.remove(&current) {
            self.templates.insert(newest, t);
        }
        self.asg.set_launch_template_version(newest);
    }

    /// The version number for a changed launch template: above every version seen, so a
    /// version a rollback left is never reused for different contents.
    pub(crate) fn next_template_version(&self) -> u64 {
        let seen = self.templates.keys().next_back().copied().unwrap_or(0);
        seen.max(self.asg.spec().launch_template_version) + 1
    }
}

/// One target group: its health machine and the data plane's view of it.
pub(crate) struct TargetGroupRuntime {
    pub(crate) health: TargetGroupHealth,
    pub(crate) proxy: Arc<flotilla_proxy::TargetGroup>,
    pub(crate) probe: ProbeSpec,
    dirty: bool,
}

impl TargetGroupRuntime {
    pub(crate) fn new(
        health: TargetGroupHealth,
        proxy: Arc<flotilla_proxy::TargetGroup>,
        probe: ProbeSpec,
    ) -> Self {
        Self {
            health,
            proxy,
            probe,
            dirty: true,
        }
    }
}

/// A launched instance's process facts.
#[derive(Clone, Debug)]
pub(crate) struct InstanceRecord {
    pub(crate) group: String,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) pid: Option<u32>,
}

/// Everything the control loop and the admin API share (behind one mutex, never held across I/O).
pub(crate) struct Control {
    pub(crate) groups: BTreeMap<String, GroupRuntime>,
    pub(crate) target_groups: BTreeMap<String, TargetGroupRuntime>,
    pub(crate) instances: HashMap<InstanceId, InstanceRecord>,
    by_address: HashMap<SocketAddr, InstanceId>,
    /// Instances being drained: how many target groups still drain them.
    draining: HashMap<InstanceId, usize>,
    /// Where changes are made durable (none in tests that do not need it).
    pub(crate) persist: Option<Persister>,
    /// The cluster's zones and the outage and zonal-shift drills on them (not durable: a
    /// restart ends them).
    pub(crate) zones: ZoneDrills,
    /// Scratch list for start-up progress updates (kept to avoid allocating per pump).
    startup_updates: Vec<(String, Option<(u32, u32)>)>,
    /// The durable state last written for each recorded instance (`persist::durable_state`),
    /// so a change (into or out of the warm pool, a launch hook wait) is written once.
    pub(crate) durable: HashMap<InstanceId, &'static str>,
}

impl Control {
    pub(crate) fn new(
        groups: BTreeMap<String, GroupRuntime>,
        target_groups: BTreeMap<String, TargetGroupRuntime>,
    ) -> Self {
        Self {
            groups,
            target_groups,
            instances: HashMap::new(),
            by_address: HashMap::new(),
            draining: HashMap::new(),
            persist: None,
            zones: ZoneDrills::default(),
            startup_updates: Vec::new(),
            durable: HashMap::new(),
        }
    }

    /// The instance a target address belongs to, if an auto scaling group registered it.
    pub(crate) fn instance_at(&self, addr: SocketAddr) -> Option<&InstanceId> {
        self.by_address.get(&addr)
    }

    /// Records where a launched instance listens and tells its group it is running.
    pub(crate) fn launched(
        &mut self,
        now: Time,
        group: &str,
        id: &InstanceId,
        address: SocketAddr,
        pid: u32,
        start_time: Option<u64>,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if !g.asg.instances().any(|i| &i.id == id) {
            // The group gave up on it meanwhile; the exit event will clean up the process.
            return;
        }
        self.record_process(group, id, address, pid);
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        g.asg.handle_launched(now, id);
        if let (Some(persist), Some(start_time)) = (&self.persist, start_time) {
            if let Some(i) = g.asg.instances().find(|i| &i.id == id) {
                let lifecycle = crate::persist::durable_state(i.lifecycle);
                self.durable.insert(id.clone(), lifecycle);
                persist.put_instance(flotilla_state::InstanceRecord {
                    id: id.to_string(),
                    group: group.to_string(),
                    zone: i.zone.clone(),
                    pid,
                    start_time,
                    address: address.to_string(),
                    launch_template_version: i.launch_template_version,
                    launched_at_ms: crate::persist::now_ms(),
                    protected_from_scale_in: i.protected_from_scale_in,
                    lifecycle: lifecycle.to_string(),
                });
            }
        }
    }

    /// Records the process facts of an instance adopted after a restart (its group has
    /// already taken it in with `adopt_instance`).
    pub(crate) fn record_adopted(
        &mut self,
        group: &str,
        id: &InstanceId,
        address: SocketAddr,
        pid: u32,
    ) {
        self.record_process(group, id, address, pid);
    }

    /// Where a running instance listens and its pid, indexed by address for target health.
    fn record_process(&mut self, group: &str, id: &InstanceId, address: SocketAddr, pid: u32) {
        self.instances.insert(
            id.clone(),
            InstanceRecord {
                group: group.to_string(),
                address: Some(address),
                pid: Some(pid),
            },
        );
        self.by_address.insert(address, id.clone());
    }

    pub(crate) fn launch_failed(&mut self, now: Time, group: &str, id: &InstanceId, reason: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.asg.handle_launch_failed(now, id, reason);
        }
    }

    /// A process exited (asked to or not).
    ///
    /// The record stays until the group lets go of the instance: the group's answer to an
    /// unexpected exit (deregistering the dead target) still needs its address.
    pub(crate) fn exited(&mut self, now: Time, id: &InstanceId, status: &str) {
        let Some(group) = self.instances.get(id).map(|r| r.group.clone()) else {
            return;
        };
        if let Some(g) = self.groups.get_mut(&group) {
            g.asg.handle_instance_exited(now, id, status);
        }
    }

    /// Writes the durable state of every recorded instance whose state changed class (into or
    /// out of the warm pool, into or out of a launch hook wait).
    fn persist_lifecycles(&mut self) {
        let Some(persist) = &self.persist else {
            return;
        };
        for g in self.groups.values() {
            for i in g.asg.instances() {
                let Some(known) = self.durable.get_mut(&i.id) else {
                    continue;
                };
                let now = crate::persist::durable_state(i.lifecycle);
                if *known != now {
                    *known = now;
                    persist.lifecycle(i.id.as_str(), now);
                }
            }
        }
    }

    /// Forgets instances their group no longer has, and addresses no target group lists.
    fn collect_garbage(&mut self) {
        let groups = &self.groups;
        let persist = &self.persist;
        self.instances.retain(|id, record| {
            let keep = groups
                .get(&record.group)
                .is_some_and(|g| g.asg.instances().any(|i| &i.id == id));
            if !keep && record.pid.is_some() {
                if let Some(p) = persist {
                    p.remove_instance(id.as_str());
                }
            }
            keep
        });
        let instances = &self.instances;
        self.draining.retain(|id, _| instances.contains_key(id));
        self.durable.retain(|id, _| instances.contains_key(id));
        let target_groups = &self.target_groups;
        self.by_address.retain(|addr, id| {
            instances.contains_key(id)
                || target_groups
                    .values()
                    .any(|tg| tg.health.state(*addr).is_some())
        });
    }

    /// Feeds a health check result to its target group.
    pub(crate) fn probed(
        &mut self,
        now: Time,
        target_group: &str,
        target: SocketAddr,
        result: flotilla_control::ProbeResult,
    ) {
        if let Some(tg) = self.target_groups.get_mut(target_group) {
            tg.health.handle_probe_result(now, target, result);
        }
    }

    /// Lets every machine act on the time that has passed.
    pub(crate) fn tick(&mut self, now: Time) {
        crate::scale_from_zero::activate(self, now);
        if self.zones.poll_timeout().is_some_and(|t| t <= now) {
            self.zones.handle_timeout(now);
        }
        for g in self.groups.values_mut() {
            if g.asg.poll_timeout().is_some_and(|t| t <= now) {
                g.asg.handle_timeout(now);
            }
        }
        for tg in self.target_groups.values_mut() {
            if tg.health.poll_timeout().is_some_and(|t| t <= now) {
                tg.health.handle_timeout(now);
            }
            // Draining finishes early once the data plane has nothing in flight to the target.
            let draining: Vec<SocketAddr> = tg
                .health
                .targets()
                .filter(|t| t.state == TargetState::Draining)
                .map(|t| t.target)
                .collect();
            for addr in draining {
                if tg.proxy.in_flight(addr).unwrap_or(0) == 0 {
                    tg.health.handle_target_idle(now, addr);
                }
            }
        }
    }

    /// Whether a target group is draining something (the loop then polls in-flight counts).
    pub(crate) fn any_draining(&self) -> bool {
        self.target_groups.values().any(|tg| {
            tg.health
                .targets()
                .any(|t| t.state == TargetState::Draining)
        })
    }

    /// The earliest time any machine wants `handle_timeout`.
    pub(crate) fn next_timeout(&self) -> Option<Time> {
        let groups = self.groups.values().filter_map(|g| g.asg.poll_timeout());
        let tgs = self
            .target_groups
            .values()
            .filter_map(|tg| tg.health.poll_timeout());
        groups.chain(tgs).chain(self.zones.poll_timeout()).min()
    }

    /// Moves actions between the machines until all are quiet; returns the I/O to perform.
    pub(crate) fn pump(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.apply_zone_events(now);
        loop {
            let mut progressed = false;
            let group_names: Vec<String> = self.groups.keys().cloned().collect();
            for name in &group_names {
                while let Some(action) = self.groups.get_mut(name).and_then(|g| g.asg.poll_action())
                {
                    progressed = true;
                    self.apply_group_action(now, name, action, &mut effects);
                }
            }
            let tg_names: Vec<String> = self.target_groups.keys().cloned().collect();
            for name in &tg_names {
                while let Some(action) = self
                    .target_groups
                    .get_mut(name)
                    .and_then(|tg| tg.health.poll_action())
                {
                    progressed = true;
                    self.apply_health_action(now, name, action, &mut effects);
                }
            }
            if !progressed {
                break;
            }
        }
        self.publish();
        self.log_activities();
        self.log_startup_progress();
        self.collect_garbage();
        self.persist_lifecycles();
        effects
    }

    /// Carries out zone drills that started or ended: an outage goes to every group (which
    /// kills its instances there and launches elsewhere; or launches there again and
    /// rebalances), a zonal shift to every target group's data plane.
    pub(crate) fn apply_zone_events(&mut self, now: Time) {
        while let Some(event) = self.zones.poll_event() {
            match event {
                ZoneEvent::Started {
                    zone,
                    drill: ZoneDrill::Outage,
                    ..
                } => {
                    tracing::warn!(zone = zone.as_str(), "zone outage drill: {zone} is down");
                    let cause = format!("a zone outage drill took {zone} down");
                    for g in self.groups.values_mut() {
                        g.asg.handle_zone_outage(now, &zone, &cause);
                    }
                }
                ZoneEvent::Ended {
                    zone,
                    drill: ZoneDrill::Outage,
                    early,
                } => {
                    tracing::warn!(
                        zone = zone.as_str(),
                        "zone outage drill over{}: {zone} takes launches again",
                        if early { " (ended early)" } else { "" }
                    );
                    for g in self.groups.values_mut() {
                        g.asg.handle_zone_recovered(now, &zone);
                    }
                }
                ZoneEvent::Started {
                    zone,
                    drill: ZoneDrill::Shift,
                    ..
                } => {
                    tracing::warn!(
                        zone = zone.as_str(),
                        "zonal shift: no new traffic to {zone}"
                    );
                    self.publish_shifted_zones();
                }
                ZoneEvent::Ended {
                    zone,
                    drill: ZoneDrill::Shift,
                    early,
                } => {
                    tracing::warn!(
                        zone = zone.as_str(),
                        "zonal shift over{}: {zone} gets traffic again",
                        if early { " (ended early)" } else { "" }
                    );
                    self.publish_shifted_zones();
                }
            }
        }
    }

    /// Tells every target group's data plane which zones are shifted away from.
    pub(crate) fn publish_shifted_zones(&self) {
        let shifted: Vec<String> = self.zones.shifted_zones().map(str::to_string).collect();
        for tg in self.target_groups.values() {
            tg.proxy.set_shifted_zones(shifted.clone());
        }
    }

    fn apply_group_action(
        &mut self,
        now: Time,
        group: &str,
        action: GroupAction,
        effects: &mut Vec<Effect>,
    ) {
        match action {
            GroupAction::Launch {
                id,
                zone,
                launch_template_version,
            } => {
                let template = self
                    .groups
                    .get(group)
                    .and_then(|g| g.templates.get(&launch_template_version))
                    .cloned();
                self.instances.insert(
                    id.clone(),
                    InstanceRecord {
                        group: group.to_string(),
                        address: None,
                        pid: None,
                    },
                );
                effects.push(Effect::Launch {
                    group: group.to_string(),
                    id,
                    zone,
                    template,
                });
            }
            GroupAction::RegisterTargets { id } => {
                let addr = self.instances.get(&id).and_then(|r| r.address);
                let tgs = self
                    .groups
                    .get(group)
                    .map(|g| g.target_groups.clone())
                    .unwrap_or_default();
                if let Some(addr) = addr {
                    for name in &tgs {
                        if let Some(tg) = self.target_groups.get_mut(name) {
                            tg.health.register(now, addr);
                            tg.dirty = true;
                        }
                    }
                }
            }
            GroupAction::DeregisterTargets { id } => {
                let addr = self.instances.get(&id).and_then(|r| r.address);
                let tgs = self
                    .groups
                    .get(group)
                    .map(|g| g.target_groups.clone())
                    .unwrap_or_default();
                match addr {
                    Some(addr) if !tgs.is_empty() => {
                        let mut count = 0;
                        for name in &tgs {
                            if let Some(tg) = self.target_groups.get_mut(name) {
                                tg.health.deregister(now, addr);
                                tg.dirty = true;
                                count += 1;
                            }
                        }
                        if count > 0 {
                            self.draining.insert(id, count);
                        } else if let Some(g) = self.groups.get_mut(group) {
                            g.asg.handle_drained(now, &id);
                        }
                    }
                    _ => {
                        if let Some(g) = self.groups.get_mut(group) {
                            g.asg.handle_drained(now, &id);
                        }
                    }
                }
            }
            GroupAction::Terminate { id } => effects.push(Effect::Stop { id }),
            GroupAction::Kill { id } => effects.push(Effect::Kill { id }),
        }
    }

    fn apply_health_action(
        &mut self,
        now: Time,
        tg_name: &str,
        action: HealthAction,
        effects: &mut Vec<Effect>,
    ) {
        match action {
            HealthAction::Probe { target } => {
                if let Some(tg) = self.target_groups.get(tg_name) {
                    effects.push(Effect::Probe {
                        target_group: tg_name.to_string(),
                        target,
                        check: tg.probe.clone(),
                    });
                }
            }
            HealthAction::StateChanged {
                target,
                from,
                to,
                reason,
            } => {
                if let Some(tg) = self.target_groups.get_mut(tg_name) {
                    tg.dirty = true;
                }
                let instance = self.by_address.get(&target).cloned();
                tracing::info!(
                    target_group = tg_name,
                    target = %target,
                    instance = instance.as_ref().map(|i| i.to_string()).unwrap_or_default(),
                    "target {} → {}{}",
                    from.as_str(),
                    to.as_str(),
                    reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                );
                let healthy = match to {
                    TargetState::Healthy => true,
                    TargetState::Unhealthy => false,
                    _ => return,
                };
                if let Some(id) = instance {
                    if let Some(group) = self.instances.get(&id).map(|r| r.group.clone()) {
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.asg.handle_target_health(
                                now,
                                &id,
                                healthy,
                                reason.as_deref().unwrap_or(""),
                            );
                        }
                    }
                }
            }
            HealthAction::DrainComplete { target } => {
                if let Some(tg) = self.target_groups.get_mut(tg_name) {
                    tg.dirty = true;
                }
                let Some(id) = self.by_address.get(&target).cloned() else {
                    return;
                };
                let done = match self.draining.get_mut(&id) {
                    Some(left) => {
                        *left = left.saturating_sub(1);
                        *left == 0
                    }
                    None => false,
                };
                if done {
                    self.draining.remove(&id);
                    if let Some(group) = self.instances.get(&id).map(|r| r.group.clone()) {
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.asg.handle_drained(now, &id);
                        }
                    }
                }
            }
        }
    }

    /// Pushes changed target sets to the data plane (an atomic snapshot swap there).
    pub(crate) fn publish(&mut self) {
        for tg in self.target_groups.values_mut().filter(|tg| tg.dirty) {
            tg.dirty = false;
            let updates = tg
                .health
                .targets()
                .filter_map(|t| {
                    let state = match t.state {
                        TargetState::Initial => RouteState::Initial,
                        TargetState::Healthy => RouteState::Healthy,
                        TargetState::Unhealthy => RouteState::Unhealthy,
                        TargetState::Draining => RouteState::Draining,
                        TargetState::Unused => return None,
                    };
                    let instance = self.by_address.get(&t.target);
                    let zone = instance.and_then(|id| zone_of(&self.groups, &self.instances, id));
                    Some(TargetUpdate {
                        addr: t.target,
                        instance_id: instance.map(|i| i.to_string()),
                        zone,
                        state,
                    })
                })
                .collect();
            tg.proxy.update(updates);
        }
    }

    /// While `flotilla up` brings the first instances into service, says how far each group
    /// is ("web: 2 of 3 instances in service (az-a, az-b)"), then once that it is ready.
    fn log_startup_progress(&mut self) {
        for (name, g) in self.groups.iter() {
            let Some(last) = g.startup else {
                continue;
            };
            let desired = g.asg.desired_capacity();
            // Ready = in service and, when the group has target groups, healthy in all of them.
            let mut zones: Vec<&str> = g
                .asg
                .instances()
                .filter(|i| i.lifecycle == flotilla_control::LifecycleState::InService)
                .filter(|i| {
                    let addr = self.instances.get(&i.id).and_then(|r| r.address);
                    g.target_groups.iter().all(|tg| {
                        addr.zip(self.target_groups.get(tg))
                            .is_some_and(|(a, tg)| tg.health.state(a) == Some(TargetState::Healthy))
                    })
                })
                .map(|i| i.zone.as_str())
                .collect();
            zones.sort_unstable();
            let ready = u32::try_from(zones.len()).unwrap_or(u32::MAX);
            if (ready, desired) == last {
                continue;
            }
            let line = if ready >= desired {
                format!("{name}: all {desired} instance(s) in service and healthy — ready")
            } else if zones.is_empty() {
                format!("{name}: 0 of {desired} instance(s) in service and healthy")
            } else {
                format!(
                    "{name}: {ready} of {desired} instance(s) in service and healthy ({})",
                    zones.join(", ")
                )
            };
            tracing::info!(group = name.as_str(), "{line}");
            self.startup_updates
                .push((name.clone(), (ready < desired).then_some((ready, desired))));
        }
        for (name, state) in self.startup_updates.drain(..) {
            if let Some(g) = self.groups.get_mut(&name) {
                g.startup = state;
            }
        }
    }

    /// Writes each new activity to the log once, so the console explains every decision, and
    /// to the durable store (again when an in-progress one finishes).
    fn log_activities(&mut self) {
        for (name, g) in self.groups.iter_mut() {
            if let Some(p) = &self.persist {
                let asg = &g.asg;
                g.unfinished.retain(|id| {
                    match asg.activities().find(|a| a.id == *id) {
                        Some(a) if a.status != ActivityStatus::InProgress => {
                            p.activity(name, a);
                            false
                        }
                        Some(_) => true,
                        None => false, // forgotten (the in-memory history is bounded)
                    }
                });
            }
            let newest = g.asg.activities().next().map(|a| a.id);
            let mut fresh: Vec<_> = g
                .asg
                .activities()
                .take_while(|a| Some(a.id) > g.last_logged_activity)
                .collect();
            fresh.reverse();
            for a in fresh {
                tracing::info!(group = name.as_str(), "{} — {}", a.description, a.cause);
                if let Some(p) = &self.persist {
                    p.activity(name, a);
                    if a.status == ActivityStatus::InProgress {
                        g.unfinished.push(a.id);
                    }
                }
            }
            if newest.is_some() {
                g.last_logged_activity = newest;
            }
        }
    }
}

/// Zone of an instance, from its group's record of it.
pub(crate) fn zone_of(
    groups: &BTreeMap<String, GroupRuntime>,
    instances: &HashMap<InstanceId, InstanceRecord>,
    id: &InstanceId,
) -> Option<String> {
    let group = &instances.get(id)?.group;
    groups
        .get(group)?
        .asg
        .instances()
        .find(|i| &i.id == id)
        .map(|i| i.zone.clone())
}
