//! A node's admin API: the whole cluster from any node. Controller requests are served by the
//! leader term's own adapter when this node leads and forwarded to the leader otherwise
//! (`flotilla_admin::relay`); `GET /v1/nodes` is answered here from a directory of the nodes
//! kept current in the background (registrations, assignments per host, the leader, lease
//! ages).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_admin::api::{ClusterInfo, GroupDetail, GroupSummary, ListenerInfo, NodeInfo};
use flotilla_admin::relay::{Relay, Route};
use flotilla_admin::{AdminBackend, AdminError};
use flotilla_cluster::records::HostRecord;
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, LeaderWatch, PrefixWatcher};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::leader::LeaderHost;
use super::Node;
use crate::admin_adapter::AdminView;
use crate::shared::lock;

/// How often lease ages are read.
const LEASE_POLL: Duration = Duration::from_secs(2);

/// Serves the node's admin API until `stop`.
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: Option<Arc<str>>,
    stop: watch::Receiver<bool>,
) {
    let directory = Directory::spawn(&node);
    let local = Arc::new(Local {
        node: Arc::clone(&node),
        directory: Arc::clone(&directory),
    });
    let relay = Arc::new(NodeRelay {
        node,
        directory,
        token: token.clone(),
        cached: Mutex::new(None),
    });
    if let Err(e) = flotilla_admin::relay::serve_node(listener, local, relay, token, stop).await {
        tracing::error!(error = %e, "the admin API stopped");
    }
}

/// What every node knows about the others.
struct Directory {
    hosts: PrefixWatcher,
    assigned: PrefixWatcher,
    leader: LeaderWatch,
    /// Lease age per lease id, as last read.
    ages: Mutex<BTreeMap<i64, u64>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Directory {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

impl Directory {
    fn spawn(node: &Node) -> Arc<Self> {
        let keys = node.store.keys();
        let etcd = node.store.etcd().clone();
        let d = Arc::new(Directory {
            hosts: PrefixWatcher::spawn(etcd.clone(), keys.hosts_prefix()),
            assigned: PrefixWatcher::spawn(etcd.clone(), keys.assignments_prefix()),
            leader: LeaderWatch::spawn(etcd.clone(), &keys.leader_election()),
            ages: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&d);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_POLL).await;
                let Some(d) = weak.upgrade() else { return };
                let leases: Vec<i64> = d
                    .hosts
                    .snapshot()
                    .entries
                    .values()
                    .map(|e| e.lease)
                    .collect();
                let mut ages = BTreeMap::new();
                for lease in leases {
                    if let Ok(Some((left, granted))) = etcd.lease_ttls(lease).await {
                        let age = u64::try_from(granted - left).unwrap_or(0) * 1000;
                        ages.insert(lease, age);
                    }
                }
                *lock(&d.ages) = ages;
            }
        });
        lock(&d.tasks).push(task);
        d
    }

    /// The address of the leader's admin API, its name.
    fn leader(&self) -> Option<(String, String)> {
        self.leader.leader().map(|l| (l.info.id, l.info.address))
    }

    fn nodes(&self, node: &Node) -> Result<Vec<NodeInfo>, AdminError> {
        let keys = node.store.keys();
        let hosts = self.hosts.snapshot();
        if hosts.revision == 0 {
            return Err(AdminError::Unavailable(format!(
                "the node list is not known yet: {}",
                hosts.last_error.as_deref().unwrap_or("listing the store")
            )));
        }
        let mut instances: BTreeMap<String, u32> = BTreeMap::new();
        for key in self.assigned.snapshot().entries.keys() {
            if let Some(Key::Assignment { host, .. }) = keys.parse(key) {
                *instances.entry(host.to_string()).or_insert(0) += 1;
            }
        }
        let leader = self.leader().map(|(id, _)| id);
        let ages = lock(&self.ages).clone();
        let mut out = Vec::new();
        for (key, entry) in &hosts.entries {
            let Some(Key::Host { host }) = keys.parse(key) else {
                continue;
            };
            let Ok(r) = decode::<HostRecord>(key, &entry.value) else {
                continue;
            };
            out.push(NodeInfo {
                name: host.to_string(),
                zone: r.zone,
                address: r.address,
                roles: r.roles,
                leader: leader.as_deref() == Some(host),
                instances: instances.get(host).copied().unwrap_or(0),
                slots: r.slots,
                lease_age_ms: ages.get(&entry.lease).copied(),
                admin: r.admin,
            });
        }
        Ok(out)
    }
}

/// What a node answers itself.
struct Local {
    node: Arc<Node>,
    directory: Arc<Directory>,
}

impl AdminBackend for Local {
    fn cluster(&self) -> ClusterInfo {
        let c = self.node.config();
        ClusterInfo {
            name: c.config.cluster.name.clone(),
            zones: c.config.cluster.zones.clone(),
        }
    }

    fn groups(&self) -> Vec<GroupSummary> {
        Vec::new()
    }

    fn group(&self, _name: &str) -> Option<GroupDetail> {
        None
    }

    fn nodes(&self) -> Result<Vec<NodeInfo>, AdminError> {
        self.directory.nodes(&self.node)
    }

    fn set_desired_capacity(&self, name: &str, _desired: u32) -> Result<GroupSummary, AdminError> {
        Err(AdminError::NotFound(format!(
            "no auto scaling group named `{name}`"
        )))
    }

    fn activities(&self, _name: &str) -> Option<Vec<flotilla_admin::api::ActivityInfo>> {
        None
    }

    fn target_health(&self, _name: &str) -> Option<Vec<flotilla_admin::api::TargetHealthInfo>> {
        None
    }

    fn listeners(&self) -> Vec<ListenerInfo> {
        lock(&self.node.lb)
            .as_ref()
            .map(|lb| lb.listener_infos())
            .unwrap_or_default()
    }

    fn edge(&self) -> Option<Arc<dyn flotilla_admin::edge_api::EdgeBackend>> {
        Some(Arc::new(super::edge_admin::NodeEdge(Arc::clone(
            &self.node,
        ))))
    }

    /// This node's own metrics (its DNS and distributions); the node's `/metrics` adds them
    /// to the leader's.
    fn prometheus(&self) -> String {
        let lb = lock(&self.node.lb).clone();
        let mut registry = prometheus_client::registry::Registry::with_prefix("flotilla");
        if let Some(lb) = lb {
            let dns = lock(&lb.dns);
            let edges = lock(&lb.edges);
            crate::edge::register_metrics(dns.as_ref(), edges.as_ref(), &mut registry);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Routes controller requests to the leader.
struct NodeRelay {
    node: Arc<Node>,
    directory: Arc<Directory>,
    token: Option<Arc<str>>,
    /// The router of the leader term this node runs (built once per term).
    cached: Mutex<Option<(Arc<LeaderHost>, flotilla_admin::relay::ApiRouter)>>,
}

impl Relay for NodeRelay {
    fn route(&self) -> Route {
        if let Some(host) = self.node.leading() {
            let mut cached = lock(&self.cached);
            if let Some((h, r)) = cached.as_ref() {
                if Arc::ptr_eq(h, &host) {
                    return Route::Here(r.clone());
                }
            }
            let router =
                flotilla_admin::router(Arc::new(AdminView(Arc::clone(&host))), self.token.clone());
            *cached = Some((host, router.clone()));
            return Route::Here(router);
        }
        *lock(&self.cached) = None;
        match self.directory.leader() {
            Some((id, _)) if id == self.node.options.name => Route::Nobody(
                "this node just won the election and is building the control plane; try again"
                    .into(),
            ),
            Some((_, address)) => Route::There(address),
            None => Route::Nobody(
                "no controller leads the cluster right now (an election is under way, or etcd is \
                 unreachable); try again in a few seconds"
                    .into(),
            ),
        }
    }

    fn name(&self) -> String {
        self.node.options.name.clone()
    }
}
