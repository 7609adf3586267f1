//! The compute role: runs the instances assigned to this host (`assign/<host>/`) with the
//! same providers as `flotilla up` — processes, and containers through the host's engine
//! when the launch template names an image — on the host's address, and surviving the
//! agent, so a restarted agent adopts them — and reports each one (`obs/<host>/<id>`, leased).
//! It decides nothing: it starts what is assigned to run, stops or kills what is told to, and
//! stops what is no longer assigned here (an orphan: its host was declared lost and its
//! instances replaced). While etcd is away it keeps everything running as it is.

mod adopt;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::records::{AssignedState, Assignment, Observation, ObservedState};
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, PrefixWatcher, Snapshot};
use flotilla_compute::{Compute, ComputeEvent, ComputeProvider, LocalOptions};
use flotilla_control::InstanceId;
use tokio::sync::{mpsc, watch};

use super::{convert, Node, NodeError};
use state::{Local, Phase, StateFile};

/// How often the agent reconciles and re-publishes even without news (repairs missed events
/// and reports that failed while etcd was away).
const RESYNC: Duration = Duration::from_secs(1);

/// A launch's outcome, from its task.
enum Launched {
    Ok { id: String, pid: u32, port: u16 },
    Failed { id: String, reason: String },
}

/// The agent of one host.
pub(crate) struct Agent {
    node: Arc<Node>,
    provider: Arc<Compute>,
    events: mpsc::UnboundedReceiver<ComputeEvent>,
    launched_tx: mpsc::UnboundedSender<Launched>,
    launched: mpsc::UnboundedReceiver<Launched>,
    local: BTreeMap<String, Local>,
    /// The observations written, as written.
    published: BTreeMap<String, Observation>,
    lease_generation: u64,
    file: StateFile,
}

impl Agent {
    /// Starts the provider and adopts what the previous run left running.
    pub(crate) fn start(node: Arc<Node>) -> Result<Self, NodeError> {
        let options = &node.options;
        let log_dir = options.state_dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|source| NodeError::StateDir {
            path: log_dir.clone(),
            source,
        })?;
        // Containers are labelled with the state directory: the next run of this agent finds
        // them there (another agent on the same machine has another directory).
        let home = std::fs::canonicalize(&options.state_dir)
            .unwrap_or_else(|_| options.state_dir.clone())
            .to_string_lossy()
            .into_owned();
        let local = LocalOptions {
            host: options.address,
            die_with_parent: false,
        };
        let (provider, events) = Compute::with_options(log_dir, home, local)?;
        let (launched_tx, launched) = mpsc::unbounded_channel();
        let file = StateFile::new(&options.state_dir);
        Ok(Agent {
            lease_generation: node.lease.snapshot().generation,
            node,
            provider: Arc::new(provider),
            events,
            launched_tx,
            launched,
            local: BTreeMap::new(),
            published: BTreeMap::new(),
            file,
        })
    }

    /// Carries out assignments until `stop`; instances keep running after it (the next run of
    /// the agent adopts them).
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        self.adopt_survivors().await;
        let keys = self.node.store.keys().clone();
        let prefix = keys.host_assignments_prefix(&self.node.options.name);
        let mut assigned = PrefixWatcher::spawn(self.node.store.etcd().clone(), prefix);
        let mut lease = self.node.lease.subscribe();
        let mut tick = tokio::time::interval(RESYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = assigned.changed() => {}
                Some(event) = self.events.recv() => self.exited(event),
                Some(l) = self.launched.recv() => self.launch_done(l),
                _ = lease.changed() => {}
                _ = tick.tick() => {}
            }
            let snapshot = assigned.snapshot();
            // Never before the first listing: an empty view would look like "nothing assigned".
            if snapshot.revision > 0 {
                self.reconcile(&snapshot);
            }
            self.file.save(&self.local);
            self.publish().await;
        }
        self.file.save(&self.local);
        tracing::info!(
            instances = self.local.len(),
            "agent stopped; its instances keep running"
        );
    }

    fn exited(&mut self, event: ComputeEvent) {
        let ComputeEvent::Exited {
            instance_id,
            status,
            ..
        } = event;
        if let Some(l) = self.local.get_mut(&instance_id) {
            l.phase = Phase::Exited(status);
        }
    }

    fn launch_done(&mut self, launched: Launched) {
        match launched {
            Launched::Ok { id, pid, port } => {
                if let Some(l) = self.local.get_mut(&id) {
                    l.pid = pid;
                    l.start_time = flotilla_compute::process_start_time(pid).unwrap_or(0);
                    l.port = port;
                    if l.phase == Phase::Starting {
                        l.phase = Phase::Running;
                    }
                }
            }
            Launched::Failed { id, reason } => {
                if let Some(l) = self.local.get_mut(&id) {
                    l.phase = Phase::Exited(format!("launch failed: {reason}"));
                }
            }
        }
    }

    /// Brings what runs here to what is assigned here.
    fn reconcile(&mut self, snapshot: &Snapshot) {
        let keys = self.node.store.keys();
        let mut assigned: BTreeMap<String, Assignment> = BTreeMap::new();
        for (key, entry) in &snapshot.entries {
            let Some(Key::Assignment { instance, .. }) = keys.parse(key) else {
                continue;
            };
            match decode::<Assignment>(key, &entry.value) {
                Ok(a) => {
                    assigned.insert(instance.to_string(), a);
                }
                Err(e) => tracing::error!(error = %e, "unreadable assignment"),
            }
        }
        for (id, a) in &assigned {
            self.carry_out(id, a);
        }
        let orphans: Vec<String> = self
            .local
            .keys()
            .filter(|id| !assigned.contains_key(*id))
            .cloned()
            .collect();
        for id in orphans {
            self.orphan(&id);
        }
    }

    fn carry_out(&mut self, id: &str, a: &Assignment) {
        let running = |l: &Local| matches!(l.phase, Phase::Running | Phase::Starting);
        match (self.local.get_mut(id), a.state) {
            (None, AssignedState::Run | AssignedState::Drain) => self.launch(id, a),
            (None, AssignedState::Stop | AssignedState::Kill) => {
                let l = local(a, Phase::Exited("stopped before it was started".into()));
                self.local.insert(id.to_string(), l);
            }
            (Some(l), AssignedState::Stop) if running(l) && !l.stopping => {
                l.stopping = true;
                self.provider.stop(id);
            }
            (Some(l), AssignedState::Kill) if running(l) => {
                l.stopping = true;
                self.provider.kill(id);
            }
            _ => {}
        }
    }

    /// An instance no longer assigned here: stopped if it runs, forgotten once it ended.
    fn orphan(&mut self, id: &str) {
        let Some(l) = self.local.get_mut(id) else {
            return;
        };
        match l.phase {
            Phase::Exited(_) => {
                self.local.remove(id);
            }
            Phase::Running if !l.stopping => {
                tracing::warn!(
                    instance = id,
                    "no longer assigned to this host (it was replaced): stopping it"
                );
                l.stopping = true;
                self.provider.stop(id);
            }
            _ => {}
        }
    }

    fn launch(&mut self, id: &str, a: &Assignment) {
        self.local.insert(id.to_string(), local(a, Phase::Starting));
        let template = convert::template(&a.template);
        let spec = crate::launch::launch_spec(
            &template,
            &self.node.options.flotilla_exe,
            &InstanceId::from(id.to_string()),
            &a.group,
            &a.zone,
            &self.node.admin_url,
        );
        let provider = Arc::clone(&self.provider);
        let tx = self.launched_tx.clone();
        let id = id.to_string();
        tracing::info!(
            instance = id.as_str(),
            group = a.group.as_str(),
            "launching an assigned instance"
        );
        tokio::spawn(async move {
            let outcome = match provider.launch(spec).await {
                Ok(l) => Launched::Ok {
                    id,
                    pid: l.pid,
                    port: l.address.port(),
                },
                Err(e) => Launched::Failed {
                    id,
                    reason: e.to_string(),
                },
            };
            let _ = tx.send(outcome);
        });
    }

    /// Writes every observation that differs from what was written (all of them again after a
    /// lease re-grant: the old ones went with the old lease) and deletes those of forgotten
    /// instances. Stops at the first failure; the next round tries again.
    async fn publish(&mut self) {
        let lease = self.node.lease.snapshot();
        if lease.generation != self.lease_generation {
            self.lease_generation = lease.generation;
            self.published.clear();
        }
        let store = &self.node.store;
        let host = &self.node.options.name;
        for (id, l) in &self.local {
            let obs = observation(l);
            if self.published.get(id) == Some(&obs) {
                continue;
            }
            match store.observe(host, id, &obs, lease.id).await {
                Ok(_) => {
                    self.published.insert(id.clone(), obs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot report instances; retrying");
                    return;
                }
            }
        }
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|id| !self.local.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            let key = store.keys().observation(host, &id);
            if store.etcd().delete(&key, false).await.is_err() {
                return;
            }
            self.published.remove(&id);
        }
    }
}

fn local(a: &Assignment, phase: Phase) -> Local {
    Local {
        group: a.group.clone(),
        phase,
        pid: 0,
        start_time: 0,
        port: 0,
        stop_signal: a.template.stop_signal.clone(),
        stop_timeout_ms: a.template.stop_timeout_ms,
        stopping: false,
        container: a.template.image.is_some(),
    }
}

fn observation(l: &Local) -> Observation {
    let (state, exit) = match &l.phase {
        Phase::Starting => (ObservedState::Starting, None),
        Phase::Running if l.stopping => (ObservedState::Stopping, None),
        Phase::Running => (ObservedState::Running, None),
        Phase::Exited(status) => (ObservedState::Exited, Some(status.clone())),
    };
    Observation {
        pid: l.pid,
        start_time: l.start_time,
        port: l.port,
        state,
        exit,
    }
}
