//! What the control loop, the executor, the event sources and the admin API share: the
//! [`Cluster`] behind one mutex (never held across I/O), the data plane's objects, and the
//! facts only this process knows (instance pids).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    /// Its start time from `/proc/<pid>/stat`, so a reused pid is never taken for it.
    pub(crate) start_time: Option<u64>,
    /// For an image instance with limits: what its cgroup enforces of them (read at launch,
    /// handed over by a hot upgrade; not known for one adopted after a restart).
    pub(crate) limits: Option<flotilla_compute::InstanceLimits>,
}

/// An event for the cluster, held back while a hot upgrade hands over.
pub(crate) type Queued = Box<dyn FnOnce(&mut Cluster, Time) + Send>;

/// Whether the cluster takes events: a hot upgrade *retires* it at the moment it is
/// snapshotted for the successor; events that arrive after that are queued, applied if the
/// upgrade fails (and dropped if it succeeds: the successor sees them for itself).
#[derive(Default)]
pub(crate) struct Gate {
    pub(crate) retired: bool,
    pub(crate) queued: Vec<Queued>,
}

/// Shared by everything that runs for `flotilla up`.
pub(crate) struct Shared {
    cluster: Mutex<Cluster>,
    /// Taken before `cluster` when both are needed.
    gate: Mutex<Gate>,
    /// Wakes the control loop when the gate opens again.
    pub(crate) gate_changed: Notify,
    /// Launch tasks under way (a hot upgrade waits for none before it retires the cluster).
    pub(crate) launches: AtomicUsize,
    /// Effects other than the data plane's are held back here while a successor of a hot
    /// upgrade is not yet committed (it must start or stop nothing before then).
    pub(crate) deferring: AtomicBool,
    pub(crate) deferred: Mutex<Vec<flotilla_control::Effect>>,
    /// What a hot upgrade needs of this process (its command line, its sockets, its run).
    pub(crate) handover: crate::upgrade::Handover,
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
    pub(crate) handover: crate::upgrade::Handover,
    /// A successor's start: hold back process effects until committed.
    pub(crate) deferring: bool,
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
            gate: Mutex::new(Gate::default()),
            gate_changed: Notify::new(),
            launches: AtomicUsize::new(0),
            deferring: AtomicBool::new(parts.deferring),
            deferred: Mutex::new(Vec::new()),
            handover: parts.handover,
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

    /// Feeds the cluster an event at the current time — or, while a hot upgrade has retired
    /// it, queues the event (see [`Gate`]).
    pub(crate) fn event(&self, f: impl FnOnce(&mut Cluster, Time) + Send + 'static) {
        let mut gate = lock(&self.gate);
        if gate.retired {
            gate.queued.push(Box::new(f));
            return;
        }
        let mut c = self.cluster();
        let now = self.clock.now();
        f(&mut c, now);
    }

    /// Runs an operator command on the cluster, refused (`None`) while a hot upgrade has
    /// retired it.
    pub(crate) fn operate<R>(&self, f: impl FnOnce(&mut Cluster, Time) -> R) -> Option<R> {
        let gate = lock(&self.gate);
        if gate.retired {
            return None;
        }
        let r = self.with_cluster(f);
        drop(gate);
        Some(r)
    }

    /// Whether a hot upgrade has retired the cluster.
    pub(crate) fn is_retired(&self) -> bool {
        lock(&self.gate).retired
    }

    /// Retires the cluster if `ready` says the moment is right, returning what `take` makes
    /// of it then; atomic with every event (they are queued from here on).
    pub(crate) fn retire_if<R>(
        &self,
        ready: impl FnOnce(&Cluster) -> bool,
        take: impl FnOnce(&Cluster) -> R,
    ) -> Option<R> {
        let mut gate = lock(&self.gate);
        let c = self.cluster();
        if self.launches.load(Ordering::SeqCst) != 0 || !ready(&c) {
            return None;
        }
        gate.retired = true;
        Some(take(&c))
    }

    /// Opens the gate again (the upgrade failed): queued events are applied in order, at the
    /// current time.
    pub(crate) fn resume(&self) {
        let mut gate = lock(&self.gate);
        gate.retired = false;
        let queued = std::mem::take(&mut gate.queued);
        let mut c = self.cluster();
        let now = self.clock.now();
        let n = queued.len();
        for f in queued {
            f(&mut c, now);
        }
        drop(c);
        drop(gate);
        tracing::info!(events = n, "the cluster takes events again");
        self.gate_changed.notify_one();
        self.wake.notify_one();
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

    /// What the cgroup of an image instance running here enforces of its limits.
    pub(crate) fn limits(&self, id: &InstanceId) -> Option<flotilla_compute::InstanceLimits> {
        lock(&self.processes).get(id).and_then(|p| p.limits.clone())
    }
}
