//! Every listener of every load balancer: its socket, its routing snapshot (compiled from the
//! config with the weights the cluster says are in force), its counters and its own stop
//! switch, so a reload can add, re-route or drain listeners one by one.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use flotilla_admin::api::ListenerInfo;
use flotilla_config::{Action, LoadBalancerType};
use flotilla_control::{RuleKey, WeightedTargetGroup};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::data_plane::DataPlane;
use crate::shared::lock;

mod bind;

pub(crate) use bind::bind_new;

/// One running listener.
pub(crate) struct ListenerEntry {
    info: ListenerInfo,
    pub(crate) load_balancer: String,
    /// The address the config gives (differs from the bound one for port 0).
    pub(crate) configured: SocketAddr,
    /// The listener as configured, with its bind address as bound.
    pub(crate) listener: flotilla_config::Listener,
    idle_timeout: std::time::Duration,
    router: Arc<ArcSwap<flotilla_proxy::Router>>,
    stop: watch::Sender<bool>,
    stats: Arc<flotilla_proxy::ListenerStats>,
    /// A duplicate of the listening socket, handed to a hot upgrade's successor (`None` if
    /// the duplicate could not be made: the successor then binds that address anew).
    fd: Option<OwnedFd>,
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

impl BoundListener {
    /// The address the socket is bound to.
    pub(crate) fn bound(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.listener.bind)
    }
}

type ProxyTask = Result<(), flotilla_proxy::ProxyError>;

/// Every listener, by bound address.
#[derive(Default)]
pub(crate) struct ListenerSet {
    entries: Mutex<BTreeMap<SocketAddr, ListenerEntry>>,
    /// The weights in force of every forward action, as the cluster published them.
    weights: Mutex<HashMap<RuleKey, Vec<WeightedTargetGroup>>>,
    tasks: Mutex<JoinSet<ProxyTask>>,
}

/// The forward actions of a listener with the weights in force substituted.
fn with_weights(
    lb: &str,
    listener: &flotilla_config::Listener,
    weights: &HashMap<RuleKey, Vec<WeightedTargetGroup>>,
) -> flotilla_config::Listener {
    let mut out = listener.clone();
    let key = |priority| RuleKey {
        load_balancer: lb.to_string(),
        listener: listener.bind,
        priority,
    };
    let actions = std::iter::once((None, &mut out.default_action)).chain(
        out.rules
            .iter_mut()
            .map(|r| (Some(r.priority), &mut r.action)),
    );
    for (priority, action) in actions {
        if let Action::Forward { target_groups, .. } = action {
            if let Some(w) = weights.get(&key(priority)) {
                target_groups.clone_from(w);
            }
        }
    }
    out
}

impl ListenerSet {
    /// The routing table of `listener` of `lb` with the weights in force.
    fn compile(
        &self,
        lb: &str,
        listener: &flotilla_config::Listener,
        groups: &HashMap<String, Arc<flotilla_proxy::TargetGroup>>,
    ) -> flotilla_proxy::Router {
        let effective = with_weights(lb, listener, &lock(&self.weights));
        flotilla_proxy::rules::compile(&effective, groups)
    }

    /// Takes a forward action's weights in force and swaps in its listener's new table.
    pub(crate) fn set_weights(
        &self,
        rule: RuleKey,
        weights: Vec<WeightedTargetGroup>,
        data_plane: &DataPlane,
    ) {
        let listener = rule.listener;
        let changed = lock(&self.weights).insert(rule, weights.clone()) != Some(weights);
        if !changed {
            return;
        }
        let entries = lock(&self.entries);
        if let Some(e) = entries.get(&listener) {
            let groups = data_plane.proxy_groups();
            e.router.store(Arc::new(self.compile(
                &e.load_balancer,
                &e.listener,
                &groups,
            )));
        }
    }

    /// The bound address of the listener configured at `configured` (itself when none).
    pub(crate) fn bound_address(&self, configured: SocketAddr) -> SocketAddr {
        lock(&self.entries)
            .values()
            .find(|e| e.configured == configured)
            .map_or(configured, |e| e.listener.bind)
    }

    /// Starts serving a bound listener: HTTP(S) listeners with their compiled rules, TLS and
    /// limits; listeners of network load balancers as TCP flows to their target group.
    pub(crate) fn start(&self, bound: BoundListener, data_plane: &DataPlane) {
        let configured = bound.listener.bind;
        let bind = bound.bound();
        let BoundListener {
            lb_name,
            lb,
            mut listener,
            socket,
            access_log,
            options,
        } = bound;
        // Redirects keep the listener's real port (`#{port}`), also when bound to port 0.
        listener.bind = bind;
        let fd = socket.as_fd().try_clone_to_owned().ok();
        let stats = Arc::new(flotilla_proxy::ListenerStats::default());
        if let Some(log) = &access_log {
            stats.set_access_log(log.clone());
        }
        let groups = data_plane.proxy_groups();
        let router = Arc::new(ArcSwap::from_pointee(
            self.compile(&lb_name, &listener, &groups),
        ));
        let (stop, stop_rx) = watch::channel(false);
        if lb.kind == LoadBalancerType::Network {
            self.spawn_network(socket, &lb, &listener, data_plane, &stats, stop_rx);
        } else {
            let cfg = flotilla_proxy::ListenerConfig {
                idle_timeout: lb.idle_timeout,
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
            bind: bind.to_string(),
            protocol: match listener.protocol {
                flotilla_config::ListenerProtocol::Http => "http",
                flotilla_config::ListenerProtocol::Https => "https",
                flotilla_config::ListenerProtocol::Tcp => "tcp",
            }
            .to_string(),
            target_groups: forwarded_groups(&listener.default_action),
        };
        lock(&self.entries).insert(
            bind,
            ListenerEntry {
                info,
                load_balancer: lb_name,
                configured,
                idle_timeout: lb.idle_timeout,
                listener,
                router,
                stop,
                stats,
                fd,
            },
        );
    }

    /// Every listening socket, for a hot upgrade's successor: (configured address, bound
    /// address, a duplicate of the socket).
    pub(crate) fn sockets(&self) -> Vec<(SocketAddr, SocketAddr, OwnedFd)> {
        lock(&self.entries)
            .values()
            .filter_map(|e| {
                let fd = e.fd.as_ref()?.try_clone().ok()?;
                Some((e.configured, e.listener.bind, fd))
            })
            .collect()
    }

    /// Network load balancers forward every connection to one tcp target group (config
    /// validation guarantees a forward action to an existing one).
    fn spawn_network(
        &self,
        socket: TcpListener,
        lb: &flotilla_config::LoadBalancer,
        listener: &flotilla_config::Listener,
        data_plane: &DataPlane,
        stats: &Arc<flotilla_proxy::ListenerStats>,
        stop_rx: watch::Receiver<bool>,
    ) {
        let tg = listener
            .default_action
            .target_group_names()
            .find_map(|n| data_plane.get(n).map(|tg| (n.to_string(), tg)));
        let Some((tg_name, tg)) = tg else {
            tracing::warn!(bind = %listener.bind, "network listener without a target group; not served");
            return;
        };
        let cfg = flotilla_proxy::TcpListenerConfig {
            idle_timeout: lb.idle_timeout,
            proxy_protocol_v2: data_plane.proxy_protocol_v2(&tg_name),
        };
        lock(&self.tasks).spawn(flotilla_proxy::serve_tcp_with_stats(
            socket,
            tg,
            cfg,
            Arc::clone(stats),
            stop_rx,
        ));
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

    /// Brings the running listeners to `new`'s: drains the removed ones, swaps the routing of
    /// changed ones (no connection is touched), starts `bound`. Returns the change lines.
    pub(crate) fn apply(
        &self,
        new: &flotilla_config::Config,
        bound: Vec<BoundListener>,
        data_plane: &DataPlane,
        rebuilt: &[String],
    ) -> Vec<String> {
        let mut changes = Vec::new();
        let wanted: BTreeMap<
            SocketAddr,
            (&String, &flotilla_config::Listener, std::time::Duration),
        > = new
            .load_balancers
            .iter()
            .flat_map(|(n, lb)| {
                lb.listeners
                    .iter()
                    .map(move |l| (l.bind, (n, l, lb.idle_timeout)))
            })
            .collect();
        {
            let groups = data_plane.proxy_groups();
            let mut entries = lock(&self.entries);
            entries.retain(|addr, e| {
                let keep = wanted.contains_key(&e.configured);
                if !keep {
                    let _ = e.stop.send(true);
                    changes.push(format!(
                        "listener {addr} of {}: removed (draining in-flight requests)",
                        e.load_balancer
                    ));
                }
                keep
            });
            for e in entries.values_mut() {
                let Some((lb, l, idle)) = wanted.get(&e.configured) else {
                    continue;
                };
                let mut l = (*l).clone();
                l.bind = e.listener.bind;
                let uses_rebuilt = std::iter::once(&l.default_action)
                    .chain(l.rules.iter().map(|r| &r.action))
                    .any(|a| {
                        a.target_group_names()
                            .any(|n| rebuilt.iter().any(|r| r == n))
                    });
                if uses_rebuilt && e.listener == l {
                    // Same rules, new target group objects: compile against them.
                    e.router.store(Arc::new(self.compile(lb, &l, &groups)));
                }
                if e.listener != l || e.load_balancer != **lb {
                    e.router.store(Arc::new(self.compile(lb, &l, &groups)));
                    e.info.target_groups = forwarded_groups(&l.default_action);
                    e.info.load_balancer = (*lb).clone();
                    e.load_balancer = (*lb).clone();
                    changes.push(format!(
                        "listener {} of {lb}: routing updated",
                        e.listener.bind
                    ));
                    e.listener = l;
                }
                if e.idle_timeout != *idle {
                    changes.push(format!(
                        "listener {} of {lb}: the new idle_timeout applies after a restart",
                        e.listener.bind
                    ));
                }
            }
        }
        for b in bound {
            let line = format!("listener {} of {}: added", b.bound(), b.lb_name);
            self.start(b, data_plane);
            changes.push(line);
        }
        changes
    }

    /// Stops every listener from accepting (in-flight requests finish) and hands back their
    /// tasks to await.
    pub(crate) fn stop_all(&self) -> JoinSet<ProxyTask> {
        for e in lock(&self.entries).values() {
            let _ = e.stop.send(true);
        }
        std::mem::take(&mut *lock(&self.tasks))
    }

    /// Whether a listener is configured at `configured` already.
    pub(crate) fn has_configured(&self, configured: SocketAddr) -> bool {
        lock(&self.entries)
            .values()
            .any(|e| e.configured == configured)
    }
}

/// The target groups a forward action sends to.
pub(crate) fn forwarded_groups(action: &Action) -> Vec<String> {
    action.target_group_names().map(str::to_string).collect()
}
