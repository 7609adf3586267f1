//! A hot upgrade hands the provider's instances from one Flotilla process to the next: the old
//! one describes them ([`LocalProcessProvider::handover`]), the new one takes them back
//! ([`LocalProcessProvider::take_over`]) through the same instance keeper, none restarted.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::{Backend, Entry, Forked, LocalProcessProvider};
use crate::keeper::{KeeperCommand, KeeperHandle};
use crate::{ComputeError, ComputeEvent, Signal};

/// One live instance as the old process hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedProcess {
    /// Instance id.
    pub id: String,
    /// Its main pid (and process group id).
    pub pid: u32,
    /// Its process start time, when known.
    pub start_time: Option<u64>,
    /// The port it was given.
    pub port: u16,
    /// Its stop signal's number.
    pub stop_signal: i32,
    /// Its stop timeout, in milliseconds.
    pub stop_timeout_ms: u64,
    /// Flotilla asked it to stop or killed it.
    pub requested: bool,
    /// A graceful stop is under way (its SIGKILL timer is re-armed by the successor).
    pub stopping: bool,
    /// A child of the keeper (else adopted by pid and watched through `/proc`).
    pub kept: bool,
}

impl LocalProcessProvider {
    /// Starts an instance keeper (`command`) and a provider that forks through it, so its
    /// instances can outlive this process into a hot upgrade's successor — and nothing else.
    /// Fails with [`ComputeError::StateDirInUse`] while another Flotilla owns that keeper.
    pub async fn with_keeper(
        log_dir: PathBuf,
        command: KeeperCommand,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let keeper = KeeperHandle::start(command).await?;
        Self::with_backend(log_dir, Backend::Keeper(keeper))
    }

    /// Every live instance, for a successor's [`take_over`](Self::take_over).
    pub fn handover(&self) -> Vec<HandedProcess> {
        let state = self.shared.lock();
        state
            .instances
            .iter()
            .map(|(id, e)| HandedProcess {
                id: id.clone(),
                pid: e.pid,
                start_time: e.start_time,
                port: e.port,
                stop_signal: e.stop_signal.number(),
                stop_timeout_ms: u64::try_from(e.stop_timeout.as_millis()).unwrap_or(u64::MAX),
                requested: e.requested,
                stopping: e.stopping,
                kept: e.kept,
            })
            .collect()
    }

    /// Attaches to the running keeper of `command` and takes charge of `handed`: keeper
    /// children by the keeper's word, others by pid and start time. An instance that exited
    /// meanwhile is reported on the event channel at once; a stop under way gets its SIGKILL
    /// timer again.
    pub async fn take_over(
        log_dir: PathBuf,
        command: KeeperCommand,
        handed: Vec<HandedProcess>,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let (keeper, mut live) = KeeperHandle::join(command).await?;
        let (provider, events) = Self::with_backend(log_dir, Backend::Keeper(keeper))?;
        for h in handed {
            let taken = if h.kept {
                match live.remove(&h.id) {
                    Some((pid, exit)) if pid == h.pid => {
                        let exit = match provider.backend.as_ref() {
                            Backend::Keeper(k) => k.exit_future(exit).await,
                            Backend::Thread(_) => continue, // not built by `take_over`
                        };
                        provider.register_kept(&h, exit);
                        true
                    }
                    _ => false,
                }
            } else {
                let address = SocketAddr::from((Ipv4Addr::LOCALHOST, h.port));
                let signal = Signal::from_number(h.stop_signal).unwrap_or(Signal::TERM);
                let timeout = Duration::from_millis(h.stop_timeout_ms);
                provider
                    .adopt(&h.id, h.pid, address, signal, timeout)
                    .is_ok()
            };
            if !taken {
                tracing::info!(instance_id = %h.id, pid = h.pid, "instance exited during the hot upgrade");
                let _ = provider.shared.events.send(ComputeEvent::Exited {
                    instance_id: h.id,
                    status: "exited during the hot upgrade".into(),
                    requested: h.requested,
                });
                continue;
            }
            if h.requested {
                provider.shared.mark_requested(&h.id);
            }
            if h.stopping {
                provider.shared.stop(&h.id);
            }
        }
        for (id, (pid, _)) in live {
            tracing::warn!(instance_id = %id, pid, "the keeper runs an instance nobody handed over; killing it");
            super::sys::signal_group(pid, Signal::KILL);
        }
        Ok((provider, events))
    }

    /// Lets go of the instance keeper for good: this process steps down after a hot upgrade
    /// and its successor owns the instances; nothing is reported or killed when the
    /// connection ends.
    pub async fn detach(&self) {
        if let Backend::Keeper(k) = self.backend.as_ref() {
            k.detach().await;
        }
    }

    fn register_kept(
        &self,
        h: &HandedProcess,
        exit: std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>,
    ) {
        let (exited_tx, exited_rx) = watch::channel(false);
        {
            let mut state = self.shared.lock();
            state.held_ports.insert(h.port);
            state.instances.insert(
                h.id.clone(),
                Entry {
                    pid: h.pid,
                    port: h.port,
                    start_time: h.start_time,
                    kept: true,
                    stop_signal: Signal::from_number(h.stop_signal).unwrap_or(Signal::TERM),
                    stop_timeout: Duration::from_millis(h.stop_timeout_ms),
                    requested: false,
                    stopping: false,
                    exited: exited_rx,
                },
            );
            self.shared.publish_live(&state);
        }
        let forked = Forked { pid: h.pid, exit };
        self.shared
            .runtime
            .spawn(Arc::clone(&self.shared).watch_exit(h.id.clone(), h.port, forked, exited_tx));
    }
}

impl super::Shared {
    fn mark_requested(&self, id: &str) {
        if let Some(e) = self.lock().instances.get_mut(id) {
            e.requested = true;
        }
    }
}
