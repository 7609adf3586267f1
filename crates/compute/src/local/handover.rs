//! A hot upgrade hands the provider's instances from one Flotilla process to the next: the old
//! one describes them ([`LocalProcessProvider::handover`]), the new one takes them back
//! ([`LocalProcessProvider::take_over`]) through the same instance keeper, none restarted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::core::{Control, Entry};
use super::{ports, Backend, Forked, LocalOptions, LocalProcessProvider};
use crate::keeper::{KeeperCommand, KeeperHandle};
use crate::{ComputeError, ComputeEvent, Signal};

/// One live instance as the old process hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedProcess {
    /// Instance id.
    pub id: String,
    /// Its main pid (and process group id); for a container, its engine client's.
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
    /// The container this process is the engine's client of (the container provider's).
    #[serde(default)]
    pub container: Option<String>,
}

impl HandedProcess {
    pub(crate) fn stop_signal(&self) -> Signal {
        Signal::from_number(self.stop_signal).unwrap_or(Signal::TERM)
    }

    pub(crate) fn stop_timeout(&self) -> Duration {
        Duration::from_millis(self.stop_timeout_ms)
    }
}

/// The keeper's children when a successor attaches: pid and exit, by instance id.
pub(crate) type Live = HashMap<String, (u32, oneshot::Receiver<String>)>;

impl LocalProcessProvider {
    /// Starts an instance keeper (`command`) and a provider that forks through it, so its
    /// instances can outlive this process into a hot upgrade's successor — and nothing else.
    /// Fails with [`ComputeError::StateDirInUse`] while another Flotilla owns that keeper.
    pub async fn with_keeper(
        log_dir: PathBuf,
        command: KeeperCommand,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let keeper = KeeperHandle::start(command).await?;
        let (events, receiver) = mpsc::unbounded_channel();
        let backend = Arc::new(Backend::Keeper(keeper));
        let provider = Self::with_backend(log_dir, LocalOptions::default(), backend, events)?;
        Ok((provider, receiver))
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
                container: match &e.control {
                    Control::Group => None,
                    Control::Container(c) => Some(c.name.clone()),
                },
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
        let (events, receiver) = mpsc::unbounded_channel();
        let backend = Arc::new(Backend::Keeper(keeper));
        let provider = Self::with_backend(log_dir, LocalOptions::default(), backend, events)?;
        for h in handed {
            provider.take_handed(h, &mut live, Control::Group).await;
        }
        kill_unclaimed(live);
        Ok((provider, receiver))
    }

    /// Takes charge of one handed instance, run under `control`; `false` (and its exit
    /// reported) when it is gone.
    pub(crate) async fn take_handed(
        &self,
        h: HandedProcess,
        live: &mut Live,
        control: Control,
    ) -> bool {
        let taken = if h.kept {
            match (live.remove(&h.id), self.backend.as_ref()) {
                (Some((pid, exit)), Backend::Keeper(k)) if pid == h.pid => {
                    let exit = k.exit_future(exit).await;
                    self.register_kept(&h, exit, control);
                    true
                }
                _ => false,
            }
        } else if matches!(control, Control::Group) {
            let address = SocketAddr::new(self.shared.options.host, h.port);
            self.adopt(&h.id, h.pid, address, h.stop_signal(), h.stop_timeout())
                .is_ok()
        } else {
            false
        };
        if !taken {
            self.report_gone(h);
            return false;
        }
        if h.requested {
            self.shared.mark_requested(&h.id);
        }
        if h.stopping {
            self.shared.stop(&h.id);
        }
        true
    }

    /// Reports a handed instance that is gone (it exited during the hot upgrade).
    pub(crate) fn report_gone(&self, h: HandedProcess) {
        tracing::info!(instance_id = %h.id, pid = h.pid, "instance exited during the hot upgrade");
        let _ = self.shared.events.send(ComputeEvent::Exited {
            instance_id: h.id,
            status: "exited during the hot upgrade".into(),
            requested: h.requested,
        });
    }

    /// The address instances listen on.
    pub(crate) fn host(&self) -> std::net::IpAddr {
        self.shared.options.host
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
        control: Control,
    ) {
        let (exited_tx, exited_rx) = watch::channel(None);
        ports::hold(h.port);
        {
            let mut state = self.shared.lock();
            state.instances.insert(
                h.id.clone(),
                Entry {
                    pid: h.pid,
                    port: h.port,
                    start_time: h.start_time,
                    kept: true,
                    stop_signal: h.stop_signal(),
                    stop_timeout: h.stop_timeout(),
                    control,
                    requested: false,
                    stopping: false,
                    settling: false,
                    exited: exited_rx,
                },
            );
            self.shared.publish_live(&state);
        }
        let forked = Forked { pid: h.pid, exit };
        self.shared
            .runtime
            .spawn(Arc::clone(&self.shared).watch_exit(h.id.clone(), forked, exited_tx));
    }
}

/// Kills what the keeper runs that nobody handed over (a launch the old process lost track
/// of): nobody would ever stop it otherwise.
pub(crate) fn kill_unclaimed(live: Live) {
    for (id, (pid, _)) in live {
        tracing::warn!(instance_id = %id, pid, "the keeper runs an instance nobody handed over; killing it");
        super::sys::signal_group(pid, Signal::KILL);
    }
}
