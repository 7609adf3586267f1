//! Adopting an instance process that this provider did not start (it was running before a
//! Flotilla restart): it is not our child, so its exit is noticed by polling `/proc`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::core::{Control, Entry, Shared};
use super::procfs::process_start_time;
use super::{ports, LocalProcessProvider};
use crate::{ComputeError, Signal};

/// How often an adopted process is checked for exit.
const ADOPTED_POLL: Duration = Duration::from_millis(100);

impl LocalProcessProvider {
    /// Takes charge of a running process as instance `instance_id`: it can then be stopped or
    /// killed (by process group, like launched instances) and its exit is reported on the event
    /// channel. The caller has checked that `pid` and its start time match the instance's
    /// record; the start time read here guards the watcher against pid reuse afterwards.
    ///
    /// Fails if the process is not running, the id is taken, or the provider is shutting down.
    pub fn adopt(
        &self,
        instance_id: &str,
        pid: u32,
        address: SocketAddr,
        stop_signal: Signal,
        stop_timeout: Duration,
    ) -> Result<(), ComputeError> {
        let stop = (stop_signal, stop_timeout);
        self.adopt_as(instance_id, pid, address, stop, Control::Group)
    }

    /// [`adopt`](Self::adopt) with the way the instance is stopped and cleaned up after: a
    /// container's main process is adopted with [`Control::Container`] (the engine stops it,
    /// and removes the container once the process is gone).
    pub(crate) fn adopt_as(
        &self,
        instance_id: &str,
        pid: u32,
        address: SocketAddr,
        (stop_signal, stop_timeout): (Signal, Duration),
        control: Control,
    ) -> Result<(), ComputeError> {
        super::validate_id(instance_id)?;
        let Some(start_time) = process_start_time(pid) else {
            return Err(ComputeError::NotRunning {
                instance_id: instance_id.to_owned(),
                pid,
            });
        };
        let (exited_tx, exited_rx) = watch::channel(None);
        {
            let mut state = self.shared.lock();
            if state.shutting_down {
                return Err(ComputeError::ShuttingDown);
            }
            if state.instances.contains_key(instance_id) {
                return Err(ComputeError::DuplicateInstance(instance_id.to_owned()));
            }
            ports::hold(address.port());
            state.instances.insert(
                instance_id.to_owned(),
                Entry {
                    pid,
                    port: address.port(),
                    start_time: Some(start_time),
                    kept: false,
                    stop_signal,
                    stop_timeout,
                    control,
                    requested: false,
                    stopping: false,
                    settling: false,
                    exited: exited_rx,
                },
            );
            self.shared.publish_live(&state);
        }
        tracing::info!(instance_id, pid, %address, "adopted a running instance");
        self.shared
            .runtime
            .spawn(Arc::clone(&self.shared).watch_adopted(
                instance_id.to_owned(),
                pid,
                start_time,
                exited_tx,
            ));
        Ok(())
    }
}

impl Shared {
    /// Polls until the adopted process is gone, then forgets it and reports the exit.
    async fn watch_adopted(
        self: Arc<Self>,
        instance_id: String,
        pid: u32,
        start_time: u64,
        exited: watch::Sender<Option<String>>,
    ) {
        while process_start_time(pid) == Some(start_time) {
            tokio::time::sleep(ADOPTED_POLL).await;
        }
        // The exit code belongs to the process's real parent; we only know that it ended.
        // Helpers it left in its process group go with it, as for launched instances — but only
        // while no other process holds the pid (a group id is never reused while it has
        // members, a pid may be once the group is empty).
        let control = self.control_of(&instance_id);
        match control {
            Some(Control::Container(c)) => c.remove().await,
            _ if process_start_time(pid).is_none() && !super::sys::pid_exists(pid) => {
                super::sys::signal_group(pid, Signal::KILL);
            }
            _ => {}
        }
        let status = "exited (adopted process; exit status unknown)".to_string();
        self.forget(instance_id, pid, status, exited);
    }
}
