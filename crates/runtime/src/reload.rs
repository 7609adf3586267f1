//! Hot reload (`SIGHUP`, `POST /v1/reload`): the file is validated first; an invalid one is
//! refused with every error as FILE:LINE:COL and the running config keeps serving; a valid one
//! is applied as a diff, in place, without touching a connection: group bounds and desired
//! capacity (`update_spec`), target groups' health-check settings, new target groups, launch
//! template changes (a new version for later launches), target groups added or removed,
//! listeners added (bound before anything else changes), re-routed or drained. Changes that
//! need a restart (the admin bind, the state directory, adding or removing auto scaling
//! groups, ...) refuse the whole reload, so a reload is never half-applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use flotilla_admin::api::{ListenerInfo, RefreshOverrides, ReloadResponse};
use flotilla_admin::AdminError;
use flotilla_config::{Config, ConfigError, LoadBalancerType};
use flotilla_control::{
    GroupSpec, HealthCheckSpec, HealthCheckType, RefreshPreferences, TargetGroupHealth,
};

use crate::backend::Shared;
use crate::control::{ProbeSpec, TargetGroupRuntime};
use crate::run::CONNECT_TIMEOUT;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The preferences of an instance refresh of `asg`: each override, else the group's
/// `instance_refresh` settings; the warm-up falls back to the group's default instance
/// warm-up, else its health check grace period (AWS).
pub(crate) fn refresh_preferences(
    asg: &flotilla_config::AutoScalingGroup,
    overrides: RefreshOverrides,
) -> RefreshPreferences {
    let s = &asg.instance_refresh;
    let warmup = s
        .instance_warmup
        .or(asg.default_instance_warmup)
        .unwrap_or(asg.health_check_grace_period);
    RefreshPreferences {
        min_healthy_percentage: overrides
            .min_healthy_percentage
            .unwrap_or(s.min_healthy_percentage),
        instance_warmup: overrides.instance_warmup.unwrap_or(warmup),
        checkpoint_percentages: overrides
            .checkpoint_percentages
            .unwrap_or_else(|| s.checkpoint_percentages.clone()),
        checkpoint_delay: overrides.checkpoint_delay.unwrap_or(s.checkpoint_delay),
        auto_rollback: overrides.auto_rollback.unwrap_or(s.auto_rollback),
    }
}

/// The control plane's spec of a group as the config describes it.
pub(crate) fn group_spec(
    name: &str,
    asg: &flotilla_config::AutoScalingGroup,
    launch_template_version: u64,
) -> GroupSpec {
    use flotilla_config::TerminationPolicy as C;
    use flotilla_control::TerminationPolicy as T;
    GroupSpec {
        name: name.to_string(),
        zones: asg.zones.clone(),
        min_size: asg.min_size,
        max_size: asg.max_size,
        desired_capacity: asg.desired_capacity,
        health_check_type: match asg.health_check_type {
            flotilla_config::HealthCheckType::Process => HealthCheckType::Process,
            flotilla_config::HealthCheckType::Elb => HealthCheckType::Elb,
        },
        health_check_grace_period: asg.health_check_grace_period,
        termination_policies: asg
            .termination_policies
            .iter()
            .map(|p| match p {
                C::Default => T::Default,
                C::OldestInstance => T::OldestInstance,
                C::NewestInstance => T::NewestInstance,
                C::OldestLaunchTemplate => T::OldestLaunchTemplate,
            })
            .collect(),
        launch_template_version,
        has_target_groups: !asg.target_groups.is_empty(),
        lifecycle_hooks: asg.lifecycle_hooks.clone(),
        warm_pool: asg.warm_pool,
    }
}

/// The health machine's and the prober's settings for a target group.
pub(crate) fn health_specs(tg: &flotilla_config::TargetGroup) -> (HealthCheckSpec, ProbeSpec) {
    let hc = &tg.health_check;
    (
        HealthCheckSpec {
            interval: hc.interval,
            timeout: hc.timeout,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
        },
        ProbeSpec {
            http_path: (hc.protocol == flotilla_config::Protocol::Http).then(|| hc.path.clone()),
            timeout: hc.timeout,
            matcher: hc.matcher.clone(),
        },
    )
}

/// Re-reads the config file and applies it; the answer lists what changed.
pub(crate) fn reload(shared: &Shared) -> Result<ReloadResponse, AdminError> {
    let Some(path) = shared.config_path.as_deref() else {
        return Err(AdminError::Internal(
            "this flotilla was started without a config file to reload".into(),
        ));
    };
    // Held for the whole reload, so two reloads never interleave.
    let mut current = shared.config();
    let new = match flotilla_config::load(path) {
        Ok(c) => c,
        Err(ConfigError::Invalid(diagnostics)) => {
            let errors: Vec<String> = diagnostics.0.iter().map(|d| d.to_string()).collect();
            return Err(AdminError::InvalidConfig {
                summary: format!(
                    "{}: {} error{} found; the running config is unchanged",
                    path.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
                errors,
            });
        }
        Err(e) => {
            return Err(AdminError::InvalidConfig {
                summary: format!("{e}; the running config is unchanged"),
                errors: vec![e.to_string()],
            })
        }
    };
    let blockers = needs_restart(&current, &new);
    if !blockers.is_empty() {
        return Err(AdminError::Conflict(format!(
            "the new config needs a restart to apply ({}); nothing was changed",
            blockers.join("; ")
        )));
    }
    let bound = bind_new_listeners(&shared.listener_set, &new)?;
    let mut changes = apply(shared, &current, &new);
    // After the target groups: new listeners may forward to new target groups.
    changes.extend(apply_listeners(shared, &new, bound));
    // Last: a removed target group may have been a listener's until the line above.
    changes.extend(remove_target_groups(shared, &new));
    *current = new;
    drop(current);
    shared.wake.notify_one();
    Ok(ReloadResponse { changes })
}

/// `reload` for `SIGHUP`: the outcome goes to the log.
pub(crate) fn reload_and_log(shared: &Shared) {
    match reload(shared) {
        Ok(r) if r.changes.is_empty() => tracing::info!("config reloaded: nothing changed"),
        Ok(r) => tracing::info!("config reloaded: {}", r.changes.join("; ")),
        Err(AdminError::InvalidConfig { summary, errors }) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!("reload refused: {summary}");
        }
        Err(e) => tracing::error!("reload refused: {e}"),
    }
}

/// What a reload cannot change in place.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut why = Vec::new();
    if old.cluster.admin_bind != new.cluster.admin_bind {
        why.push("admin_bind changed".to_string());
    }
    if old.cluster.state_dir != new.cluster.state_dir {
        why.push("state_dir changed".to_string());
    }
    if old.cluster.admin_token_env != new.cluster.admin_token_env {
        why.push("admin_token_env changed".to_string());
    }
    for name in old.auto_scaling_groups.keys() {
        if !new.auto_scaling_groups.contains_key(name) {
            why.push(format!("auto scaling group {name} removed"));
        }
    }
    for (name, g) in &new.auto_scaling_groups {
        match old.auto_scaling_groups.get(name) {
            None => why.push(format!("auto scaling group {name} added")),
            Some(o) if o.target_groups != g.target_groups => why.push(format!(
                "target groups of auto scaling group {name} changed"
            )),
            Some(o) if o.launch_template != g.launch_template => why.push(format!(
                "launch template of auto scaling group {name} changed"
            )),
            _ => {}
        }
    }
    for (name, tg) in &old.target_groups {
        match new.target_groups.get(name) {
            // Removal is applied in place: no group can name it (their target groups did not
            // change, and the new file validated), listeners are re-routed first.
            None => {}
            Some(n) if n.targets != tg.targets => {
                why.push(format!("static targets of target group {name} changed"))
            }
            // The data plane builds a target group's balancing once; applying only the health
            // checks would leave the rest silently as it was.
            Some(n)
                if (n.protocol, n.protocol_version, n.algorithm, n.slow_start)
                    != (
                        tg.protocol,
                        tg.protocol_version,
                        tg.algorithm,
                        tg.slow_start,
                    )
                    || n.stickiness != tg.stickiness
                    || n.proxy_protocol_v2 != tg.proxy_protocol_v2 =>
            {
                why.push(format!(
                    "protocol, protocol_version, algorithm, slow_start, stickiness or \
                     proxy_protocol_v2 of target group {name} changed"
                ))
            }
            _ => {}
        }
    }
    // A removed target group must not be used by a listener that stays: validation of the new
    // file guarantees the new listeners only name target groups that exist in it.
    let _ = &old.load_balancers; // listeners are added, swapped and drained in place
    why
}

/// Applies a validated config that needs no restart; returns one line per change.
fn apply(shared: &Shared, old: &Config, new: &Config) -> Vec<String> {
    let now = shared.clock.now();
    let mut changes = Vec::new();
    let mut guard = shared.lock();
    let c = &mut *guard;

    if old.cluster.zones != new.cluster.zones {
        // Drills on zones that are gone end; new zones start available.
        c.zones.set_zones(new.cluster.zones.iter().cloned());
        c.apply_zone_events(now);
        changes.push(format!("cluster zones: {}", new.cluster.zones.join(", ")));
    }

    for (name, tg) in &new.target_groups {
        let (spec, probe) = health_specs(tg);
        match c.target_groups.get_mut(name) {
            Some(rt) => {
                let cross_zone = new.target_group_cross_zone(name);
                if cross_zone != old.target_group_cross_zone(name) {
                    rt.proxy.set_cross_zone(cross_zone);
                    changes.push(format!(
                        "target group {name}: cross-zone load balancing {}",
                        if cross_zone { "on" } else { "off" }
                    ));
                }
                if old.target_groups.get(name) != Some(tg) {
                    rt.health.update_spec(spec, tg.deregistration_delay);
                    rt.probe = probe;
                    changes.push(format!(
                        "target group {name}: health check settings updated"
                    ));
                }
            }
            None => {
                let mut health = TargetGroupHealth::new(spec, tg.deregistration_delay);
                for target in &tg.targets {
                    health.register(now, *target);
                }
                c.target_groups.insert(
                    name.clone(),
                    TargetGroupRuntime::new(
                        health,
                        flotilla_proxy::TargetGroup::with_settings(
                            name.clone(),
                            flotilla_proxy::TargetGroupSettings::from_config(
                                tg,
                                new.target_group_cross_zone(name),
                            ),
                        ),
                        probe,
                    ),
                );
                if let Some(rt) = c.target_groups.get(name) {
                    // A zonal shift in force applies to it as well.
                    rt.proxy
                        .set_shifted_zones(c.zones.shifted_zones().map(str::to_string).collect());
                }
                changes.push(format!("target group {name}: added"));
            }
        }
    }

    for (name, asg) in &new.auto_scaling_groups {
        let Some(before) = old.auto_scaling_groups.get(name) else {
            continue;
        };
        let template_changed = old.launch_templates.get(&asg.launch_template)
            != new.launch_templates.get(&asg.launch_template);
        if before == asg && !template_changed {
            continue;
        }
        let Some(g) = c.groups.get_mut(name) else {
            continue;
        };
        let current = g.asg.spec().clone();
        let mut version = current.launch_template_version;
        if template_changed {
            version = g.next_template_version();
            if let Some(t) = new.launch_templates.get(&asg.launch_template) {
                g.record_template(version, t.clone());
            }
            changes.push(format!(
                "auto scaling group {name}: launch template {} is now version {version} (new instances use it)",
                asg.launch_template
            ));
        }
        let mut spec = group_spec(name, asg, version);
        if before.desired_capacity == asg.desired_capacity {
            // Not changed in the file: keep the group's own desired (operator, policy).
            spec.desired_capacity = current.desired_capacity;
        } else if let Some(p) = &c.persist {
            // Changed in the file: the newer intent replaces an operator's earlier one, also
            // for the next restart.
            p.clear_desired(name);
        }
        let desired_before = g.asg.desired_capacity();
        if before.new_instances_protected_from_scale_in != asg.new_instances_protected_from_scale_in
        {
            g.asg.set_new_instances_protected_from_scale_in(
                asg.new_instances_protected_from_scale_in,
            );
            changes.push(format!(
                "auto scaling group {name}: new_instances_protected_from_scale_in {} → {}",
                before.new_instances_protected_from_scale_in,
                asg.new_instances_protected_from_scale_in
            ));
        }
        g.asg.update_spec(now, spec);
        if (
            &before.scaling_policies,
            &before.scheduled_actions,
            before.default_instance_warmup,
            before.default_cooldown,
        ) != (
            &asg.scaling_policies,
            &asg.scheduled_actions,
            asg.default_instance_warmup,
            asg.default_cooldown,
        ) {
            // Lock order: control (held), then scaling.
            shared
                .scaling
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .replace_controller(name, asg, now);
            changes.push(format!(
                "auto scaling group {name}: scaling policies, scheduled actions, warm-up or \
                 cooldown replaced ({} policies, {} scheduled actions; alarm and stabilization \
                 history start afresh)",
                asg.scaling_policies.len(),
                asg.scheduled_actions.len()
            ));
        }
        let s = g.asg.spec();
        for (what, a, b) in [
            ("min_size", current.min_size, s.min_size),
            ("max_size", current.max_size, s.max_size),
            ("desired_capacity", desired_before, g.asg.desired_capacity()),
        ] {
            if a != b {
                changes.push(format!("auto scaling group {name}: {what} {a} → {b}"));
            }
        }
        if template_changed && asg.instance_refresh.on_launch_template_change {
            let preferences = refresh_preferences(asg, RefreshOverrides::default());
            let cause = "a configuration reload that changed the launch template";
            match g.asg.start_instance_refresh(now, preferences, cause) {
                Ok(r) => changes.push(format!(
                    "auto scaling group {name}: instance refresh {} started \
                     (instance_refresh.on_launch_template_change)",
                    r.id
                )),
                Err(e) => changes.push(format!(
                    "auto scaling group {name}: no instance refresh started: {e}"
                )),
            }
        }
        let s = g.asg.spec();
        if (&current.lifecycle_hooks, current.warm_pool) != (&s.lifecycle_hooks, s.warm_pool) {
            changes.push(format!(
                "auto scaling group {name}: lifecycle hooks or warm pool updated ({} hook(s), \
                 warm pool {}; waits in progress keep the hooks they started with)",
                s.lifecycle_hooks.len(),
                if s.warm_pool.is_some() { "on" } else { "off" }
            ));
        }
        if current.zones != s.zones
            || current.health_check_type != s.health_check_type
            || current.health_check_grace_period != s.health_check_grace_period
            || current.termination_policies != s.termination_policies
        {
            changes.push(format!(
                "auto scaling group {name}: zones, health checks or termination policies updated"
            ));
        }
    }
    drop(guard);
    for change in &changes {
        tracing::info!("reload: {change}");
    }
    changes
}

impl Shared {
    /// The config in force (locked: reloads replace it).
    pub(crate) fn config(&self) -> MutexGuard<'_, Config> {
        // A reload that panicked half-way leaves the old or the new config, both valid.
        self.config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Forgets target groups the new config no longer has (requests in flight to them finish:
/// the data plane holds its own reference until they do).
fn remove_target_groups(shared: &Shared, new: &Config) -> Vec<String> {
    let mut c = shared.lock();
    let gone: Vec<String> = c
        .target_groups
        .keys()
        .filter(|n| !new.target_groups.contains_key(*n))
        .cloned()
        .collect();
    gone.into_iter()
        .map(|name| {
            c.target_groups.remove(&name);
            format!("target group {name}: removed")
        })
        .collect()
}

/// One running listener: what the API shows, its routing snapshot, and its own stop switch
/// (so a reload can drain it alone).
pub(crate) struct ListenerEntry {
    info: ListenerInfo,
    pub(crate) load_balancer: String,
    /// The listener as configured (bind address as bound), before weight overrides.
    pub(crate) listener: flotilla_config::Listener,
    idle_timeout: std::time::Duration,
    pub(crate) router: Arc<ArcSwap<flotilla_proxy::Router>>,
    stop: watch::Sender<bool>,
    stats: Arc<flotilla_proxy::ListenerStats>,
}

/// A listener whose socket is bound and whose TLS material is loaded, ready to serve.
pub(crate) struct BoundListener {
    pub(crate) lb_name: String,
    pub(crate) lb: flotilla_config::LoadBalancer,
    pub(crate) listener: flotilla_config::Listener,
    pub(crate) socket: TcpListener,
    pub(crate) access_log: Option<flotilla_proxy::AccessLog>,
    pub(crate) options: flotilla_proxy::ListenerOptions,
}

/// The data-plane target groups by name, what listener rules are compiled against.
pub(crate) fn proxy_groups(
    target_groups: &BTreeMap<String, TargetGroupRuntime>,
) -> std::collections::HashMap<String, Arc<flotilla_proxy::TargetGroup>> {
    target_groups
        .iter()
        .map(|(name, tg)| (name.clone(), tg.proxy.clone()))
        .collect()
}

/// Every listener of every load balancer, by bind address; a reload adds, swaps and drains
/// them one by one, shutdown stops them all.
#[derive(Default)]
pub(crate) struct ListenerSet {
    pub(crate) entries: Mutex<BTreeMap<SocketAddr, ListenerEntry>>,
    /// Weight overrides and canary rollbacks of their forward actions (locked after
    /// `entries`).
    pub(crate) weights: Mutex<crate::weights::Weights>,
    tasks: Mutex<JoinSet<Result<(), flotilla_proxy::ProxyError>>>,
}

type ProxyTask = Result<(), flotilla_proxy::ProxyError>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only if a panic happened mid-insert; the map is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ListenerSet {
    /// Starts serving an already-bound listener: HTTP(S) listeners with their compiled rules,
    /// TLS and limits; listeners of network load balancers as TCP flows to their target group.
    pub(crate) fn start(
        &self,
        bound: BoundListener,
        target_groups: &BTreeMap<String, TargetGroupRuntime>,
        tg_configs: &BTreeMap<String, flotilla_config::TargetGroup>,
    ) {
        let BoundListener {
            lb_name,
            lb,
            mut listener,
            socket,
            access_log,
            options,
        } = bound;
        // Redirects keep the listener's real port (`#{port}`), also when bound to port 0.
        if let Ok(local) = socket.local_addr() {
            listener.bind = local;
        }
        let stats = Arc::new(flotilla_proxy::ListenerStats::default());
        if let Some(log) = &access_log {
            stats.set_access_log(log.clone());
        }
        let proxy_groups = proxy_groups(target_groups);
        let router = Arc::new(ArcSwap::from_pointee(self.compile(
            &lb_name,
            &listener,
            &proxy_groups,
        )));
        let (stop, stop_rx) = watch::channel(false);
        if lb.kind == LoadBalancerType::Network {
            // Network load balancers forward every connection to one tcp target group (config
            // validation guarantees a forward action to an existing one).
            let tg = crate::run::forwarded_groups(&listener.default_action)
                .into_iter()
                .find_map(|n| target_groups.get(&n).map(|tg| (n, tg.proxy.clone())));
            match tg {
                Some((tg_name, tg)) => {
                    let cfg = flotilla_proxy::TcpListenerConfig {
                        idle_timeout: lb.idle_timeout,
                        connect_timeout: CONNECT_TIMEOUT,
                        proxy_protocol_v2: tg_configs
                            .get(&tg_name)
                            .is_some_and(|t| t.proxy_protocol_v2),
                    };
                    lock(&self.tasks).spawn(flotilla_proxy::serve_tcp_with_stats(
                        socket,
                        tg,
                        cfg,
                        Arc::clone(&stats),
                        stop_rx,
                    ));
                }
                None => tracing::warn!(
                    bind = %listener.bind,
                    "network listener without a target group; not served"
                ),
            }
        } else {
            let cfg = flotilla_proxy::ListenerConfig {
                idle_timeout: lb.idle_timeout,
                connect_timeout: CONNECT_TIMEOUT,
            };
            lock(&self.tasks).spawn(flotilla_proxy::serve_listener(
                socket,
                Arc::clone(&router),
                cfg,
                options,
                Arc::clone(&stats),
                stop_rx,
            ));
        }
        let info = ListenerInfo {
            load_balancer: lb_name.clone(),
            bind: listener.bind.to_string(),
            protocol: match listener.protocol {
                flotilla_config::ListenerProtocol::Http => "http",
                flotilla_config::ListenerProtocol::Https => "https",
                flotilla_config::ListenerProtocol::Tcp => "tcp",
            }
            .to_string(),
            target_groups: crate::run::forwarded_groups(&listener.default_action),
        };
        lock(&self.entries).insert(
            listener.bind,
            ListenerEntry {
                info,
                load_balancer: lb_name,
                idle_timeout: lb.idle_timeout,
                listener,
                router,
                stop,
                stats,
            },
        );
    }

    /// The routing table of `listener` of `lb`, with the weight overrides of its rules applied
    /// (overrides the file no longer agrees with are dropped, logged).
    pub(crate) fn compile(
        &self,
        lb: &str,
        listener: &flotilla_config::Listener,
        groups: &std::collections::HashMap<String, Arc<flotilla_proxy::TargetGroup>>,
    ) -> flotilla_proxy::Router {
        let (effective, dropped) = lock(&self.weights).effective(lb, listener);
        for (key, why) in dropped {
            tracing::info!(
                load_balancer = lb,
                listener = %key.listener,
                rule = key.rule(),
                "weight override dropped: {why}"
            );
        }
        flotilla_proxy::rules::compile(&effective, groups)
    }

    /// Deletes the stored rows of the weight overrides that compiling dropped (the file's
    /// weights for their rule changed).
    pub(crate) fn forget_dropped_overrides(&self, persist: Option<&crate::persist::Persister>) {
        let dropped = lock(&self.weights).take_dropped();
        if let Some(p) = persist {
            for key in &dropped {
                p.weight_override(key, None);
            }
        }
    }

    /// Counters of every listener: (load balancer, bind address, counters).
    pub(crate) fn stats(&self) -> Vec<(String, String, Arc<flotilla_proxy::ListenerStats>)> {
        lock(&self.entries)
            .values()
            .map(|e| {
                (
                    e.load_balancer.clone(),
                    e.info.bind.clone(),
                    Arc::clone(&e.stats),
                )
            })
            .collect()
    }

    /// What `GET /v1/listeners` shows.
    pub(crate) fn infos(&self) -> Vec<ListenerInfo> {
        lock(&self.entries)
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// Stops every listener from accepting (in-flight requests finish) and hands back their
    /// tasks to await.
    pub(crate) fn stop_all(&self) -> JoinSet<ProxyTask> {
        for e in lock(&self.entries).values() {
            let _ = e.stop.send(true);
        }
        std::mem::take(&mut *lock(&self.tasks))
    }
}

/// How many connections a listener's kernel queue holds before `accept` takes them (Linux caps
/// it at `net.core.somaxconn`). tokio's and the standard library's `bind` use 128, which a
/// burst of new connections overflows: the kernel then drops SYNs, and each dropped client
/// waits a second for its retransmission.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds a load balancer's listening socket, the one way the start and a reload both do it:
/// `SO_REUSEADDR` (like tokio's `TcpListener::bind`, so a port a listener released a moment
/// ago, with connections in TIME_WAIT, can be bound again) and a backlog of
/// [`LISTEN_BACKLOG`].
pub(crate) fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The first half of bringing the listeners to the new config: binds the new ones, their
/// certificates and access logs, before anything changes (a taken port refuses the whole
/// reload). [`apply_listeners`] then does the rest.
fn bind_new_listeners(set: &ListenerSet, new: &Config) -> Result<Vec<BoundListener>, AdminError> {
    let existing: Vec<SocketAddr> = lock(&set.entries).keys().copied().collect();
    let mut bound = Vec::new();
    for (lb_name, lb) in &new.load_balancers {
        for l in &lb.listeners {
            if existing.contains(&l.bind) {
                continue;
            }
            let listener = bind_listener(l.bind).map_err(|e| {
                AdminError::Conflict(format!(
                    "cannot bind new listener {}: {e}; nothing was changed",
                    l.bind
                ))
            })?;
            let options = crate::protocols::listener_options(lb, l).map_err(|e| {
                AdminError::Conflict(format!("listener {}: {e}; nothing was changed", l.bind))
            })?;
            let access_log = match &lb.access_log {
                Some(path) => {
                    Some(flotilla_proxy::AccessLog::open(path, lb_name).map_err(|e| {
                        AdminError::Conflict(format!(
                            "cannot open access log {}: {e}; nothing was changed",
                            path.display()
                        ))
                    })?)
                }
                None => None,
            };
            bound.push(BoundListener {
                lb_name: lb_name.clone(),
                lb: lb.clone(),
                listener: l.clone(),
                socket: listener,
                access_log,
                options,
            });
        }
    }
    Ok(bound)
}

/// The second half: swaps the routing of changed listeners (no connection is touched), starts
/// the ones bound by [`bind_new_listeners`], drains removed ones. Returns the change lines.
fn apply_listeners(shared: &Shared, new: &Config, bound: Vec<BoundListener>) -> Vec<String> {
    let mut changes = Vec::new();
    let c = shared.lock();
    let set = &shared.listener_set;
    let wanted: BTreeMap<SocketAddr, (&String, &flotilla_config::Listener, std::time::Duration)> =
        new.load_balancers
            .iter()
            .flat_map(|(n, lb)| {
                lb.listeners
                    .iter()
                    .map(move |l| (l.bind, (n, l, lb.idle_timeout)))
            })
            .collect();
    {
        let mut entries = lock(&set.entries);
        let removed: Vec<SocketAddr> = entries
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for addr in removed {
            if let Some(e) = entries.remove(&addr) {
                let _ = e.stop.send(true);
                changes.push(format!(
                    "listener {addr} of {}: removed (draining in-flight requests)",
                    e.load_balancer
                ));
            }
        }
        for (addr, (lb, l, idle)) in &wanted {
            let Some(e) = entries.get_mut(addr) else {
                continue;
            };
            if &e.listener != *l || e.load_balancer != **lb {
                e.router.store(Arc::new(set.compile(
                    lb,
                    l,
                    &proxy_groups(&c.target_groups),
                )));
                e.info.target_groups = crate::run::forwarded_groups(&l.default_action);
                e.info.load_balancer = (*lb).clone();
                e.listener = (*l).clone();
                changes.push(format!("listener {addr} of {lb}: routing updated"));
            }
            if e.idle_timeout != *idle {
                changes.push(format!(
                    "listener {addr} of {lb}: the new idle_timeout applies after a restart"
                ));
            }
        }
    }
    for b in bound {
        let line = format!("listener {} of {}: added", b.listener.bind, b.lb_name);
        set.start(b, &c.target_groups, &new.target_groups);
        changes.push(line);
    }
    set.forget_dropped_overrides(c.persist.as_ref());
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of new connections waits in the kernel's queue instead of having its SYNs
    /// dropped: 300 clients connect, none accepted yet, each within half a second (a dropped
    /// SYN would be retried only after a second).
    #[tokio::test]
    async fn a_listener_queues_a_burst_of_connections() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..300 {
            clients.spawn(async move {
                tokio::time::timeout(
                    std::time::Duration::from_millis(500),
                    tokio::net::TcpStream::connect(addr),
                )
                .await
            });
        }
        let mut connected = Vec::new();
        while let Some(res) = clients.join_next().await {
            if let Ok(Ok(Ok(stream))) = res {
                connected.push(stream);
            }
        }
        assert_eq!(connected.len(), 300);
        drop(listener);
    }
}
