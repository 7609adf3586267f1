//! Durable state for the runtime: restores what an operator did before a restart, and writes
//! every change to the [`StateStore`] from a dedicated thread, so disk I/O never happens under
//! the control lock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_admin::api::ActivityInfo;
use std::collections::HashMap;

use flotilla_control::{Activity, ActivityStatus, Durable, InstanceId, Restored, ScalingProcess};
use flotilla_state::{
    ActivityRecord, AwsResourceRecord, InstanceRecord, LoadHourRecord, SqliteStore, StateError,
    StateStore, WeightOverrideRecord,
};

use crate::clock::Clock;
use crate::shared::Process;

mod adopt;
mod records;

pub(crate) use adopt::adopt_survivors;

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
    AwsResources(Vec<AwsResourceRecord>),
    RemoveWeightOverride {
        load_balancer: String,
        listener: String,
        rule: String,
    },
    LoadHour(LoadHourRecord),
}

/// What an earlier run left behind.
pub(crate) struct Stored {
    /// What the cluster takes back (operator capacities, suspensions, weight overrides).
    pub(crate) restored: Restored,
    /// Activities of earlier runs, newest first, per group (only groups in the config).
    pub(crate) history: BTreeMap<String, Vec<ActivityInfo>>,
    /// Instances launched by an earlier run and not known to be terminated.
    pub(crate) instances: Vec<InstanceRecord>,
}

/// Opens `<state_dir>/state.db` and reads what the groups named in `groups` need.
#[cfg(test)]
pub(crate) fn open<'a>(
    state_dir: &Path,
    groups: impl Iterator<Item = &'a String>,
) -> Result<(SqliteStore, Stored), StateError> {
    let store = open_store(state_dir)?;
    let stored = read(&store, groups)?;
    Ok((store, stored))
}

/// Opens (creating it if needed) `<state_dir>/state.db`.
pub(crate) fn open_store(state_dir: &Path) -> Result<SqliteStore, StateError> {
    SqliteStore::open(&state_dir.join("state.db"))
}

/// Reads what the groups named in `groups` need from `store`.
pub(crate) fn read<'a>(
    store: &SqliteStore,
    groups: impl Iterator<Item = &'a String>,
) -> Result<Stored, StateError> {
    let mut stored = Stored {
        restored: Restored {
            weight_overrides: store
                .weight_overrides()?
                .iter()
                .filter_map(records::from_weight_override)
                .collect(),
            ..Restored::default()
        },
        history: BTreeMap::new(),
        instances: store.instances()?,
    };
    for group in groups {
        if let Some(d) = store.desired_capacity(group)? {
            stored.restored.desired.insert(group.clone(), d);
        }
        let suspended = suspended_processes(group, store.suspended_processes(group)?);
        if !suspended.is_empty() {
            stored.restored.suspended.insert(group.clone(), suspended);
        }
        let hours = records::load_hours(store.load_history(group)?);
        if !hours.is_empty() {
            stored.restored.load_history.insert(group.clone(), hours);
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
        stored.history.insert(group.clone(), history);
    }
    Ok(stored)
}

/// Stored process names as the group knows them; a name this version does not know is logged
/// and skipped.
fn suspended_processes(group: &str, stored: Vec<String>) -> Vec<ScalingProcess> {
    stored
        .into_iter()
        .filter_map(|name| match name.parse::<ScalingProcess>() {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(group, error = %e, "ignoring a stored suspended process");
                None
            }
        })
        .collect()
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

    /// Writes one durable change of the cluster's; an instance record gets the process
    /// facts only this process knows (pid and start time) from `processes`.
    pub(crate) fn durable(&self, d: Durable, processes: &HashMap<InstanceId, Process>) {
        let write = match d {
            Durable::Desired {
                group,
                desired: Some(desired),
            } => Write::Desired { group, desired },
            Durable::Desired {
                group,
                desired: None,
            } => Write::ClearDesired { group },
            Durable::Suspended { group, processes } => Write::Suspended {
                group,
                processes: processes.iter().map(|p| p.as_str().to_string()).collect(),
            },
            Durable::Instance(r) => {
                let Some(&Process {
                    pid,
                    start_time: Some(start_time),
                    ..
                }) = processes.get(&r.id)
                else {
                    return; // no process facts to adopt it by after a restart
                };
                Write::PutInstance(records::instance(r, pid, start_time))
            }
            Durable::Protection { id, protected } => Write::Protection {
                id: id.to_string(),
                protected,
            },
            Durable::Lifecycle { id, state } => Write::Lifecycle {
                id: id.to_string(),
                lifecycle: state.as_str(),
            },
            Durable::InstanceGone { id } => Write::RemoveInstance { id: id.to_string() },
            Durable::WeightOverride {
                rule,
                weights: Some(o),
            } => Write::WeightOverride(records::weight_override(&rule, &o)),
            Durable::WeightOverride {
                rule,
                weights: None,
            } => Write::RemoveWeightOverride {
                rule: rule.rule(),
                listener: rule.listener.to_string(),
                load_balancer: rule.load_balancer,
            },
            Durable::LoadHour {
                group,
                metric,
                hour,
            } => Write::LoadHour(LoadHourRecord {
                group,
                metric: metric.as_str().to_string(),
                hour: hour.hour,
                mean: hour.mean,
                samples: hour.samples,
            }),
        };
        self.send(write);
    }

    /// Stores the AWS API's resources whole (after each change the API applied).
    pub(crate) fn aws_resources(&self, records: Vec<AwsResourceRecord>) {
        self.send(Write::AwsResources(records));
    }

    /// Forgets an instance whose process is gone.
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
        Write::AwsResources(r) => store.replace_aws_resources(&r),
        Write::RemoveWeightOverride {
            load_balancer,
            listener,
            rule,
        } => store.remove_weight_override(&load_balancer, &listener, &rule),
        Write::LoadHour(h) => store.put_load_hour(&h),
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

#[cfg(test)]
mod tests;
