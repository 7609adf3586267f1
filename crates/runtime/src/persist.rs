//! Durable state for the runtime: restores what an operator did before a restart, and writes
//! every change to the [`StateStore`] from a dedicated thread, so disk I/O never happens under
//! the control lock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_admin::api::ActivityInfo;
use flotilla_control::{Activity, ActivityStatus, LifecycleState};
use flotilla_state::{
    ActivityRecord, InstanceRecord, SqliteStore, StateError, StateStore, WeightOverrideRecord,
};

use crate::clock::Clock;

/// Activities of earlier runs served per group (the newest ones).
const HISTORY_LIMIT: usize = 1000;

/// One change to write.
enum Write {
    Activity(ActivityRecord),
    Desired {
        group: String,
        desired: u32,
    },
    ClearDesired {
        group: String,
    },
    Suspended {
        group: String,
        processes: Vec<String>,
    },
    PutInstance(InstanceRecord),
    Protection {
        id: String,
        protected: bool,
    },
    Lifecycle {
        id: String,
        lifecycle: &'static str,
    },
    RemoveInstance {
        id: String,
    },
    ClearInstances,
    WeightOverride(WeightOverrideRecord),
    RemoveWeightOverride {
        load_balancer: String,
        listener: String,
        rule: String,
    },
}

/// What an earlier run left behind.
pub(crate) struct Restored {
    /// Desired capacities operators set, per group.
    pub(crate) desired: BTreeMap<String, u32>,
    /// Scaling processes operators suspended, per group (AWS names, as stored).
    pub(crate) suspended: BTreeMap<String, Vec<String>>,
    /// Activities of earlier runs, newest first, per group (only groups in the config).
    pub(crate) history: BTreeMap<String, Vec<ActivityInfo>>,
    /// Instances launched by an earlier run and not known to be terminated.
    pub(crate) instances: Vec<InstanceRecord>,
    /// Weights operators (or canary rollbacks) set on forward actions.
    pub(crate) weight_overrides: Vec<WeightOverrideRecord>,
}

/// Opens `<state_dir>/state.db` and reads what the groups named in `groups` need.
pub(crate) fn open<'a>(
    state_dir: &Path,
    groups: impl Iterator<Item = &'a String>,
) -> Result<(SqliteStore, Restored), StateError> {
    let store = SqliteStore::open(&state_dir.join("state.db"))?;
    let mut restored = Restored {
        desired: BTreeMap::new(),
        suspended: BTreeMap::new(),
        history: BTreeMap::new(),
        instances: store.instances()?,
        weight_overrides: store.weight_overrides()?,
    };
    for group in groups {
        if let Some(d) = store.desired_capacity(group)? {
            restored.desired.insert(group.clone(), d);
        }
        let suspended = store.suspended_processes(group)?;
        if !suspended.is_empty() {
            restored.suspended.insert(group.clone(), suspended);
        }
        let history = store
            .activities(group, HISTORY_LIMIT)?
            .into_iter()
            .map(|a| ActivityInfo {
                time: rfc3339_ms(a.time_ms),
                cause: a.cause,
                description: a.description,
                status: a.status,
            })
            .collect();
        restored.history.insert(group.clone(), history);
    }
    Ok((store, restored))
}

fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch now, for records.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Hands writes to the store's thread. Sending never blocks; a failed write is logged (the
/// cluster keeps running on its in-memory state).
pub(crate) struct Persister {
    tx: Option<mpsc::Sender<Write>>,
    thread: Option<JoinHandle<()>>,
    clock: Clock,
    run_id: String,
}

impl Persister {
    /// Starts the writer thread over `store`. `run_id` tells this run's activities from
    /// earlier ones (activity ids restart every run).
    pub(crate) fn start(
        mut store: Box<dyn StateStore>,
        clock: Clock,
        run_id: String,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Write>();
        let thread = std::thread::Builder::new()
            .name("flotilla-state".into())
            .spawn(move || {
                for write in rx {
                    if let Err(e) = apply(store.as_mut(), write) {
                        tracing::warn!("cannot write durable state: {e}");
                    }
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            clock,
            run_id,
        })
    }

    fn send(&self, write: Write) {
        if let Some(tx) = &self.tx {
            // The thread only ends after `close`; nothing to do if it is gone.
            let _ = tx.send(write);
        }
    }

    /// Records (or updates the status of) one activity of `group`.
    pub(crate) fn activity(&self, group: &str, a: &Activity) {
        self.send(Write::Activity(ActivityRecord {
            group: group.to_string(),
            run_id: self.run_id.clone(),
            activity_id: a.id,
            time_ms: self.clock.wall_ms(a.time),
            cause: a.cause.clone(),
            description: a.description.clone(),
            status: status_str(a.status).to_string(),
        }));
    }

    /// Records an operator's desired capacity.
    pub(crate) fn desired(&self, group: &str, desired: u32) {
        self.send(Write::Desired {
            group: group.to_string(),
            desired,
        });
    }

    /// Forgets an operator's desired capacity that no longer fits the config.
    pub(crate) fn clear_desired(&self, group: &str) {
        self.send(Write::ClearDesired {
            group: group.to_string(),
        });
    }

    /// Records the complete set of scaling processes an operator has suspended for `group`
    /// (empty: all resumed).
    pub(crate) fn suspended(&self, group: &str, processes: Vec<String>) {
        self.send(Write::Suspended {
            group: group.to_string(),
            processes,
        });
    }

    /// Records (`Some`) or forgets (`None`) the weight override of a forward action.
    pub(crate) fn weight_override(
        &self,
        key: &crate::weights::RuleKey,
        o: Option<&crate::weights::Override>,
    ) {
        self.send(match o {
            Some(o) => Write::WeightOverride(crate::weights::to_record(key, o)),
            None => Write::RemoveWeightOverride {
                load_balancer: key.lb.clone(),
                listener: key.listener.to_string(),
                rule: key.rule(),
            },
        });
    }

    /// Records a launched (or adopted) instance.
    pub(crate) fn put_instance(&self, record: InstanceRecord) {
        self.send(Write::PutInstance(record));
    }

    /// Records an instance's scale-in protection.
    pub(crate) fn protection(&self, id: &str, protected: bool) {
        self.send(Write::Protection {
            id: id.to_string(),
            protected,
        });
    }

    /// Records the state an instance is to be adopted into after a restart (see
    /// [`durable_state`]).
    pub(crate) fn lifecycle(&self, id: &str, lifecycle: &'static str) {
        self.send(Write::Lifecycle {
            id: id.to_string(),
            lifecycle,
        });
    }

    /// Forgets a terminated instance.
    pub(crate) fn remove_instance(&self, id: &str) {
        self.send(Write::RemoveInstance { id: id.to_string() });
    }

    /// Forgets every instance (all were stopped at shutdown).
    pub(crate) fn clear_instances(&self) {
        self.send(Write::ClearInstances);
    }

    /// Stops accepting writes; the returned handle finishes once every queued write is done.
    pub(crate) fn close(&mut self) -> Option<JoinHandle<()>> {
        self.tx = None;
        self.thread.take()
    }
}

fn apply(store: &mut dyn StateStore, write: Write) -> Result<(), StateError> {
    match write {
        Write::Activity(a) => store.put_activity(&a),
        Write::Desired { group, desired } => store.set_desired_capacity(&group, desired),
        Write::ClearDesired { group } => store.clear_desired_capacity(&group),
        Write::Suspended { group, processes } => store.set_suspended_processes(&group, &processes),
        Write::PutInstance(i) => store.put_instance(&i),
        Write::Protection { id, protected } => store.set_instance_protection(&id, protected),
        Write::Lifecycle { id, lifecycle } => store.set_instance_lifecycle(&id, lifecycle),
        Write::RemoveInstance { id } => store.remove_instance(&id),
        Write::WeightOverride(o) => store.put_weight_override(&o),
        Write::RemoveWeightOverride {
            load_balancer,
            listener,
            rule,
        } => store.remove_weight_override(&load_balancer, &listener, &rule),
        Write::ClearInstances => {
            for i in store.instances()? {
                store.remove_instance(&i.id)?;
            }
            Ok(())
        }
    }
}

/// The API's name for an activity status.
pub(crate) fn status_str(s: ActivityStatus) -> &'static str {
    match s {
        ActivityStatus::InProgress => "in_progress",
        ActivityStatus::Successful => "successful",
        ActivityStatus::Failed => "failed",
        ActivityStatus::Cancelled => "cancelled",
    }
}

/// The state a restart adopts an instance into, as stored: a warm pool instance goes back to
/// the pool, one waiting for a launch hook waits again; everything else is in service (a
/// launch or termination in progress starts over from the capacity difference).
pub(crate) fn durable_state(state: LifecycleState) -> &'static str {
    if state.is_warmed() {
        LifecycleState::WarmedRunning.as_str()
    } else if state == LifecycleState::PendingWait {
        LifecycleState::PendingWait.as_str()
    } else {
        LifecycleState::InService.as_str()
    }
}

/// The state a stored record says to adopt its instance into ([`durable_state`] inverted);
/// anything unknown is in service.
fn adopted_state(stored: &str) -> LifecycleState {
    [LifecycleState::WarmedRunning, LifecycleState::PendingWait]
        .into_iter()
        .find(|s| s.as_str() == stored)
        .unwrap_or(LifecycleState::InService)
}

/// Takes over instances an earlier run left running: each whose pid and process start time
/// still match its record is adopted (watched by the provider, taken in by its group); a
/// matching process whose group is gone or full is stopped; a record whose process is gone
/// (or whose pid now names another process, which is left alone) is forgotten.
pub(crate) fn adopt_survivors(
    control: &mut crate::control::Control,
    provider: &flotilla_compute::LocalProcessProvider,
    templates: &BTreeMap<String, flotilla_config::LaunchTemplate>,
    records: Vec<InstanceRecord>,
    now: flotilla_control::Time,
) {
    for r in records {
        let alive = flotilla_compute::process_start_time(r.pid) == Some(r.start_time);
        let address = r.address.parse::<std::net::SocketAddr>().ok();
        let (Some(address), true) = (address, alive) else {
            tracing::info!(instance = %r.id, pid = r.pid, "instance from the previous run is gone; forgetting it");
            if let Some(p) = &control.persist {
                p.remove_instance(&r.id);
            }
            continue;
        };
        let template = control
            .groups
            .get(&r.group)
            .and_then(|g| templates.get(&g.launch_template));
        let (signal, timeout) = template.map_or(
            (flotilla_compute::Signal::TERM, Duration::from_secs(30)),
            |t| {
                (
                    flotilla_compute::Signal::from_name(t.stop_signal.as_str())
                        .unwrap_or(flotilla_compute::Signal::TERM),
                    t.stop_timeout,
                )
            },
        );
        if let Err(e) = provider.adopt(&r.id, r.pid, address, signal, timeout) {
            tracing::warn!(instance = %r.id, pid = r.pid, "cannot adopt: {e}");
            if let Some(p) = &control.persist {
                p.remove_instance(&r.id);
            }
            continue;
        }
        let id = flotilla_control::InstanceId::from(r.id.clone());
        let state = adopted_state(&r.lifecycle);
        let taken = control.groups.get_mut(&r.group).is_some_and(|g| {
            g.asg.adopt_instance_as(
                now,
                id.clone(),
                r.zone.clone(),
                flotilla_control::Time::ZERO,
                r.launch_template_version,
                state,
            )
        });
        if taken {
            control.durable.insert(id.clone(), durable_state(state));
            if r.protected_from_scale_in {
                if let Some(g) = control.groups.get_mut(&r.group) {
                    g.asg.set_instance_protection(now, &id, true);
                }
            }
            tracing::info!(group = %r.group, instance = %r.id, pid = r.pid, %address, protected_from_scale_in = r.protected_from_scale_in, "adopted an instance still running from the previous run");
            control.record_adopted(&r.group, &id, address, r.pid);
        } else {
            tracing::warn!(group = %r.group, instance = %r.id, pid = r.pid, "an instance from the previous run has no place in its group any more; stopping it");
            if let Some(p) = &control.persist {
                p.remove_instance(&r.id);
            }
            flotilla_compute::ComputeProvider::stop(provider, &r.id);
        }
    }
    for g in control.groups.values_mut() {
        g.continue_template_versions();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_control::Time;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flotilla-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn record(id: &str) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            group: "web".into(),
            zone: "az-a".into(),
            pid: 4242,
            start_time: 7,
            address: "127.0.0.1:4000".into(),
            launch_template_version: 1,
            launched_at_ms: 0,
            protected_from_scale_in: false,
            lifecycle: "in_service".into(),
        }
    }

    #[test]
    fn writes_reach_the_store_and_are_restored() {
        let dir = temp_dir("roundtrip");
        let groups = ["web".to_string()];
        let (store, restored) = open(&dir, groups.iter()).expect("open");
        assert!(restored.desired.is_empty() && restored.instances.is_empty());
        let clock = Clock::start();
        let mut p = Persister::start(Box::new(store), clock, "run1".into()).expect("start");
        let mut activity = Activity {
            id: 0,
            time: Time::ZERO,
            end_time: None,
            cause: "an operator set the desired capacity".into(),
            description: "Launching a new instance: i-1 in az-a".into(),
            status: ActivityStatus::InProgress,
        };
        p.activity("web", &activity);
        activity.status = ActivityStatus::Successful;
        p.activity("web", &activity);
        p.desired("web", 4);
        p.suspended("web", vec!["Launch".into(), "AZRebalance".into()]);
        p.put_instance(record("i-1"));
        p.put_instance(record("i-2"));
        p.remove_instance("i-1");
        p.protection("i-2", true);
        p.lifecycle("i-2", "warmed:running");
        p.close().expect("writer thread").join().expect("joined");

        let (_, restored) = open(&dir, groups.iter()).expect("reopen");
        assert_eq!(restored.desired.get("web"), Some(&4));
        assert_eq!(
            restored.suspended.get("web"),
            Some(&vec!["AZRebalance".to_string(), "Launch".to_string()])
        );
        assert_eq!(
            restored.instances,
            vec![InstanceRecord {
                protected_from_scale_in: true,
                lifecycle: "warmed:running".into(),
                ..record("i-2")
            }]
        );
        let history = &restored.history["web"];
        assert_eq!(
            history.len(),
            1,
            "the status change updated the same activity"
        );
        assert_eq!(history[0].status, "successful");
        assert_eq!(history[0].time, clock.rfc3339(Time::ZERO));

        let (store, _) = open(&dir, groups.iter()).expect("reopen");
        let mut p = Persister::start(Box::new(store), clock, "run2".into()).expect("start");
        p.clear_desired("web");
        p.suspended("web", Vec::new());
        p.clear_instances();
        p.close().expect("writer thread").join().expect("joined");
        let (_, restored) = open(&dir, groups.iter()).expect("reopen");
        assert!(restored.desired.is_empty() && restored.instances.is_empty());
        assert!(
            restored.suspended.is_empty(),
            "resuming everything is durable too"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
