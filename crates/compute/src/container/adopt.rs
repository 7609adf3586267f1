//! At start: the containers an earlier run with the same state directory left (its watchdog
//! had no chance, e.g. the whole service was SIGKILLed at once) are adopted when the state
//! store still knows their instance, and removed otherwise.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::args::{container_name, instance_of, LABEL_HOME};
use super::engine::Container;
use super::ContainerProvider;
use crate::local::core::Control;
use crate::local::{ports, SpawnSpec, Start};
use crate::{ComputeError, Signal};

impl ContainerProvider {
    /// Instance ids of the containers labelled with this provider's home, running or not;
    /// empty when there is no engine (nothing can have been left then).
    pub async fn survivors(&self) -> Vec<String> {
        let Ok(engine) = self.engine().await else {
            return Vec::new();
        };
        match engine.names_labelled(LABEL_HOME, &self.home).await {
            Ok(names) => names
                .iter()
                .filter_map(|n| instance_of(n))
                .map(str::to_owned)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers left by an earlier run");
                Vec::new()
            }
        }
    }

    /// Takes charge of a running container of an earlier run as instance `instance_id` on
    /// `address`: a new client attaches to it (its output goes on into the instance's log
    /// file, its exit is noticed at once), and it is stopped and killed like a launched one.
    pub async fn adopt(
        &self,
        instance_id: &str,
        address: SocketAddr,
        stop_signal: Signal,
        stop_timeout: Duration,
    ) -> Result<(), ComputeError> {
        let container = self.adopted_container(instance_id).await?;
        let (engine, name) = (Arc::clone(&container.engine), container.name.clone());
        let reserved = self.core.reserve(instance_id)?;
        // The reservation's fresh port is not the one the container listens on.
        ports::release(reserved);
        ports::hold(address.port());
        let args = ["attach", "--no-stdin", "--sig-proxy=false", name.as_str()];
        self.core
            .start(Start {
                instance_id: instance_id.to_owned(),
                spawn: SpawnSpec::of_command(
                    instance_id,
                    &engine.client(args),
                    self.core.log_path(instance_id),
                ),
                port: address.port(),
                stop_signal,
                stop_timeout,
                control: Control::Container(container),
                settling: false,
            })
            .await?;
        tracing::info!(instance_id, container = %name, %address, "adopted a running container");
        Ok(())
    }

    /// Takes charge of a container whose engine client outlived an earlier run (a cluster-mode
    /// agent's: its containers and clients survive it) as instance `instance_id`: `pid` is
    /// the container's main process, which the caller has matched with its record. The old
    /// client goes on copying the output into the log file, so none is attached again; the
    /// exit is noticed by watching `pid` (as for an adopted process), after which the
    /// container is removed; it is stopped and killed through the engine.
    pub async fn adopt_running(
        &self,
        instance_id: &str,
        pid: u32,
        address: SocketAddr,
        stop_signal: Signal,
        stop_timeout: Duration,
    ) -> Result<(), ComputeError> {
        let container = self.adopted_container(instance_id).await?;
        let name = container.name.clone();
        let stop = (stop_signal, stop_timeout);
        self.core.adopt_as(
            instance_id,
            pid,
            address,
            stop,
            Control::Container(container),
        )?;
        tracing::info!(instance_id, container = %name, pid, %address, "adopted a running container");
        Ok(())
    }

    /// The container an earlier run left for `instance_id`, on this provider's engine.
    async fn adopted_container(&self, instance_id: &str) -> Result<Arc<Container>, ComputeError> {
        let engine = self.engine().await.map_err(|reason| ComputeError::Engine {
            instance_id: instance_id.to_owned(),
            reason,
        })?;
        Ok(Arc::new(Container {
            engine,
            name: container_name(instance_id),
            pidfile: None,
        }))
    }

    /// Removes every container of this home that is not in `keep`; returns how many.
    pub async fn remove_strays(&self, keep: &HashSet<String>) -> usize {
        let Ok(engine) = self.engine().await else {
            return 0;
        };
        let mut removed = 0;
        for id in self.survivors().await {
            if keep.contains(&id) {
                continue;
            }
            tracing::info!(instance_id = %id, "removing a container an earlier run left");
            engine.remove(&container_name(&id)).await;
            removed += 1;
        }
        removed
    }
}
