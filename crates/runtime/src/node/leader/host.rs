//! A leader term as the admin API's [`ControlHost`]: reads come from the fleet's cluster,
//! commands change it and wake the leader's loop, which writes what they set off.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use flotilla_admin::api::{ActivityInfo, ClusterInfo, ListenerInfo, ReloadResponse};
use flotilla_admin::AdminError;
use flotilla_control::fleet::FleetEffect;
use flotilla_control::{Cluster, Fleet, InstanceId, OperatorError, Time};
use tokio::sync::Notify;

use crate::admin_adapter::ControlHost;
use crate::clock::Clock;
use crate::shared::lock;

/// One leader term's control plane, shared by its loop and the admin API.
pub(crate) struct LeaderHost {
    fleet: Mutex<Fleet>,
    pub(super) clock: Clock,
    /// Wakes the leader's loop: a command queued effects.
    pub(super) wake: Notify,
    pub(super) info: ClusterInfo,
    pub(super) history: BTreeMap<String, Vec<ActivityInfo>>,
    pub(super) listeners: Vec<ListenerInfo>,
}

impl LeaderHost {
    pub(super) fn new(
        fleet: Fleet,
        clock: Clock,
        config: &flotilla_config::Config,
        history: BTreeMap<String, Vec<ActivityInfo>>,
    ) -> Self {
        let listeners = config
            .load_balancers
            .iter()
            .flat_map(|(name, lb)| {
                lb.listeners.iter().map(move |l| ListenerInfo {
                    load_balancer: name.clone(),
                    bind: l.bind.to_string(),
                    protocol: match l.protocol {
                        flotilla_config::ListenerProtocol::Http => "http",
                        flotilla_config::ListenerProtocol::Https => "https",
                        flotilla_config::ListenerProtocol::Tcp => "tcp",
                    }
                    .to_string(),
                    target_groups: crate::listeners::forwarded_groups(&l.default_action),
                })
            })
            .collect();
        LeaderHost {
            fleet: Mutex::new(fleet),
            clock,
            wake: Notify::new(),
            info: ClusterInfo {
                name: config.cluster.name.clone(),
                zones: config.cluster.zones.clone(),
            },
            history,
            listeners,
        }
    }

    /// The fleet, locked.
    pub(super) fn fleet(&self) -> MutexGuard<'_, Fleet> {
        lock(&self.fleet)
    }

    /// Runs `f` on the locked fleet with the time read after the lock was taken.
    pub(super) fn with_fleet<R>(&self, f: impl FnOnce(&mut Fleet, Time) -> R) -> R {
        let mut fleet = self.fleet();
        let now = self.clock.now();
        f(&mut fleet, now)
    }

    /// Every effect queued so far.
    pub(super) fn drain(&self) -> Vec<FleetEffect> {
        let mut fleet = self.fleet();
        std::iter::from_fn(|| fleet.poll_effect()).collect()
    }
}

impl ControlHost for Arc<LeaderHost> {
    fn read<R>(&self, f: impl FnOnce(&Cluster) -> R) -> R {
        f(self.fleet().cluster())
    }

    fn command<R>(
        &self,
        f: impl FnOnce(&mut Cluster, Time) -> Result<R, OperatorError>,
    ) -> Result<R, AdminError> {
        let r = self.with_fleet(|fleet, now| fleet.command(now, f));
        self.wake.notify_one();
        r.map_err(crate::admin_adapter::operator_error)
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn cluster_info(&self) -> ClusterInfo {
        self.info.clone()
    }

    fn history(&self, group: &str) -> Vec<ActivityInfo> {
        self.history.get(group).cloned().unwrap_or_default()
    }

    fn listeners(&self) -> Vec<ListenerInfo> {
        self.listeners.clone()
    }

    fn pid(&self, _id: &InstanceId) -> Option<u32> {
        None // the process runs on its agent's host
    }

    fn reload(&self) -> Result<ReloadResponse, AdminError> {
        Err(AdminError::Conflict(
            "in cluster mode the config is changed with `flotilla apply CONFIG --etcd URLS`; \
             every node takes it"
                .into(),
        ))
    }

    fn prometheus(&self) -> String {
        let fleet = self.fleet();
        crate::prometheus::render(
            &crate::listeners::ListenerSet::default(),
            &crate::data_plane::DataPlane::default(),
            fleet.cluster(),
            |_| {},
        )
    }
}
