//! Joining the cluster: a lease (re-granted when lost), the applied config (waited for), the
//! zone check, and the host registration under the lease — refused when another node has the
//! name, renewed whenever the lease is re-granted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::records::{now_ms, ConfigBlob, HostRecord};
use flotilla_cluster::retry::{Jitter, RetryPolicy};
use flotilla_cluster::{ClusterError, LeaseKeeper, LeaseOptions, Store};
use tokio::sync::watch;

use super::{NodeConfig, NodeError, NodeOptions};

/// Backoff between attempts while etcd answers nothing: 1 s doubling to 30 s, jittered.
fn backoff() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        ..RetryPolicy::default()
    }
}

/// Runs `op` until it succeeds or fails for a reason retrying will not fix; while the store
/// answers nothing, says so clearly and retries with backoff.
pub(super) async fn until_reachable<T, F, Fut>(what: &str, mut op: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let policy = backoff();
    let mut jitter = Jitter::new();
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(e) if e.is_transient() => {
                attempt += 1;
                let delay = policy.delay(attempt, &mut jitter);
                tracing::error!(error = %e, retry_in = ?delay, "{what}: etcd answers nothing; retrying");
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// The lease this node's registration, observations and votes hang on.
pub(super) async fn lease(store: &Store, ttl: Duration) -> Result<LeaseKeeper, ClusterError> {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(10).max(2);
    until_reachable("granting the node's lease", || {
        LeaseKeeper::start(store.etcd().clone(), LeaseOptions::new(ttl))
    })
    .await
}

/// Parses a stored config as the file `apply` read (relative paths resolve as there).
pub(super) fn parse(blob: &ConfigBlob) -> Result<NodeConfig, String> {
    let path = Path::new(if blob.source.is_empty() {
        "flotilla.toml"
    } else {
        &blob.source
    });
    flotilla_config::parse(&blob.toml, path)
        .map(|config| NodeConfig {
            config,
            generation: blob.generation,
        })
        .map_err(|e| e.to_string())
}

/// The applied config, waiting (and saying so) until `flotilla apply` stored one.
pub(super) async fn config(store: &Store) -> Result<NodeConfig, ClusterError> {
    let mut said = false;
    loop {
        let blob = until_reachable("reading the config", || store.config()).await?;
        match blob.map(|b| parse(&b.value)) {
            Some(Ok(c)) => return Ok(c),
            Some(Err(e)) => tracing::error!(
                error = e.as_str(),
                "the stored config does not parse; waiting for another `flotilla apply`"
            ),
            None if !said => {
                tracing::warn!(
                    "no config applied yet; waiting for `flotilla apply CONFIG --etcd …`"
                );
                said = true;
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Refuses a zone the config does not have.
pub(super) fn check_zone(options: &NodeOptions, config: &NodeConfig) -> Result<(), NodeError> {
    let zones = &config.config.cluster.zones;
    if zones.contains(&options.zone) {
        return Ok(());
    }
    Err(NodeError::UnknownZone {
        zone: options.zone.clone(),
        zones: zones.join(", "),
    })
}

/// This node's registration.
pub(super) fn record(options: &NodeOptions, admin: &str) -> HostRecord {
    HostRecord {
        zone: options.zone.clone(),
        address: options.address.to_string(),
        roles: options.roles.names(),
        slots: if options.roles.compute {
            options.slots
        } else {
            0
        },
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        registered_ms: now_ms(),
        admin: admin.to_string(),
    }
}

/// Claims the state directory for this process: refused while another live flotilla process
/// holds it (two nodes on one directory would take each other for a restart of themselves).
pub(super) fn claim_state_dir(state_dir: &Path) -> Result<(), NodeError> {
    let path = state_dir.join("node.pid");
    if let Some(pid) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    {
        let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("flotilla"));
        if alive && pid != std::process::id() {
            return Err(NodeError::StateDirInUse {
                path: state_dir.to_path_buf(),
                pid,
            });
        }
    }
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|source| NodeError::StateDir { path, source })
}

/// The lease of this node's previous run, so a restart within the lease TTL is not taken for
/// a second node with the same name.
fn previous_lease(state_dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(state_dir.join("node-lease")).ok()?;
    i64::from_str_radix(text.trim(), 16).ok()
}

fn remember_lease(state_dir: &Path, lease: i64) -> Result<(), NodeError> {
    let path = state_dir.join("node-lease");
    std::fs::write(&path, format!("{lease:x}\n")).map_err(|source| NodeError::StateDir {
        path: path.clone(),
        source,
    })
}

/// Registers `hosts/<name>` under `lease`, only if no other node holds the name. The
/// registration this node's previous run left (same lease as remembered) is revoked first.
pub(super) async fn register(
    store: &Store,
    options: &NodeOptions,
    record: &HostRecord,
    lease: i64,
) -> Result<(), NodeError> {
    let previous = previous_lease(&options.state_dir);
    loop {
        let outcome = until_reachable("registering the node", || {
            store.register_host_once(&options.name, record, lease)
        })
        .await;
        let existing = match outcome {
            Ok(Ok(_)) => break,
            Ok(Err(existing)) => existing,
            Err(ClusterError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if existing.lease == lease {
            break;
        }
        if Some(existing.lease) == previous && existing.lease != 0 {
            tracing::info!(
                node = options.name.as_str(),
                "revoking the registration of this node's previous run"
            );
            until_reachable("revoking the previous lease", || {
                store.etcd().revoke(existing.lease)
            })
            .await?;
            continue;
        }
        return Err(NodeError::DuplicateName {
            name: options.name.clone(),
            zone: existing.value.zone,
            address: existing.value.address,
            ttl_secs: options.lease_ttl.as_secs(),
        });
    }
    remember_lease(&options.state_dir, lease)
}

/// Keeps the registration: when the lease is re-granted (it expired, e.g. while this node was
/// cut off), registers again under the new one. Stops when `lease` is dropped.
pub(super) async fn keep_registered(
    store: Store,
    options: Arc<NodeOptions>,
    record: HostRecord,
    mut lease: watch::Receiver<flotilla_cluster::LeaseSnapshot>,
) {
    let mut generation = lease.borrow().generation;
    while lease.changed().await.is_ok() {
        let s = lease.borrow_and_update().clone();
        if s.generation == generation || s.status != flotilla_cluster::LeaseStatus::Alive {
            continue;
        }
        generation = s.generation;
        tracing::warn!(
            node = options.name.as_str(),
            "the node's lease was re-granted; registering again"
        );
        if let Err(e) = register(&store, &options, &record, s.id).await {
            tracing::error!(error = %e, "cannot register again");
        }
    }
}
