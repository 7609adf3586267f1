//! How the machines talk to each other: a group's register/deregister reaches its target
//! groups, a target group's verdict reaches the group, zone drills reach every group, and what
//! needs I/O becomes an [`Effect`].

use std::net::SocketAddr;

use crate::group::{ActivityStatus, GroupAction, LifecycleState};
use crate::health::{HealthAction, TargetState};
use crate::id::InstanceId;
use crate::time::Time;
use crate::zones::{ZoneDrill, ZoneEvent};

use super::effect::{durable_state, Durable, Effect, LaunchRequest, RoutedTarget};
use super::{Cluster, Member, TargetGroupState};

/// How often start-up progress is checked at most.
const STARTUP_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Cluster {
    /// Moves actions between the machines until all are quiet, queueing the effects; then
    /// publishes changed routing tables, reports activities and forgets what is gone.
    pub(crate) fn pump(&mut self, now: Time) {
        self.apply_zone_events(now);
        loop {
            // Most events leave every machine quiet: no pass that allocates then.
            let busy = self.groups.values().any(|g| g.asg.has_actions())
                || self
                    .target_groups
                    .values()
                    .any(|tg| tg.health.has_actions());
            if !busy {
                break;
            }
            let mut progressed = false;
            // Each machine's queue is taken a batch at a time and applied in order; what an
            // action queues on the same machine comes after the batch, as it would one by one
            // (a lookup of the machine by name per action was a tenth of a new leader's cycle).
            let names: Vec<String> = self.groups.keys().cloned().collect();
            for name in &names {
                loop {
                    // Taken only when it has some: a mutable borrow forgets the group's kept
                    // wake-up (cluster/watched.rs), and most pumps carry a probe, not a group
                    // action.
                    let batch = self
                        .groups
                        .get_mut(name)
                        .filter(|g| g.asg.has_actions())
                        .map(|g| g.asg.take_actions())
                        .unwrap_or_default();
                    if batch.is_empty() {
                        break;
                    }
                    progressed = true;
                    for action in batch {
                        self.apply_group_action(now, name, action);
                    }
                }
            }
            let names: Vec<String> = self.target_groups.keys().cloned().collect();
            for name in &names {
                loop {
                    let batch = self
                        .target_groups
                        .get_mut(name)
                        .map(|tg| tg.health.take_actions())
                        .unwrap_or_default();
                    if batch.is_empty() {
                        break;
                    }
                    progressed = true;
                    // Room for the effects at once (a new leader's first probes: 10,000).
                    self.effects.reserve(batch.len());
                    for action in batch {
                        self.apply_health_action(now, name, action);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.publish();
        self.report_activities();
        // Start-up progress changes only with a lifecycle or a target's health, and is said
        // at most once a second (the sampling tick pumps at least that often): checking it
        // costs a pass over the starting groups' instances, too much for every event.
        let lifecycles: u64 = self
            .groups
            .values()
            .map(|g| g.asg.lifecycle_changes())
            .sum();
        let seen = (lifecycles, self.health_changes);
        let due = self
            .startup_checked_at
            .is_none_or(|t| now.saturating_since(t) >= STARTUP_REPORT_EVERY);
        if self.startup_seen != Some(seen) && due {
            self.startup_seen = Some(seen);
            self.startup_checked_at = Some(now);
            self.report_startup_progress();
        }
        self.forget_retired_groups();
        self.collect_garbage();
        self.persist_lifecycles();
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
                    tracing::warn!(zone = zone.as_str(), "zone outage drill: the zone is down");
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
                        early,
                        "zone outage drill over: the zone takes launches again"
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
                        "zonal shift: no new traffic to the zone"
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
                        early,
                        "zonal shift over: the zone gets traffic again"
                    );
                    self.publish_shifted_zones();
                }
            }
        }
    }

    /// Tells the data plane which zones are shifted away from.
    pub(crate) fn publish_shifted_zones(&mut self) {
        let zones = self.zones.shifted_zones().map(str::to_string).collect();
        self.effects
            .push_back(Effect::PublishShiftedZones { zones });
    }

    fn group_target_groups(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(|g| g.config.target_groups.clone())
            .unwrap_or_default()
    }

    fn apply_group_action(&mut self, now: Time, group: &str, action: GroupAction) {
        match action {
            GroupAction::Launch {
                id,
                zone,
                launch_template_version,
            } => self.launch(now, group, id, zone, launch_template_version),
            GroupAction::RegisterTargets { id } => {
                let Some((addr, zone)) = self
                    .members
                    .get(&id)
                    .and_then(|m| Some((m.address?, m.zone.clone())))
                else {
                    return;
                };
                let Some(g) = self.groups.get(group) else {
                    return;
                };
                // The group's list is read in place (a copy per registration cost two
                // allocations per instance when a new leader registers 10,000).
                for name in &g.config.target_groups {
                    if let Some(tg) = self.target_groups.get_mut(name) {
                        tg.health.register(now, addr);
                        tg.routes.insert(addr, (id.clone(), zone.clone()));
                        tg.dirty = true;
                    }
                }
            }
            GroupAction::DeregisterTargets { id } => {
                let addr = self.members.get(&id).and_then(|m| m.address);
                let mut count = 0;
                if let Some(addr) = addr {
                    for name in self.group_target_groups(group) {
                        // Only a target group that knows the target drains it (and says so).
                        let known = self.target_groups.get_mut(&name).filter(|tg| {
                            tg.health
                                .state(addr)
                                .is_some_and(|s| s != crate::health::TargetState::Draining)
                        });
                        if let Some(tg) = known {
                            tg.health.deregister(now, addr);
                            tg.dirty = true;
                            count += 1;
                        }
                    }
                }
                if count > 0 {
                    self.draining.insert(id, count);
                } else if let Some(g) = self.groups.get_mut(group) {
                    g.asg.handle_drained(now, &id);
                }
            }
            // The data plane learns that the target drains before its process is told to stop.
            GroupAction::Terminate { id } => {
                self.publish();
                self.effects.push_back(Effect::Stop { id });
            }
            GroupAction::Kill { id } => {
                self.publish();
                self.effects.push_back(Effect::Kill { id });
            }
        }
    }

    /// Asks the driver to start an instance from the template version its group asked for
    /// (the group's current template when this run does not know that version).
    fn launch(&mut self, now: Time, group: &str, id: InstanceId, zone: String, version: u64) {
        let template = self.groups.get(group).and_then(|g| {
            g.templates
                .get(&version)
                .or_else(|| self.launch_templates.get(&g.config.launch_template))
                .cloned()
        });
        let Some(template) = template else {
            if let Some(g) = self.groups.get_mut(group) {
                g.asg
                    .handle_launch_failed(now, &id, "launch template not found");
            }
            return;
        };
        self.members.insert(
            id.clone(),
            Member {
                group: group.to_string(),
                zone: zone.as_str().into(),
                address: None,
            },
        );
        self.effects
            .push_back(Effect::Launch(Box::new(LaunchRequest {
                group: group.to_string(),
                id,
                zone,
                launch_template_version: version,
                template,
            })));
    }

    fn apply_health_action(&mut self, now: Time, tg_name: &str, action: HealthAction) {
        match action {
            HealthAction::Probe { target } => self.effects.push_back(Effect::Probe {
                target_group: tg_name.to_string(),
                target,
            }),
            HealthAction::StateChanged {
                target,
                from,
                to,
                reason,
            } => {
                self.health_changes += 1;
                if let Some(tg) = self.target_groups.get_mut(tg_name) {
                    tg.dirty = true;
                }
                let instance = self.by_address.get(&target).cloned();
                tracing::info!(
                    target_group = tg_name,
                    target = %target,
                    instance = instance.as_ref().map(InstanceId::as_str).unwrap_or(""),
                    from = from.as_str(),
                    to = to.as_str(),
                    reason = reason.as_deref().unwrap_or(""),
                    "target health changed"
                );
                let healthy = match to {
                    TargetState::Healthy => true,
                    TargetState::Unhealthy => false,
                    _ => return,
                };
                let Some(id) = instance else { return };
                if let Some(g) = self.group_of_mut(&id) {
                    g.asg
                        .handle_target_health(now, &id, healthy, reason.as_deref().unwrap_or(""));
                }
            }
            HealthAction::DrainComplete { target } => {
                if let Some(tg) = self.target_groups.get_mut(tg_name) {
                    tg.dirty = true;
                }
                let Some(id) = self.by_address.get(&target).cloned() else {
                    return;
                };
                let done = self.draining.get_mut(&id).is_some_and(|left| {
                    *left = left.saturating_sub(1);
                    *left == 0
                });
                if done {
                    self.draining.remove(&id);
                    if let Some(g) = self.group_of_mut(&id) {
                        g.asg.handle_drained(now, &id);
                    }
                }
            }
        }
    }

    /// The group an instance belongs to.
    pub(crate) fn group_of_mut(&mut self, id: &InstanceId) -> Option<&mut super::GroupState> {
        let group = &self.members.get(id)?.group;
        self.groups.get_mut(group)
    }

    /// Publishes the target groups whose targets changed.
    pub(crate) fn publish(&mut self) {
        let names: Vec<String> = self
            .target_groups
            .iter()
            .filter(|(_, tg)| tg.dirty)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let Some(tg) = self.target_groups.get_mut(&name) else {
                continue;
            };
            let (members, by_address) = (&self.members, &self.by_address);
            let TargetGroupState { health, routes, .. } = tg;
            let mut known = 0;
            // Sized at once: a table of 1,000 targets grew by doubling, a copy each time.
            let mut targets: Vec<RoutedTarget> = Vec::with_capacity(health.target_count());
            let routed = health
                .states()
                .inspect(|_| known += 1)
                .filter(|(_, state)| *state != TargetState::Unused)
                .map(|(address, state)| {
                    let route = routes.get(&address).cloned().or_else(|| {
                        // Registered another way (adopted, restored): look it up once.
                        let id = by_address.get(&address)?;
                        let route = (id.clone(), members.get(id)?.zone.clone());
                        routes.insert(address, route.clone());
                        Some(route)
                    });
                    let (instance, zone) = route.unzip();
                    RoutedTarget {
                        address,
                        instance,
                        zone,
                        state,
                    }
                });
            targets.extend(routed);
            if routes.len() > known {
                // Targets gone from the group: their addresses may serve another instance later.
                routes.retain(|a, _| health.state(*a).is_some());
            }
            tg.dirty = false;
            self.routing_changes += 1;
            self.effects.push_back(Effect::PublishTargets {
                target_group: name,
                targets,
            });
        }
    }

    /// Logs each new activity once, so the log explains every decision, and hands it (again
    /// when an in-progress one finishes) to the driver to make durable.
    fn report_activities(&mut self) {
        for (name, g) in self.groups.iter_mut() {
            let asg = &g.asg;
            let effects = &mut self.effects;
            g.unfinished.retain(|id| match asg.activity(*id) {
                Some(a) if a.status != ActivityStatus::InProgress => {
                    effects.push_back(Effect::Activity {
                        group: name.clone(),
                        activity: a.clone(),
                    });
                    false
                }
                Some(_) => true,
                None => false, // forgotten (the in-memory history is bounded)
            });
            let newest = g.asg.activities().next().map(|a| a.id);
            let mut fresh: Vec<_> = g
                .asg
                .activities()
                .take_while(|a| Some(a.id) > g.last_reported_activity)
                .collect();
            fresh.reverse();
            self.effects.reserve(fresh.len());
            for a in fresh {
                let span = tracing::info_span!("activity", group = name.as_str(), id = a.id);
                let _entered = span.enter();
                tracing::info!(
                    description = a.description.as_str(),
                    cause = a.cause.as_str(),
                    status = a.status.as_str(),
                    "activity"
                );
                if a.status == ActivityStatus::InProgress {
                    g.unfinished.push(a.id);
                }
                self.effects.push_back(Effect::Activity {
                    group: name.clone(),
                    activity: a.clone(),
                });
            }
            if newest.is_some() {
                g.last_reported_activity = newest;
            }
        }
    }

    /// While the first instances come into service, says how far each group is, then once
    /// that it is ready.
    fn report_startup_progress(&mut self) {
        let mut updates = Vec::new();
        for (name, g) in &self.groups {
            let Some(last) = g.startup else { continue };
            let desired = g.asg.desired_capacity();
            let mut zones = self.ready_zones(name);
            zones.sort_unstable();
            let ready = u32::try_from(zones.len()).unwrap_or(u32::MAX);
            if (ready, desired) == last {
                continue;
            }
            // The quickstart's console shows this line as it is, so it is a sentence; the
            // numbers are fields too.
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
            tracing::info!(group = name.as_str(), ready, desired, "{line}");
            updates.push((name.clone(), (ready < desired).then_some((ready, desired))));
        }
        for (name, state) in updates {
            if let Some(g) = self.groups.get_mut(&name) {
                g.startup = state;
            }
        }
    }

    /// The zones of `group`'s instances that are in service and healthy in all its target
    /// groups, one entry per instance.
    pub fn ready_zones(&self, group: &str) -> Vec<&str> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        // While a target group has no healthy target (a new leader's first cycle, a start),
        // no instance can be ready: no pass over the group's instances.
        let none_healthy = g.config.target_groups.iter().any(|tg| {
            self.target_groups
                .get(tg)
                .is_none_or(|tg| !tg.health.any_healthy())
        });
        if none_healthy {
            return Vec::new();
        }
        g.asg
            .instances()
            .filter(|i| i.lifecycle == LifecycleState::InService)
            .filter(|i| {
                let addr = self.members.get(&i.id).and_then(|m| m.address);
                g.config.target_groups.iter().all(|tg| {
                    addr.zip(self.target_groups.get(tg))
                        .is_some_and(|(a, tg)| tg.health.state(a) == Some(TargetState::Healthy))
                })
            })
            .map(|i| i.zone.as_str())
            .collect()
    }

    /// Writes the durable state of every running instance whose state changed class (into or
    /// out of the warm pool, into or out of a launch hook wait).
    fn persist_lifecycles(&mut self) {
        for g in self.groups.values_mut() {
            let changes = g.asg.lifecycle_changes();
            if g.lifecycles_seen == Some(changes) {
                continue;
            }
            g.lifecycles_seen = Some(changes);
            for i in g.asg.instances() {
                let Some(known) = self.durable.get_mut(&i.id) else {
                    continue;
                };
                let state = durable_state(i.lifecycle);
                if *known != state {
                    *known = state;
                    self.effects.push_back(Effect::Persist(Durable::Lifecycle {
                        id: i.id.clone(),
                        state,
                    }));
                }
            }
        }
    }

    /// The zone of an instance, from its group's record of it.
    pub fn zone_of(&self, id: &InstanceId) -> Option<String> {
        self.members.get(id).map(|m| m.zone.to_string())
    }

    /// Where an instance listens, once it runs.
    pub fn instance_address(&self, id: &InstanceId) -> Option<SocketAddr> {
        self.members.get(id)?.address
    }

    /// The instance a target address belongs to, if a group registered it.
    pub fn instance_at(&self, addr: SocketAddr) -> Option<&InstanceId> {
        self.by_address.get(&addr)
    }
}
