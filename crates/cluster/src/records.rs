//! The typed values stored under [`crate::keys`], as JSON: readable with `etcdctl get`, and
//! tolerant of fields added later (unknown fields are ignored, new ones default).

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: wall time for records people read (activities, votes);
/// never used for ordering or timeouts, which rely on etcd revisions and local monotonic clocks.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An activity id that sorts by time as a string: the activities prefix lists oldest first,
/// so trimming deletes from the front. `seq` separates ids made in the same millisecond.
pub fn activity_id(at_ms: u64, seq: u32) -> String {
    format!("{at_ms:016}-{seq:06}")
}

/// `hosts/<host>`: a host's agent is alive (leased, 10 s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostRecord {
    /// The host's zone.
    pub zone: String,
    /// The address its instances listen on.
    pub address: String,
    /// The roles it runs: `control`, `lb`, `compute`.
    pub roles: Vec<String>,
    /// How many instances it takes.
    pub slots: u32,
    /// The agent's version, for mixed-version upgrades.
    pub agent_version: String,
    /// When this registration was made (ms since the epoch).
    pub registered_ms: u64,
    /// Its admin API (`http://IP:PORT`): where other nodes forward operator calls when this
    /// node leads, and where the leader reads its samples.
    pub admin: String,
}

impl Default for HostRecord {
    fn default() -> Self {
        HostRecord {
            zone: String::new(),
            address: String::new(),
            roles: Vec::new(),
            slots: 0,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            registered_ms: 0,
            admin: String::new(),
        }
    }
}

/// `lb/<node>`: a load balancer node is alive and serving (leased to the node, so it goes
/// when the node dies or is cut off; deleted first when it stops). DNS alias records to a load
/// balancer answer with the address of every such node, each with its own verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LbNodeRecord {
    /// The node's zone.
    pub zone: String,
    /// The address its listeners are bound on.
    pub address: String,
    /// The listeners it serves, as bound (`IP:PORT`).
    pub listeners: Vec<String>,
    /// Per load balancer it serves, whether it may take traffic: some target group that load
    /// balancer forwards to has a healthy target as this node checks them.
    pub load_balancers: std::collections::BTreeMap<String, bool>,
    /// The distributions it serves (on its address): DNS aliases to a distribution answer
    /// with every live node that lists it.
    pub distributions: Vec<String>,
}

/// `config`: the applied configuration, as the TOML text `flotilla apply` validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigBlob {
    /// Bumped by every apply, so nodes can say which one they run.
    pub generation: u64,
    /// The file's text.
    pub toml: String,
    /// Where it came from (path, operator).
    pub source: String,
    /// When it was applied (ms since the epoch).
    pub applied_ms: u64,
}

/// `groups/<group>/desired`: the capacity the controller (or an operator) wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupDesired {
    /// Desired capacity.
    pub desired: u32,
    /// Bumped on every change, echoed by the status as `observed_generation`.
    pub generation: u64,
    /// The cause, in words.
    pub reason: String,
}

/// `groups/<group>/status`: what the controller last saw; cooldowns live here rather than in
/// controller memory so that a new leader respects them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupStatus {
    /// Instances in service.
    pub in_service: u32,
    /// Instances launching.
    pub pending: u32,
    /// The desired generation this status reflects.
    pub observed_generation: u64,
    /// The last scaling activity's time (ms since the epoch), for cooldowns.
    pub last_scale_ms: u64,
}

/// What an assignment asks of its agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignedState {
    /// Run the instance.
    #[default]
    Run,
    /// Keep it running but out of rotation (lb nodes deregister and wait out the delay).
    Drain,
    /// Stop it; the controller deletes the key once `obs` shows it gone.
    Stop,
    /// Kill it at once (SIGKILL, a zone outage drill).
    Kill,
}

/// How an agent starts an instance: the launch template version the controller chose, whole,
/// since an agent only knows the config's current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchRecord {
    /// Program and arguments (`{flotilla}` still to be replaced by the agent's binary).
    pub command: Vec<String>,
    /// Extra environment.
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory.
    pub working_dir: String,
    /// Stop signal name, e.g. `SIGTERM`.
    pub stop_signal: String,
    /// Time from the stop signal to SIGKILL.
    pub stop_timeout_ms: u64,
    /// The instance type label.
    pub instance_type: String,
    /// EC2 `UserData`, decoded: the agent writes it where `FLOTILLA_USER_DATA` names.
    pub user_data: Option<Vec<u8>>,
    /// The image to run instead of `command` (which then replaces the image's entrypoint):
    /// the agent runs it through its host's container engine. Absent for a process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRecord>,
}

/// The container side of a launch record (the launch template's `image` and its keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageRecord {
    /// Image reference as the engine spells it (`localhost/web:2.1`).
    pub reference: String,
    /// Arguments after the image (its `CMD`); empty keeps the image's own.
    pub args: Vec<String>,
    /// The port the application listens on inside the container (published on the host's
    /// address); `None`: host networking, listening on `$FLOTILLA_HOST:$PORT`.
    pub port: Option<u16>,
    /// CPU limit in thousandths of a core.
    pub cpu_millis: Option<u32>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// `never`, `if_missing` or `always` (the config's spelling).
    pub pull: String,
}

/// `assign/<host>/<instance>`: desired state, written by the controller only (fenced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Assignment {
    /// The auto scaling group.
    pub group: String,
    /// The zone (the host's).
    pub zone: String,
    /// The port the instance listens on.
    pub port: u16,
    /// Hash of the launch specification, so a refresh can tell old from new.
    pub spec_hash: String,
    /// The launch template version.
    pub template_version: u64,
    /// Run, drain, stop or kill.
    pub state: AssignedState,
    /// Bumped when the controller changes the assignment.
    pub generation: u64,
    /// `IP:PORT` once its agent reported it running (empty before).
    pub address: String,
    /// Target groups it is registered in: load balancer nodes route to it there.
    pub target_groups: Vec<String>,
    /// The lifecycle state a new controller adopts it into (`in_service`, `pending:wait`,
    /// `warmed:running`, `pending` before it runs).
    pub lifecycle: String,
    /// Scale-in protection.
    pub protected: bool,
    /// `on-demand` or `spot` (empty in records written before purchase options: on-demand).
    pub purchase_option: String,
    /// How to start it.
    pub template: LaunchRecord,
}

/// What an agent reports of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedState {
    /// Launched, not yet known to listen.
    #[default]
    Starting,
    /// Running.
    Running,
    /// Asked to stop, not yet gone.
    Stopping,
    /// Gone; `exit` says how.
    Exited,
}

/// `obs/<host>/<instance>`: observed state, leased to the agent, written on change only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Observation {
    /// The process id.
    pub pid: u32,
    /// The process start time (`/proc/<pid>/stat` field 22), so a reused PID is not adopted.
    pub start_time: u64,
    /// The port it listens on.
    pub port: u16,
    /// Its state.
    pub state: ObservedState,
    /// How it exited, in words, when it has.
    pub exit: Option<String>,
}

/// One weighted target group of a forward action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightRecord {
    /// The target group.
    pub name: String,
    /// Its weight.
    pub weight: u32,
}

/// `routing/weights/<id>`: the weights in force of one forward action, for load balancer nodes
/// (written by the controller when an operator or a canary rollback changes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingWeights {
    /// The load balancer.
    pub load_balancer: String,
    /// The listener's address as the config gives it.
    pub listener: String,
    /// The rule's priority; `None`: the default action.
    pub priority: Option<u32>,
    /// The weights.
    pub weights: Vec<WeightRecord>,
}

/// `routing/shifted-zones`: the zones no new traffic goes to (zonal shifts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShiftedZones {
    /// The zones.
    pub zones: Vec<String>,
}

/// `health/<tg>/<instance>/<node>`: one lb node's verdict on a target (leased to the node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthVote {
    /// The verdict.
    pub healthy: bool,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// Why, e.g. the failed probe.
    pub reason: String,
}

/// `activities/<group>/<id>`: one scaling activity, trimmed to the newest N per group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityRecord {
    /// What happened, e.g. "Launching a new instance: i-…".
    pub description: String,
    /// Why, in words.
    pub cause: String,
    /// `InProgress`, `Successful`, `Failed`, …
    pub status: String,
    /// Start time (ms since the epoch).
    pub start_ms: u64,
    /// End time, once finished.
    pub end_ms: Option<u64>,
}

/// `overrides/<kind>/<name>`: an operator's intent (desired capacity, suspended processes,
/// protection, weight shift, cordon). The value's shape belongs to the kind's owner in the
/// control core, so it stays JSON here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OverrideRecord {
    /// The intent.
    pub value: serde_json::Value,
    /// Who set it (operator, node name, `rollback`).
    pub set_by: String,
    /// When (ms since the epoch).
    pub set_ms: u64,
}

/// `invalidations/<distribution>/<id>`: paths every lb node removes from its cache
/// (CloudFront `CreateInvalidation`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InvalidationRecord {
    /// The paths as given (validated by the node that stored them).
    pub paths: Vec<String>,
    /// When (ms since the epoch).
    pub create_ms: u64,
    /// The node whose admin API took it.
    pub created_by: String,
}

/// `invalidations/<distribution>/<id>/<node>`: the node has removed the objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InvalidationDone {
    /// How many objects it removed.
    pub objects: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_tolerate_unknown_fields() {
        let a = Assignment {
            group: "web".into(),
            zone: "az-a".into(),
            port: 8081,
            state: AssignedState::Drain,
            ..Default::default()
        };
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains("\"state\":\"drain\""), "{text}");
        assert_eq!(serde_json::from_str::<Assignment>(&text).unwrap(), a);
        let later: Observation =
            serde_json::from_str(r#"{"pid":7,"state":"running","future_field":1}"#).unwrap();
        assert_eq!(later.pid, 7);
        assert_eq!(later.state, ObservedState::Running);
    }

    #[test]
    fn activity_ids_sort_by_time() {
        let mut ids = vec![
            activity_id(1_000_000, 2),
            activity_id(999, 0),
            activity_id(1_000_000, 1),
        ];
        ids.sort();
        assert_eq!(
            ids,
            vec![
                activity_id(999, 0),
                activity_id(1_000_000, 1),
                activity_id(1_000_000, 2)
            ]
        );
    }
}
