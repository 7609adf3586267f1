//! `flotilla node`: one process per host of a cluster coordinated through etcd. It joins
//! (lease, applied config, zone check, registration), then runs its roles:
//!
//! - `control` ([`leader`]): campaigns; while it leads, runs the same `Cluster` as `flotilla up`
//!   inside a `Fleet` and writes its decisions as fenced assignments;
//! - `lb` ([`lb`]): binds the config's listeners (and `[dns]`) on this host's address, checks
//!   the targets the assignments name itself, routes with the same data plane, votes on
//!   health, and answers DNS alias records with every live, healthy lb node;
//! - `compute` ([`agent`]): runs the instances assigned to this host, reports them, adopts
//!   them after its own restart, and stops what is no longer assigned;
//!
//! and an admin API ([`admin`]) that answers for the whole cluster from any node.

mod admin;
mod agent;
mod config_watch;
mod convert;
mod edge_admin;
mod error;
mod lb;
mod leader;
mod membership;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_cluster::{Etcd, EtcdConfig, Keys, LeaseKeeper, Store};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::shared::lock;

pub use error::NodeError;

/// Which roles a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Leader candidate: runs the control plane while elected.
    pub control: bool,
    /// Load balancer: serves the config's listeners on this host.
    pub lb: bool,
    /// Agent: runs instances.
    pub compute: bool,
}

impl Roles {
    /// Every role (the default).
    pub const ALL: Roles = Roles {
        control: true,
        lb: true,
        compute: true,
    };

    /// Parses `control,lb,compute` (any subset, at least one).
    pub fn parse(list: &str) -> Result<Roles, String> {
        let mut r = Roles {
            control: false,
            lb: false,
            compute: false,
        };
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "control" => r.control = true,
                "lb" => r.lb = true,
                "compute" => r.compute = true,
                other => {
                    return Err(format!(
                        "unknown role `{other}`; roles are control, lb and compute"
                    ))
                }
            }
        }
        if r == (Roles {
            control: false,
            lb: false,
            compute: false,
        }) {
            return Err("at least one role is needed: control, lb or compute".into());
        }
        Ok(r)
    }

    /// The role names, as the registration lists them.
    pub fn names(&self) -> Vec<String> {
        [
            (self.control, "control"),
            (self.lb, "lb"),
            (self.compute, convert::COMPUTE),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect()
    }
}

/// What `flotilla node` is started with.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// The node's (host's) name, unique in the cluster.
    pub name: String,
    /// Its zone; must be one of the config's.
    pub zone: String,
    /// The address its listeners and instances bind.
    pub address: IpAddr,
    /// Its roles.
    pub roles: Roles,
    /// How many instances it runs at most (compute).
    pub slots: u32,
    /// Where its admin API listens.
    pub admin_bind: SocketAddr,
    /// Where it keeps its state (instance records, logs).
    pub state_dir: PathBuf,
    /// The binary, for `{flotilla}` in launch templates.
    pub flotilla_exe: PathBuf,
    /// The admin API's bearer token (required on a non-loopback bind).
    pub admin_token: Option<String>,
    /// TTL of the node's lease: how fast the leader learns that it is gone.
    pub lease_ttl: Duration,
    /// Seed for instance ids while this node leads.
    pub id_seed: u64,
}

/// The applied config as a node runs it.
#[derive(Debug)]
pub(crate) struct NodeConfig {
    pub(crate) config: flotilla_config::Config,
    /// The apply that stored it.
    pub(crate) generation: u64,
}

/// What the roles of one node share.
pub(crate) struct Node {
    pub(crate) options: Arc<NodeOptions>,
    pub(crate) store: Store,
    pub(crate) lease: Arc<LeaseKeeper>,
    pub(crate) clock: Clock,
    /// The applied config, replaced by every valid `flotilla apply`.
    pub(crate) config: watch::Receiver<Arc<NodeConfig>>,
    /// `http://ADDRESS:PORT` of this node's admin API.
    pub(crate) admin_url: String,
    /// The admin backend of the leader term this node runs, while it leads.
    pub(crate) leading: Mutex<Option<Arc<leader::LeaderHost>>>,
    /// This node's load balancer, when it has the role (for the admin API's listeners).
    pub(crate) lb: Mutex<Option<Arc<lb::LbShared>>>,
}

impl Node {
    /// The lease id keys of this node hang on now.
    pub(crate) fn lease_id(&self) -> i64 {
        self.lease.id()
    }

    /// The config in force.
    pub(crate) fn config(&self) -> Arc<NodeConfig> {
        self.config.borrow().clone()
    }

    pub(crate) fn leading(&self) -> Option<Arc<leader::LeaderHost>> {
        lock(&self.leading).clone()
    }
}

/// Runs a node until `shutdown` completes. Fails at start — with a clear message — on a zone
/// the config lacks, a name another node holds, or an address that cannot be bound; an etcd
/// that answers nothing is reported and retried with backoff, never a crash.
pub async fn run_node(
    options: NodeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    tokio::pin!(shutdown);
    let joined = tokio::select! {
        joined = join(options) => joined?,
        () = &mut shutdown => {
            tracing::info!("shutdown requested while joining the cluster");
            return Ok(());
        }
    };
    serve(joined, shutdown).await;
    Ok(())
}

/// What joining leaves for serving.
struct Joined {
    node: Arc<Node>,
    record: flotilla_cluster::records::HostRecord,
    admin: tokio::net::TcpListener,
    lb: Option<lb::Bound>,
}

async fn join(options: NodeOptions) -> Result<Joined, NodeError> {
    flotilla_cluster::keys::check_segment("node name", &options.name)
        .map_err(|_| NodeError::BadName(options.name.clone()))?;
    if !options.admin_bind.ip().is_loopback() && options.admin_token.is_none() {
        return Err(NodeError::AdminTokenRequired {
            addr: options.admin_bind,
        });
    }
    std::fs::create_dir_all(&options.state_dir).map_err(|source| NodeError::StateDir {
        path: options.state_dir.clone(),
        source,
    })?;
    membership::claim_state_dir(&options.state_dir)?;
    let store = connect(&options).await?;
    let config = membership::config(&store).await?;
    membership::check_zone(&options, &config)?;
    let admin = tokio::net::TcpListener::bind(options.admin_bind)
        .await
        .map_err(|source| NodeError::Bind {
            addr: options.admin_bind,
            source,
        })?;
    // Listeners are bound before the node registers: a taken port refuses the start.
    let lb = match options.roles.lb {
        true => Some(lb::bind(&options, &config.config).await?),
        false => None,
    };
    let lease = membership::lease(&store, options.lease_ttl).await?;
    let admin_url = format!(
        "http://{}",
        admin.local_addr().unwrap_or(options.admin_bind)
    );
    let record = membership::record(&options, &admin_url);
    membership::register(&store, &options, &record, lease.id()).await?;
    tracing::info!(
        node = options.name.as_str(),
        zone = options.zone.as_str(),
        address = %options.address,
        roles = options.roles.names().join(",").as_str(),
        admin = admin_url.as_str(),
        "joined the cluster"
    );
    let config = config_watch::spawn(store.clone(), config);
    let node = Arc::new(Node {
        options: Arc::new(options),
        store,
        lease: Arc::new(lease),
        clock: Clock::start(),
        config,
        admin_url,
        leading: Mutex::new(None),
        lb: Mutex::new(None),
    });
    Ok(Joined {
        node,
        record,
        admin,
        lb,
    })
}

/// Runs the roles and the admin API until `shutdown`; then stops them in order and revokes the
/// lease (the node's registration, observations and votes go at once).
async fn serve(joined: Joined, shutdown: impl std::future::Future<Output = ()>) {
    let Joined {
        node,
        record,
        admin,
        lb,
    } = joined;
    let (stop, stopped) = watch::channel(false);
    let keeper = tokio::spawn(membership::keep_registered(
        node.store.clone(),
        node.options.clone(),
        record,
        node.lease.subscribe(),
    ));
    let mut roles = tokio::task::JoinSet::new();
    if let Some(bound) = lb {
        let shared = lb::start(&node, bound, &mut roles, stopped.clone());
        *lock(&node.lb) = Some(shared);
    }
    if node.options.roles.compute {
        match agent::Agent::start(node.clone()) {
            Ok(a) => {
                roles.spawn(a.run(stopped.clone()));
            }
            Err(e) => tracing::error!(error = %e, "the agent cannot start"),
        }
    }
    if node.options.roles.control {
        roles.spawn(leader::run(node.clone(), stopped.clone()));
    }
    let token = node.options.admin_token.clone().map(Arc::from);
    let admin = tokio::spawn(admin::serve(node.clone(), admin, token, stopped.clone()));
    shutdown.await;
    tracing::info!("shutting down the node");
    let _ = stop.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(35), async {
        while roles.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("roles still stopping after 35 s; leaving");
        roles.abort_all();
    }
    let _ = admin.await;
    keeper.abort();
    if let Err(e) = node.store.etcd().revoke(node.lease_id()).await {
        tracing::warn!(error = %e, "cannot revoke the node's lease; it expires on its own");
    }
    tracing::info!("node stopped");
}

/// Connects to etcd (lazily: nothing is sent yet).
async fn connect(options: &NodeOptions) -> Result<Store, NodeError> {
    let etcd = Etcd::connect(EtcdConfig::new(options.etcd.clone())).await?;
    Ok(Store::new(etcd, Keys::default()))
}
