//! The load balancer role: the config's listeners, bound on this host's address, routed by the
//! same data plane and listener set as `flotilla up`. The targets are the instances the
//! assignments register (plus the config's static targets); this node checks them itself with
//! the control plane's own health machine ([`LbTargets`]) and votes on what it sees, so the
//! leader's verdicts come from the load balancer nodes. With etcd away it keeps serving the
//! targets it last knew, still checking them.
//!
//! It also serves the config's `[dns]` on this host's address ([`dns`]) and registers itself
//! under `lb/<node>` with its verdict per load balancer ([`presence`]): DNS alias records to a
//! load balancer answer with every live, healthy lb node.

mod dns;
pub(crate) mod dns_changes;
pub(crate) mod edge;
mod presence;
mod votes;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla_cluster::records::LbNodeRecord;
use flotilla_cluster::records::{AssignedState, Assignment, RoutingWeights, ShiftedZones};
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, PrefixWatcher, Snapshot};
use flotilla_config::Config;
use flotilla_control::fleet::{load_balancer_healthy, LbAction, LbTarget, LbTargets};
use flotilla_control::{InstanceId, ProbeResult, Time};
use flotilla_dns::{BoundDns, DnsService};
use flotilla_edge::{BoundEdges, EdgeService};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{convert, Node, NodeError, NodeOptions};
use crate::data_plane::DataPlane;
use crate::edge::{healthy_of, LiveOrigins, OriginTable};
use crate::listeners::{BoundListener, ListenerSet};
use crate::shared::lock;

/// How often draining targets are looked at for requests still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// How long in-flight requests may finish when the node stops.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(30);

/// The config as this node serves it: every listener and the DNS server bound on the host's
/// address.
pub(crate) fn host_config(config: &Config, host: std::net::IpAddr) -> Config {
    let mut local = config.clone();
    for lb in local.load_balancers.values_mut() {
        for l in &mut lb.listeners {
            l.bind = convert::on_host(host, l.bind);
        }
    }
    if let Some(dns) = &mut local.dns {
        dns.bind = convert::on_host(host, dns.bind);
    }
    for d in local.distributions.values_mut() {
        for l in &mut d.listeners {
            l.bind = convert::on_host(host, l.bind);
        }
    }
    local
}

/// Listeners bound before the node registers.
pub(crate) struct Bound {
    config: Config,
    data_plane: DataPlane,
    listeners: ListenerSet,
    bound: Vec<BoundListener>,
    dns: Option<BoundDns>,
    edges: BoundEdges,
}

/// Binds the config's listeners, `[dns]` and distributions on the host's address (a taken
/// port refuses the start).
pub(crate) async fn bind(options: &NodeOptions, config: &Config) -> Result<Bound, NodeError> {
    let local = host_config(config, options.address);
    let listeners = ListenerSet::default();
    let bound = crate::listeners::bind_new(&listeners, &local, &mut Default::default())?;
    let dns = dns::bind(&local).await?;
    let edges = edge::bind(&local).await?;
    Ok(Bound {
        edges,
        data_plane: DataPlane::from_config(&local),
        config: local,
        listeners,
        bound,
        dns,
    })
}

/// What the admin API reads of this node's load balancer.
pub(crate) struct LbShared {
    pub(crate) data_plane: DataPlane,
    pub(crate) listeners: ListenerSet,
    /// The DNS server, when the config has `[dns]` (taken out on stop).
    pub(crate) dns: Mutex<Option<DnsService>>,
    /// The distributions (taken out on stop).
    pub(crate) edges: Mutex<Option<EdgeService>>,
    /// Where the distributions' origins are, refreshed by the load balancer's loop.
    origins: Arc<LiveOrigins>,
}

/// Starts serving and the loop that keeps targets, health and routing current.
pub(crate) fn start(
    node: &Arc<Node>,
    bound: Bound,
    tasks: &mut JoinSet<()>,
    stop: watch::Receiver<bool>,
) -> Arc<LbShared> {
    let Bound {
        config,
        data_plane,
        listeners,
        bound,
        dns,
        edges,
    } = bound;
    let origins = Arc::new(LiveOrigins::default());
    let serves_distributions = !config.distributions.is_empty();
    let shared = Arc::new(LbShared {
        data_plane,
        listeners,
        dns: Mutex::new(None),
        edges: Mutex::new(Some(edge::start(edges, Arc::clone(&origins)))),
        origins,
    });
    for b in bound {
        tracing::info!(bind = %b.bound(), load_balancer = b.lb_name.as_str(), "listening");
        shared.listeners.start(b, &shared.data_plane);
    }
    if let (Some(b), Some(d)) = (dns, &config.dns) {
        dns::start(node, &shared, b, d, tasks, stop.clone());
    }
    if serves_distributions {
        tasks.spawn(edge::run_invalidations(
            Arc::clone(node),
            Arc::clone(&shared),
            stop.clone(),
        ));
    }
    let lb = Lb {
        node: Arc::clone(node),
        shared: Arc::clone(&shared),
        config,
        targets: LbTargets::default(),
        votes: votes::Votes::default(),
        presence: presence::Presence::default(),
        draining_since: HashMap::new(),
    };
    tasks.spawn(lb.run(stop));
    shared
}

struct Lb {
    node: Arc<Node>,
    shared: Arc<LbShared>,
    /// The config in force, as served (binds on the host's address).
    config: Config,
    targets: LbTargets,
    votes: votes::Votes,
    presence: presence::Presence,
    draining_since: HashMap<(String, SocketAddr), Instant>,
}

type ProbeDone = (String, SocketAddr, ProbeResult);

impl Lb {
    fn now(&self) -> Time {
        self.node.clock.now()
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let store = self.node.store.clone();
        let keys = store.keys().clone();
        let mut assigned = PrefixWatcher::spawn(store.etcd().clone(), keys.assignments_prefix());
        let mut routing = PrefixWatcher::spawn(store.etcd().clone(), keys.routing_prefix());
        let mut config = self.node.config.clone();
        let (probe_tx, mut probes) = mpsc::unbounded_channel::<ProbeDone>();
        let now = self.now();
        let specs = self.spec_target_groups();
        self.targets.configure(now, &specs);
        loop {
            let wake = self.next_wake();
            tokio::select! {
                _ = stop.changed() => break,
                Ok(u) = assigned.changed() => self.set_targets(&u.snapshot),
                Ok(u) = routing.changed() => self.route(&u.snapshot),
                Some((tg, target, result)) = probes.recv() => {
                    let now = self.now();
                    self.targets.handle_probe_result(now, &tg, target, result);
                }
                Ok(()) = config.changed() => self.reconfigure(),
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = self.now();
            if self.targets.poll_timeout().is_some_and(|t| t <= now) {
                self.targets.handle_timeout(now);
            }
            self.idle_draining();
            self.act(&probe_tx);
            self.refresh_origins();
            self.votes.write(&self.node).await;
            let record = self.presence_record();
            self.presence.write(&self.node, record).await;
        }
        self.stop().await;
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(1);
        if let Some(t) = self.targets.poll_timeout() {
            wake = wake.min(self.node.clock.instant(t));
        }
        if !self.targets.draining_targets().is_empty() {
            wake = wake.min(Instant::now() + DRAIN_POLL);
        }
        wake
    }

    fn spec_target_groups(&self) -> BTreeMap<String, flotilla_control::TargetGroupSpec> {
        self.config.cluster_spec(|a| a).target_groups
    }

    /// The instance targets of every target group, from the assignments.
    fn set_targets(&mut self, snapshot: &Snapshot) {
        let keys = self.node.store.keys();
        let mut per_tg: BTreeMap<String, Vec<LbTarget>> = self
            .config
            .target_groups
            .keys()
            .map(|n| (n.clone(), Vec::new()))
            .collect();
        for (key, entry) in &snapshot.entries {
            let Some(Key::Assignment { instance, .. }) = keys.parse(key) else {
                continue;
            };
            let Ok(a) = decode::<Assignment>(key, &entry.value) else {
                continue;
            };
            let Ok(address) = a.address.parse::<SocketAddr>() else {
                continue;
            };
            if !matches!(a.state, AssignedState::Run | AssignedState::Drain) {
                continue;
            }
            for tg in &a.target_groups {
                if let Some(list) = per_tg.get_mut(tg) {
                    list.push(LbTarget {
                        address,
                        instance: InstanceId::from(instance.to_string()),
                        zone: a.zone.clone(),
                    });
                }
            }
        }
        let now = self.now();
        for (tg, list) in per_tg {
            self.targets.set_targets(now, &tg, &list);
        }
    }

    /// Weights in force and zonal shifts, from the routing records.
    fn route(&mut self, snapshot: &Snapshot) {
        let keys = self.node.store.keys();
        let host = self.node.options.address;
        for (key, entry) in &snapshot.entries {
            match keys.parse(key) {
                Some(Key::RoutingWeights { .. }) => {
                    let Some((mut rule, weights)) = decode::<RoutingWeights>(key, &entry.value)
                        .ok()
                        .and_then(|r| convert::from_routing_weights(&r))
                    else {
                        continue;
                    };
                    rule.listener = self
                        .shared
                        .listeners
                        .bound_address(convert::on_host(host, rule.listener));
                    self.shared
                        .listeners
                        .set_weights(rule, weights, &self.shared.data_plane);
                }
                Some(Key::ShiftedZones) => {
                    if let Ok(z) = decode::<ShiftedZones>(key, &entry.value) {
                        self.shared.data_plane.set_shifted_zones(z.zones);
                    }
                }
                _ => {}
            }
        }
    }

    /// Where distributions' origins are now: this node's own listeners and the targets it
    /// finds healthy.
    fn refresh_origins(&self) {
        if self.config.distributions.is_empty() {
            return;
        }
        let healthy = self
            .config
            .target_groups
            .keys()
            .map(|tg| (tg.clone(), healthy_of(self.targets.health(tg))))
            .collect();
        let listeners = &self.shared.listeners;
        let table = OriginTable::of_node(&self.config, |b| listeners.bound_address(b), healthy);
        self.shared.origins.table.store(Arc::new(table));
    }

    /// A new config: listeners added, re-routed or drained, target groups and health checks
    /// updated in place, as `flotilla up`'s reload does.
    fn reconfigure(&mut self) {
        let new = host_config(&self.node.config().config, self.node.options.address);
        let mut blockers = crate::reload::needs_restart(&self.config, &new);
        if self.config.dns.as_ref().map(|d| d.bind) != new.dns.as_ref().map(|d| d.bind) {
            blockers.push("[dns] was added, removed or its bind changed".to_string());
        }
        if !blockers.is_empty() {
            tracing::warn!(
                reasons = blockers.join("; ").as_str(),
                "parts of the new config apply to this load balancer node only after its restart"
            );
        }
        let bound = match crate::listeners::bind_new(
            &self.shared.listeners,
            &new,
            &mut Default::default(),
        ) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "the new config's listeners cannot be bound here; keeping the old ones");
                return;
            }
        };
        let (mut changes, replaced) = self.shared.data_plane.reconfigure(&self.config, &new);
        changes.extend(self.shared.listeners.apply(
            &new,
            bound,
            &self.shared.data_plane,
            &replaced,
        ));
        self.shared.data_plane.remove_absent(&new);
        edge::reconfigure(&self.shared, &new);
        self.config = new;
        let now = self.now();
        let specs = self.spec_target_groups();
        self.targets.configure(now, &specs);
        for name in &replaced {
            self.targets.republish(name);
        }
        tracing::info!(
            changes = changes.join("; ").as_str(),
            "load balancer reconfigured"
        );
    }

    /// Draining targets with nothing in flight for a poll interval are gone.
    fn idle_draining(&mut self) {
        let draining = self.targets.draining_targets();
        let now = Instant::now();
        self.draining_since.retain(|k, _| draining.contains(k));
        for key in draining {
            let since = *self.draining_since.entry(key.clone()).or_insert(now);
            let (tg, addr) = &key;
            if now >= since + DRAIN_POLL && self.shared.data_plane.in_flight(tg, *addr) == 0 {
                let t = self.now();
                self.targets.handle_target_idle(t, tg, *addr);
            }
        }
    }

    /// Carries out the health machine's actions.
    fn act(&mut self, probe_tx: &mpsc::UnboundedSender<ProbeDone>) {
        while let Some(action) = self.targets.poll_action() {
            match action {
                LbAction::Probe {
                    target_group,
                    target,
                } => {
                    let Some(check) = self.shared.data_plane.probe_spec(&target_group) else {
                        continue;
                    };
                    let tx = probe_tx.clone();
                    tokio::spawn(async move {
                        let result = crate::probe::run_probe(target, &check).await;
                        let _ = tx.send((target_group, target, result));
                    });
                }
                LbAction::Publish {
                    target_group,
                    targets,
                } => self
                    .shared
                    .data_plane
                    .publish_targets(&target_group, targets),
                LbAction::Vote {
                    target_group,
                    key,
                    healthy,
                    reason,
                } => self.votes.set(&target_group, &key, Some((healthy, reason))),
                LbAction::Unvote { target_group, key } => self.votes.set(&target_group, &key, None),
            }
        }
    }

    /// This node's registration as it stands: per load balancer, ELB's rule on this node's own
    /// view of the targets.
    fn presence_record(&self) -> LbNodeRecord {
        let options = &self.node.options;
        let lbs = self.config.load_balancers.iter();
        let load_balancers = lbs
            .clone()
            .map(|(name, lb)| {
                let groups = lb.target_group_names().map(|g| self.targets.health(g));
                (name.clone(), load_balancer_healthy(groups))
            })
            .collect();
        let listeners = lbs
            .flat_map(|(_, lb)| &lb.listeners)
            .map(|l| self.shared.listeners.bound_address(l.bind).to_string())
            .collect();
        let distributions = lock(&self.shared.edges)
            .as_ref()
            .map(|e| e.all().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        LbNodeRecord {
            zone: options.zone.clone(),
            address: options.address.to_string(),
            listeners,
            load_balancers,
            distributions,
        }
    }

    /// Leaves DNS answers, then stops accepting and lets in-flight requests finish.
    async fn stop(mut self) {
        self.presence.withdraw(&self.node).await;
        let edges = lock(&self.shared.edges).take();
        if let Some(edges) = edges {
            edges.stop().await;
        }
        let mut proxies = self.shared.listeners.stop_all();
        let drained = tokio::time::timeout(DRAIN_ON_SHUTDOWN, async {
            while proxies.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            proxies.abort_all();
        }
        tracing::info!("load balancer stopped");
    }
}

impl LbShared {
    /// What `GET /v1/listeners` shows of this node.
    pub(crate) fn listener_infos(&self) -> Vec<flotilla_admin::api::ListenerInfo> {
        self.listeners.infos()
    }
}
