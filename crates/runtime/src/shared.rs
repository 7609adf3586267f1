//! What the control loop, the executor, the event sources and the admin API share: the
//! [`Cluster`] behind one mutex (never held across I/O), the data plane's objects, and the
//! facts only this process knows (instance pids).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use flotilla_admin::api::ActivityInfo;
use flotilla_compute::Compute;
use flotilla_control::{Cluster, InstanceId, Time};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::data_plane::DataPlane;
use crate::listeners::ListenerSet;
use crate::persist::Persister;
use crate::sampler::Sampler;

/// A running instance's process, as the compute provider started or adopted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    /// Its start time from `/proc/<pid>/stat`, so a reused pid is never taken for it.
    pub(crate) start_time: Option<u64>,
}

/// Shared by everything that runs for `flotilla up`.
pub(crate) struct Shared {
    cluster: Mutex<Cluster>,
    /// Wakes the control loop: an event arrived, an effect is queued, a request is held.
    pub(crate) wake: Notify,
    pub(crate) clock: Clock,
    pub(crate) data_plane: DataPlane,
    pub(crate) listeners: ListenerSet,
    pub(crate) provider: Arc<Compute>,
    pub(crate) processes: Mutex<HashMap<InstanceId, Process>>,
    pub(crate) persister: Mutex<Option<Persister>>,
    pub(crate) sampler: Mutex<Sampler>,
    /// Serialises carrying out effects, so two callers never reorder them.
    pub(crate) executing: Mutex<()>,
    /// What the executor needs to launch instances.
    pub(crate) launch: crate::executor::LaunchContext,
    /// Activities of earlier runs (from the state store), newest first, per group.
    pub(crate) history: BTreeMap<String, Vec<ActivityInfo>>,
    /// The config file to re-read on reload.
    pub(crate) config_path: Option<PathBuf>,
    /// The config in force — the file's merged with the AWS API's overlay; replaced by a
    /// successful reload or AWS API change. Lock it before `file_config` and `overlay`.
    pub(crate) config: Mutex<flotilla_config::Config>,
    /// The config file as last loaded (what a reload replaces).
    pub(crate) file_config: Mutex<flotilla_config::Config>,
    /// What the AWS API created, in config terms (what an AWS API change replaces).
    pub(crate) overlay: Mutex<flotilla_aws::Overlay>,
    /// The DNS server and distributions, once started.
    pub(crate) edge: crate::edge::Slot,
}

/// The parts of [`Shared`] built before it.
pub(crate) struct SharedParts {
    pub(crate) cluster: Cluster,
    pub(crate) clock: Clock,
    pub(crate) data_plane: DataPlane,
    pub(crate) listeners: ListenerSet,
    pub(crate) provider: Arc<Compute>,
    pub(crate) processes: HashMap<InstanceId, Process>,
    pub(crate) persister: Persister,
    pub(crate) launch: crate::executor::LaunchContext,
    pub(crate) history: BTreeMap<String, Vec<ActivityInfo>>,
    pub(crate) config: flotilla_config::Config,
    pub(crate) file_config: flotilla_config::Config,
    pub(crate) overlay: flotilla_aws::Overlay,
}

/// Locks a mutex whose holder may have panicked: every value behind these locks stays
/// usable (a panic mid-update leaves the old or the new value, both valid).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(parts: SharedParts) -> Arc<Self> {
        let config_path = (!parts.file_config.path.as_os_str().is_empty())
            .then(|| parts.file_config.path.clone());
        Arc::new(Shared {
            cluster: Mutex::new(parts.cluster),
            wake: Notify::new(),
            clock: parts.clock,
            data_plane: parts.data_plane,
            listeners: parts.listeners,
            provider: parts.provider,
            processes: Mutex::new(parts.processes),
            persister: Mutex::new(Some(parts.persister)),
            sampler: Mutex::new(Sampler::default()),
            executing: Mutex::new(()),
            launch: parts.launch,
            history: parts.history,
            config_path,
            config: Mutex::new(parts.config),
            file_config: Mutex::new(parts.file_config),
            overlay: Mutex::new(parts.overlay),
            edge: Mutex::new(None),
        })
    }

    /// The cluster, locked.
    pub(crate) fn cluster(&self) -> MutexGuard<'_, Cluster> {
        lock(&self.cluster)
    }

    /// Runs `f` on the locked cluster with the time read *after* the lock was taken, so the
    /// cluster never sees time go backwards between two callers.
    pub(crate) fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster, Time) -> R) -> R {
        let mut c = self.cluster();
        let now = self.clock.now();
        f(&mut c, now)
    }

    /// The config in force (locked: reloads replace it).
    pub(crate) fn config(&self) -> MutexGuard<'_, flotilla_config::Config> {
        lock(&self.config)
    }

    /// The instance type of launch template `name` in the config in force, read without
    /// waiting for the config's lock (a reload holding it takes the cluster's next, and callers
    /// of this hold the cluster's).
    pub(crate) fn config_snapshot_instance_type(&self, name: &str) -> Option<String> {
        let config = self.config.try_lock().ok()?;
        config
            .launch_templates
            .get(name)
            .map(|t| t.instance_type.clone())
    }

    /// The pid of an instance's process, if it runs here.
    pub(crate) fn pid(&self, id: &InstanceId) -> Option<u32> {
        lock(&self.processes).get(id).map(|p| p.pid)
    }
}
