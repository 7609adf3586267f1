//! `flotilla up`'s runtime as the admin API's [`ControlHost`].

use std::sync::Arc;

use flotilla_admin::api::{ActivityInfo, ClusterInfo, ListenerInfo, ReloadResponse};
use flotilla_admin::AdminError;
use flotilla_control::{Cluster, InstanceId, OperatorError, Time};

use crate::clock::Clock;
use crate::shared::Shared;

use super::ControlHost;

impl ControlHost for Arc<Shared> {
    fn read<R>(&self, f: impl FnOnce(&Cluster) -> R) -> R {
        f(&Shared::cluster(self))
    }

    fn command<R>(
        &self,
        f: impl FnOnce(&mut Cluster, Time) -> Result<R, OperatorError>,
    ) -> Result<R, AdminError> {
        let r = Shared::operate(self, f)
            .ok_or_else(crate::upgrade::handing_over)?
            .map_err(super::operator_error)?;
        crate::executor::execute_pending(self);
        self.wake.notify_one();
        Ok(r)
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn cluster_info(&self) -> ClusterInfo {
        let config = self.config();
        ClusterInfo {
            name: config.cluster.name.clone(),
            zones: config.cluster.zones.clone(),
        }
    }

    fn history(&self, group: &str) -> Vec<ActivityInfo> {
        self.history.get(group).cloned().unwrap_or_default()
    }

    fn listeners(&self) -> Vec<ListenerInfo> {
        self.listeners.infos()
    }

    fn pid(&self, id: &InstanceId) -> Option<u32> {
        Shared::pid(self, id)
    }

    fn limits(&self, id: &InstanceId) -> Option<flotilla_admin::api::InstanceLimits> {
        Shared::limits(self, id)
    }

    fn edge(&self) -> Option<Arc<dyn flotilla_admin::edge_api::EdgeBackend>> {
        let running = crate::shared::lock(&self.edge).is_some();
        running.then(|| Arc::new(crate::edge::EdgeAdmin(Arc::clone(self))) as _)
    }

    fn upgrade(&self) -> Result<flotilla_admin::api::UpgradeResponse, AdminError> {
        crate::upgrade::upgrade(self)
    }

    fn reload(&self) -> Result<ReloadResponse, AdminError> {
        crate::reload::reload(self)
    }

    fn prometheus(&self) -> String {
        crate::prometheus::render(
            &self.listeners,
            &self.data_plane,
            &Shared::cluster(self),
            |registry| crate::edge::prometheus(self, registry),
        )
    }
}
