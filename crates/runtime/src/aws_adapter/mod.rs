//! The AWS API's handle on the runtime: at start, the overlay stored by earlier runs is
//! merged with the file's config before anything is built; afterwards every change the API
//! makes is merged the same way and applied with the reload's [`apply`](crate::reload::apply)
//! (listeners bound, groups and target groups added or removed in place), then stored. Reads
//! come from the cluster's views; commands go to its operator methods, like the admin API's.

mod live;

use std::collections::BTreeMap;
use std::sync::Arc;

use flotilla_aws::model::overlay::OverlayContext;
use flotilla_aws::{
    ActivityLive, AwsBackend, CommandResult, GroupLive, InstanceLive, Overlay, Record, RefreshLive,
    Registry, Settings, TargetLive,
};
use flotilla_config::Config;
use flotilla_control::{
    Cluster, InstanceId, LifecycleActionResult, OperatorError, RefreshOverrides, ScalingProcess,
};
use flotilla_state::{SqliteStore, StateStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shared::{lock, Shared};
use crate::RuntimeError;

/// What `flotilla up` needs from the AWS API before it builds anything.
pub(crate) struct Prepared {
    /// The file's config with the API's overlay merged in.
    pub(crate) config: Config,
    /// The overlay.
    pub(crate) overlay: Overlay,
    api: Option<(TcpListener, Settings, Registry)>,
}

/// Access keys from `ACCESS_KEY_ID:SECRET` pairs (comma-separated) in the named variables.
fn keys_from_env(names: &[String]) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for name in names {
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once(':') {
                Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                    keys.insert(id.to_string(), secret.to_string());
                }
                _ => tracing::warn!(
                    variable = name.as_str(),
                    "ignoring an access key that is not ACCESS_KEY_ID:SECRET_ACCESS_KEY"
                ),
            }
        }
    }
    keys
}

/// Reads the stored overlay, merges it with `file` and binds the API's address (or takes
/// `inherited`, a hot upgrade predecessor's socket for that address), so a bad overlay or a
/// taken port fails the start before any instance exists.
pub(crate) async fn prepare(
    file: &Config,
    store: &SqliteStore,
    inherited: Option<(std::net::SocketAddr, std::os::fd::OwnedFd)>,
) -> Result<Prepared, RuntimeError> {
    let records = store.aws_resources()?;
    let Some(api) = &file.aws_api else {
        if !records.is_empty() {
            tracing::warn!(
                resources = records.len(),
                "the AWS API created resources earlier, but the config has no [aws_api]: they \
                 are kept, not run"
            );
        }
        return Ok(Prepared {
            config: file.clone(),
            overlay: Overlay::default(),
            api: None,
        });
    };
    let keys = keys_from_env(&api.credentials_env);
    if !api.bind.ip().is_loopback() && keys.is_empty() {
        return Err(RuntimeError::AwsKeysRequired {
            addr: api.bind,
            env: api.credentials_env.join(" or "),
        });
    }
    let registry = Registry::from_records(&records);
    let cx = OverlayContext {
        images: &api.images,
        listen_ip: api.bind.ip(),
        working_dir: &file.base_dir,
    };
    let overlay = Overlay::build(&registry, &cx).map_err(RuntimeError::AwsOverlay)?;
    let config = overlay.merge_into(file).map_err(RuntimeError::AwsOverlay)?;
    let listener = match inherited.filter(|(addr, _)| *addr == api.bind) {
        Some((_, fd)) => {
            let socket = std::net::TcpListener::from(fd);
            socket
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(socket))
        }
        None => TcpListener::bind(api.bind).await,
    }
    .map_err(|source| RuntimeError::Bind {
        addr: api.bind,
        source,
    })?;
    let settings = Settings {
        region: api.region.clone(),
        account_id: api.account_id.clone(),
        keys,
        listen_ip: api.bind.ip(),
    };
    Ok(Prepared {
        config,
        overlay,
        api: Some((listener, settings, registry)),
    })
}

impl Prepared {
    /// The API's configured address and a duplicate of its socket, for a hot upgrade's
    /// successor.
    pub(crate) fn socket(
        &self,
        file: &Config,
    ) -> Option<(std::net::SocketAddr, std::os::fd::OwnedFd)> {
        use std::os::fd::AsFd;
        let (listener, _, _) = self.api.as_ref()?;
        let addr = file.aws_api.as_ref()?.bind;
        Some((addr, listener.as_fd().try_clone_to_owned().ok()?))
    }

    /// Starts serving the AWS API (when configured) until `stop` turns true.
    pub(crate) fn serve(
        self,
        shared: &Arc<Shared>,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<std::io::Result<()>>> {
        let (listener, settings, registry) = self.api?;
        let addr = listener.local_addr().ok();
        let signed = !settings.keys.is_empty();
        tracing::info!(aws_api = ?addr, signatures_checked = signed, "AWS API is up");
        let backend: Arc<dyn AwsBackend> = Arc::new(AwsView(Arc::clone(shared)));
        Some(tokio::spawn(flotilla_aws::serve(
            listener, settings, registry, backend, stop,
        )))
    }
}

/// The AWS API's view of the runtime.
pub(crate) struct AwsView(pub(crate) Arc<Shared>);

impl AwsView {
    /// Runs an operator command on the cluster, then carries out what it set off.
    fn command<R>(
        &self,
        f: impl FnOnce(&mut Cluster, flotilla_control::Time) -> Result<R, OperatorError>,
    ) -> CommandResult<R> {
        let r = self
            .0
            .operate(f)
            .ok_or_else(|| crate::upgrade::handing_over().to_string())?
            .map_err(|e| e.to_string())?;
        crate::executor::execute_pending(&self.0);
        self.0.wake.notify_one();
        Ok(r)
    }
}

impl AwsBackend for AwsView {
    fn file_config(&self) -> Config {
        lock(&self.0.file_config).clone()
    }

    fn apply(&self, overlay: &Overlay, records: Vec<Record>) -> CommandResult<()> {
        let mut current = self.0.config();
        let merged = overlay.merge_into(&lock(&self.0.file_config))?;
        let changes =
            crate::reload::apply(&self.0, &mut current, merged).map_err(|e| e.to_string())?;
        drop(current);
        for change in &changes {
            tracing::info!(change = change.as_str(), "AWS API change applied");
        }
        *lock(&self.0.overlay) = overlay.clone();
        if let Some(p) = lock(&self.0.persister).as_ref() {
            p.aws_resources(records);
        }
        Ok(())
    }

    fn group(&self, name: &str) -> Option<GroupLive> {
        let c = self.0.cluster();
        live::group(&self.0, &c, name)
    }

    fn activities(&self, name: &str) -> Option<Vec<ActivityLive>> {
        let c = self.0.cluster();
        live::activities(&self.0, &c, name)
    }

    fn target_health(&self, name: &str) -> Option<Vec<TargetLive>> {
        let c = self.0.cluster();
        live::target_health(&c, name)
    }

    fn instances(&self) -> Vec<InstanceLive> {
        let c = self.0.cluster();
        let names: Vec<String> = c.groups().map(|g| g.name.to_string()).collect();
        names
            .iter()
            .filter_map(|n| live::group(&self.0, &c, n))
            .flat_map(|g| g.instances)
            .collect()
    }

    fn set_desired_capacity(&self, group: &str, desired: u32) -> CommandResult<()> {
        self.command(|c, now| c.set_desired_capacity(now, group, desired))
    }

    fn terminate_instance(&self, id: &str, decrement: bool) -> CommandResult<String> {
        let id = InstanceId::from(id.to_string());
        self.command(|c, now| c.terminate_instance(now, &id, decrement))
            .map(|t| t.group)
    }

    fn set_instance_protection(&self, id: &str, protected: bool) -> CommandResult<()> {
        let id = InstanceId::from(id.to_string());
        self.command(|c, now| c.set_instance_protection(now, &id, protected))
            .map(|_| ())
    }

    fn set_suspended_processes(&self, group: &str, processes: &[String]) -> CommandResult<()> {
        let wanted = processes
            .iter()
            .map(|p| p.parse::<ScalingProcess>())
            .collect::<Result<std::collections::BTreeSet<_>, _>>()
            .map_err(|e| e.to_string())?;
        self.command(|c, now| c.set_suspended_processes(now, group, &wanted))
    }

    fn start_instance_refresh(
        &self,
        group: &str,
        min_healthy: Option<u32>,
        warmup: Option<u64>,
        checkpoints: Option<Vec<u32>>,
        checkpoint_delay: Option<u64>,
    ) -> CommandResult<RefreshLive> {
        let overrides = RefreshOverrides {
            min_healthy_percentage: min_healthy,
            instance_warmup: warmup.map(std::time::Duration::from_secs),
            checkpoint_percentages: checkpoints,
            checkpoint_delay: checkpoint_delay.map(std::time::Duration::from_secs),
            auto_rollback: None,
        };
        let r = self.command(|c, now| c.start_instance_refresh(now, group, overrides))?;
        Ok(live::refresh(&self.0.clock, &r))
    }

    fn cancel_instance_refresh(&self, group: &str) -> CommandResult<RefreshLive> {
        let r = self.command(|c, now| c.cancel_instance_refresh(now, group))?;
        Ok(live::refresh(&self.0.clock, &r))
    }

    fn complete_lifecycle_action(
        &self,
        group: &str,
        instance: &str,
        hook: &str,
        proceed: bool,
    ) -> CommandResult<()> {
        let id = InstanceId::from(instance.to_string());
        let result = if proceed {
            LifecycleActionResult::Continue
        } else {
            LifecycleActionResult::Abandon
        };
        self.command(|c, now| c.complete_lifecycle_action(now, group, &id, hook, result))
    }
}
