//! Cluster mode's commands: `apply` (validate and store the config), `node` (run a host's
//! node), `nodes` (list them).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use flotilla_admin::api::NodeInfo;
use flotilla_cluster::records::{now_ms, ConfigBlob};
use flotilla_cluster::{Etcd, EtcdConfig, Keys, Store};

use crate::cli::{AdminArgs, NodeArgs};
use crate::commands::{client, load_config_or, refused};

/// Validates `path` as `up` does and stores it; nothing is stored when it is invalid.
pub(crate) async fn apply(path: &Path, etcd: &str) -> anyhow::Result<ExitCode> {
    if load_config_or(path, "nothing was applied").is_none() {
        return Ok(ExitCode::FAILURE);
    }
    let toml =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let config = EtcdConfig::from_list(etcd)?;
    let store = Store::new(Etcd::connect(config).await?, Keys::default());
    // Two applies at once: the second one's guard fails and it reads again.
    for _ in 0..5 {
        let current = store.config().await?;
        let (generation, revision) = current
            .map(|c| (c.value.generation, c.mod_revision))
            .unwrap_or((0, 0));
        let blob = ConfigBlob {
            generation: generation + 1,
            toml: toml.clone(),
            source: source.to_string_lossy().into_owned(),
            applied_ms: now_ms(),
        };
        if store.apply_config(&blob, revision).await? {
            println!(
                "{}: applied as generation {}; every node takes it",
                path.display(),
                blob.generation
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    anyhow::bail!("the config kept changing while applying; try again")
}

/// Runs a node until SIGINT or SIGTERM.
pub(crate) fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let roles = flotilla_runtime::Roles::parse(&args.roles).map_err(anyhow::Error::msg)?;
    let etcd = EtcdConfig::from_list(&args.etcd)?.endpoints;
    let options = flotilla_runtime::NodeOptions {
        etcd,
        admin_bind: args
            .admin_bind
            .unwrap_or_else(|| std::net::SocketAddr::new(args.address, 9090)),
        state_dir: args
            .state_dir
            .unwrap_or_else(|| format!(".flotilla-node-{}", args.name).into()),
        name: args.name,
        zone: args.zone,
        address: args.address,
        roles,
        slots: args.slots,
        flotilla_exe: std::env::current_exe().context("finding the flotilla binary")?,
        admin_token: std::env::var("FLOTILLA_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        lease_ttl: Duration::from_secs(args.lease_ttl.max(2)),
        id_seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = crate::commands::shutdown_signal()?;
        flotilla_runtime::run_node(options, shutdown)
            .await
            .context("flotilla node")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `flotilla nodes`.
pub(crate) async fn nodes(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let nodes: Vec<NodeInfo> = match client.get("/v1/nodes").await {
        Ok(n) => n,
        Err(e) => return refused(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
    } else {
        print_nodes(&nodes);
    }
    Ok(ExitCode::SUCCESS)
}

/// The nodes as a table.
pub(crate) fn print_nodes(nodes: &[NodeInfo]) {
    println!(
        "{:<12} {:<8} {:<16} {:<20} {:<7} {:>9} {:>6} {:>10}",
        "NODE", "ZONE", "ADDRESS", "ROLES", "LEADER", "INSTANCES", "SLOTS", "LEASE AGE"
    );
    for n in nodes {
        println!(
            "{:<12} {:<8} {:<16} {:<20} {:<7} {:>9} {:>6} {:>10}",
            n.name,
            n.zone,
            n.address,
            n.roles.join(","),
            if n.leader { "yes" } else { "" },
            n.instances,
            n.slots,
            n.lease_age_ms
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
        );
    }
}
