//! The records Flotilla keeps across restarts and the trait every store implements.

use crate::StateError;

/// One scaling activity as persisted: enough to answer `GET /v1/groups/{name}/activities`
/// after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityRecord {
    /// Auto scaling group the activity belongs to.
    pub group: String,
    /// Which run of Flotilla recorded it (activity ids restart at zero every run).
    pub run_id: String,
    /// The activity's id within that run; with `group` and `run_id` it names the activity, so a
    /// status change overwrites the same row.
    pub activity_id: u64,
    /// Wall-clock start, milliseconds since the Unix epoch (orders the history).
    pub time_ms: i64,
    /// Why it happened.
    pub cause: String,
    /// What was done.
    pub description: String,
    /// `in_progress`, `successful` or `failed`.
    pub status: String,
}

/// A launched instance, so a restarted Flotilla can find (and adopt or stop) its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    /// Instance id, e.g. `i-0a1b2c3d4e5f`.
    pub id: String,
    /// Auto scaling group that owns it.
    pub group: String,
    /// Zone it was placed in.
    pub zone: String,
    /// Process id of its main process (also its process group id).
    pub pid: u32,
    /// Process start time in clock ticks since boot (`/proc/<pid>/stat` field 22): with the
    /// pid it identifies the process, so a recycled pid is never mistaken for the instance.
    pub start_time: u64,
    /// `host:port` it listens on.
    pub address: String,
    /// Launch template version it was started from.
    pub launch_template_version: u64,
    /// Wall-clock launch time, milliseconds since the Unix epoch.
    pub launched_at_ms: i64,
    /// Whether scale-in may not choose it (AWS `ProtectedFromScaleIn`), so an adopted
    /// instance keeps the protection an operator gave it.
    pub protected_from_scale_in: bool,
    /// `in_service`, `pending:wait` (waiting for a launch lifecycle hook) or `warmed:running`
    /// (in the warm pool): the state a restart adopts it into.
    pub lifecycle: String,
    /// `on-demand` or `spot` (schema version 6; older rows read `on-demand`).
    pub purchase_option: String,
}

/// An operator's (or a canary rollback's) weights for one forward action, re-applied after a
/// restart while the config still has the weights it was made against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightOverrideRecord {
    /// Load balancer name.
    pub load_balancer: String,
    /// The listener's bind address.
    pub listener: String,
    /// Rule priority, or `default`.
    pub rule: String,
    /// The weights in force, `name=weight` comma-separated in action order.
    pub weights: String,
    /// The config's weights when the override was made, same form.
    pub base: String,
    /// `operator` or `rollback`.
    pub source: String,
    /// A rollback's cause (empty for an operator's shift).
    pub cause: String,
}

/// Durable storage for everything that must outlive one run of Flotilla.
///
/// A trait so the embedded SQLite store can later be replaced (e.g. by etcd for several
/// Flotilla nodes) without the runtime noticing. Calls are synchronous and short; the runtime
/// makes them from a dedicated writer thread, never under its control lock.
pub trait StateStore: Send {
    /// Inserts an activity, or updates it (status, description) when it was stored before.
    fn put_activity(&mut self, activity: &ActivityRecord) -> Result<(), StateError>;
    /// A group's activities, newest first, at most `limit`.
    fn activities(&self, group: &str, limit: usize) -> Result<Vec<ActivityRecord>, StateError>;

    /// Records the desired capacity an operator set for a group.
    fn set_desired_capacity(&mut self, group: &str, desired: u32) -> Result<(), StateError>;
    /// The desired capacity an operator last set for a group, if any.
    fn desired_capacity(&self, group: &str) -> Result<Option<u32>, StateError>;
    /// Forgets the operator's desired capacity (e.g. when the config's bounds exclude it).
    fn clear_desired_capacity(&mut self, group: &str) -> Result<(), StateError>;

    /// Replaces the set of scaling processes an operator suspended for a group
    /// (AWS `SuspendProcesses`: `Launch`, `Terminate`, `HealthCheck`, ...).
    fn set_suspended_processes(
        &mut self,
        group: &str,
        processes: &[String],
    ) -> Result<(), StateError>;
    /// The processes suspended for a group, sorted.
    fn suspended_processes(&self, group: &str) -> Result<Vec<String>, StateError>;

    /// Inserts or replaces an instance record.
    fn put_instance(&mut self, instance: &InstanceRecord) -> Result<(), StateError>;
    /// Sets an instance's scale-in protection; an unknown id is no error (the instance may
    /// have gone meanwhile).
    fn set_instance_protection(&mut self, id: &str, protected: bool) -> Result<(), StateError>;
    /// Sets an instance's lifecycle state (see [`InstanceRecord::lifecycle`]); an unknown id
    /// is no error.
    fn set_instance_lifecycle(&mut self, id: &str, lifecycle: &str) -> Result<(), StateError>;
    /// Removes an instance record (the instance was terminated).
    fn remove_instance(&mut self, id: &str) -> Result<(), StateError>;
    /// Every instance record, in id order.
    fn instances(&self) -> Result<Vec<InstanceRecord>, StateError>;
    /// Stores (or replaces) the weight override of one forward action.
    fn put_weight_override(&mut self, o: &WeightOverrideRecord) -> Result<(), StateError>;
    /// Forgets the weight override of one forward action.
    fn remove_weight_override(
        &mut self,
        load_balancer: &str,
        listener: &str,
        rule: &str,
    ) -> Result<(), StateError>;
    /// Every stored weight override.
    fn weight_overrides(&self) -> Result<Vec<WeightOverrideRecord>, StateError>;

    /// Replaces every resource the AWS API created with `resources` (kind, key, JSON), in one
    /// transaction: the API's overlay is stored whole after each change.
    fn replace_aws_resources(&mut self, resources: &[AwsResourceRecord]) -> Result<(), StateError>;
    /// Every stored AWS API resource, by kind and key.
    fn aws_resources(&self) -> Result<Vec<AwsResourceRecord>, StateError>;

    /// Stores one hour of a group's load (replacing that hour), and forgets the hours of the
    /// same group and metric more than [`LOAD_HISTORY_HOURS`] older.
    fn put_load_hour(&mut self, h: &LoadHourRecord) -> Result<(), StateError>;
    /// A group's stored load hours, oldest first.
    fn load_history(&self, group: &str) -> Result<Vec<LoadHourRecord>, StateError>;
}

/// Hours of load history kept per group and metric: 14 days, as predictive scaling uses.
pub const LOAD_HISTORY_HOURS: i64 = 14 * 24;

/// One hour of a group's load (`load_history`, schema version 7).
#[derive(Clone, Debug, PartialEq)]
pub struct LoadHourRecord {
    /// The group.
    pub group: String,
    /// The load metric, e.g. `request_count`.
    pub metric: String,
    /// Whole hours since the Unix epoch (UTC).
    pub hour: i64,
    /// The hour's mean load.
    pub mean: f64,
    /// Seconds measured in it.
    pub samples: u32,
}

/// One resource the AWS API created: its kind (`target_group`, …), key (name or ARN) and JSON.
pub type AwsResourceRecord = (String, String, String);
