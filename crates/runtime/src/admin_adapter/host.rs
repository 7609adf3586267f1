//! What the admin API needs from whoever runs the cluster — `flotilla up`'s runtime, or the
//! elected leader in cluster mode — so one adapter serves both.

use flotilla_admin::api::{
    ActivityInfo, ClusterInfo, ListenerInfo, ReloadResponse, UpgradeResponse,
};
use flotilla_admin::AdminError;
use flotilla_control::{Cluster, InstanceId, OperatorError, Time};

use crate::clock::Clock;

/// The runtime behind an [`AdminView`](super::AdminView).
pub(crate) trait ControlHost: Send + Sync + 'static {
    /// Reads the cluster (locked for the call).
    fn read<R>(&self, f: impl FnOnce(&Cluster) -> R) -> R;
    /// Runs an operator command at the current time, then carries out what it set off, so a
    /// client that reads right after sees it applied (refused while the cluster is handed to
    /// a hot upgrade's successor).
    fn command<R>(
        &self,
        f: impl FnOnce(&mut Cluster, Time) -> Result<R, OperatorError>,
    ) -> Result<R, AdminError>;
    /// The clock the cluster's times are read against.
    fn clock(&self) -> &Clock;
    /// The cluster's name and zones.
    fn cluster_info(&self) -> ClusterInfo;
    /// Activities of earlier runs (or leaders) of `group`, newest first.
    fn history(&self, group: &str) -> Vec<ActivityInfo>;
    /// The listeners.
    fn listeners(&self) -> Vec<ListenerInfo>;
    /// The process id of an instance, where this process knows it.
    fn pid(&self, id: &InstanceId) -> Option<u32>;
    /// What an image instance's cgroup enforces of its limits, where this process launched it.
    fn limits(&self, _id: &InstanceId) -> Option<flotilla_admin::api::InstanceLimits> {
        None
    }
    /// Re-reads the config (`POST /v1/reload`).
    fn reload(&self) -> Result<ReloadResponse, AdminError>;
    /// Hot upgrade (`POST /v1/upgrade`): only `flotilla up` replaces itself this way; a
    /// cluster-mode node is upgraded by restarting it (its instances outlive the agent and
    /// another node leads meanwhile).
    fn upgrade(&self) -> Result<UpgradeResponse, AdminError> {
        Err(AdminError::BadRequest(
            "hot upgrade is not supported in cluster mode: restart the node instead (its \
             instances keep running and another node leads meanwhile)"
                .into(),
        ))
    }
    /// `GET /metrics`.
    fn prometheus(&self) -> String;
    /// The DNS server and distributions, when this host runs them (`flotilla up` with
    /// `[dns]` or `[distributions]`).
    fn edge(&self) -> Option<std::sync::Arc<dyn flotilla_admin::edge_api::EdgeBackend>> {
        None
    }
}
