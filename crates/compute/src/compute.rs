//! Both providers behind one [`ComputeProvider`]: what `flotilla up` drives, since a
//! cluster's groups may run processes and images side by side.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::keeper::{KeeperCommand, KeeperHandle};
use crate::local::{handover::kill_unclaimed, Backend, LocalOptions};
use crate::{
    ComputeError, ComputeEvent, ComputeProvider, ContainerProvider, HandedProcess, LaunchSpec,
    LaunchedInstance, LocalProcessProvider,
};

/// What a hot upgrade hands from one [`Compute`] to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handed {
    /// The process instances.
    pub processes: Vec<HandedProcess>,
    /// The container instances (their engine clients).
    pub containers: Vec<HandedProcess>,
    /// The container provider's run, which labels its containers.
    pub container_run: String,
}

/// Launches a spec with an image through the [`ContainerProvider`], any other through the
/// [`LocalProcessProvider`]; both report exits on the one channel [`Compute::new`] returns.
pub struct Compute {
    processes: LocalProcessProvider,
    containers: ContainerProvider,
}

impl Compute {
    /// Both providers, logging to `<log_dir>/<instance_id>.log`; containers are labelled with
    /// `home` (see [`ContainerProvider::new`]). Must be called inside a Tokio runtime.
    pub fn new(
        log_dir: PathBuf,
        home: String,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        Self::with_options(log_dir, home, LocalOptions::default())
    }

    /// [`new`](Self::new) with instances on `options.host`, outliving this process or not:
    /// a cluster-mode agent's, whose processes and containers keep serving while it restarts
    /// (see [`LocalOptions`] and [`ContainerProvider::with_options`]).
    pub fn with_options(
        log_dir: PathBuf,
        home: String,
        options: LocalOptions,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let (events, receiver) = mpsc::unbounded_channel();
        let processes =
            LocalProcessProvider::with_options(log_dir.clone(), options, events.clone())?;
        let containers = ContainerProvider::with_options(log_dir, home, options, events)?;
        Ok((
            Self {
                processes,
                containers,
            },
            receiver,
        ))
    }

    /// Both providers forking through one instance keeper (`command`), so that their
    /// instances can outlive this process into a hot upgrade's successor. Fails with
    /// [`ComputeError::StateDirInUse`] while another Flotilla owns that keeper.
    pub async fn with_keeper(
        log_dir: PathBuf,
        home: String,
        command: KeeperCommand,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let keeper = KeeperHandle::start(command).await?;
        Self::on_backend(log_dir, home, Arc::new(Backend::Keeper(keeper)), None)
    }

    fn on_backend(
        log_dir: PathBuf,
        home: String,
        backend: Arc<Backend>,
        run: Option<String>,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let (events, receiver) = mpsc::unbounded_channel();
        let options = LocalOptions::default();
        let processes = LocalProcessProvider::with_backend(
            log_dir.clone(),
            options,
            Arc::clone(&backend),
            events.clone(),
        )?;
        let core = LocalProcessProvider::with_backend(log_dir, options, backend, events)?;
        let containers = ContainerProvider::with_core(core, home, run);
        Ok((
            Self {
                processes,
                containers,
            },
            receiver,
        ))
    }

    /// A hot upgrade's successor: attaches to the keeper of `command` and takes charge of
    /// what its predecessor handed over (none restarted); the container watchdog waits for
    /// [`commit`](Self::commit).
    pub async fn take_over(
        log_dir: PathBuf,
        home: String,
        command: KeeperCommand,
        handed: Handed,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ComputeEvent>), ComputeError> {
        let (keeper, mut live) = KeeperHandle::join(command).await?;
        let backend = Arc::new(Backend::Keeper(keeper));
        let run = Some(handed.container_run);
        let (compute, events) = Self::on_backend(log_dir, home, backend, run)?;
        for h in handed.processes {
            compute
                .processes
                .take_handed(h, &mut live, crate::local::core::Control::Group)
                .await;
        }
        compute
            .containers
            .take_handed(handed.containers, &mut live)
            .await;
        kill_unclaimed(live);
        Ok((compute, events))
    }

    /// Every live instance, for a successor's [`take_over`](Self::take_over).
    pub fn handover(&self) -> Handed {
        let (container_run, containers) = self.containers.handover();
        Handed {
            processes: self.processes.handover(),
            containers,
            container_run,
        }
    }

    /// A successor is committed: it guards its containers from now on.
    pub async fn commit(&self) {
        self.containers.arm().await;
    }

    /// Lets go of every instance for good (this process steps down after a hot upgrade):
    /// the keeper connection's end kills nothing, the container watchdog stands down.
    pub async fn detach(&self) {
        // One keeper behind both providers.
        self.processes.detach().await;
        self.containers.disarm();
    }

    /// The process provider (for adopting processes of an earlier run).
    pub fn processes(&self) -> &LocalProcessProvider {
        &self.processes
    }

    /// The container provider (for adopting or removing containers of an earlier run).
    pub fn containers(&self) -> &ContainerProvider {
        &self.containers
    }
}

impl ComputeProvider for Compute {
    async fn launch(&self, spec: LaunchSpec) -> Result<LaunchedInstance, ComputeError> {
        if spec.image.is_some() {
            self.containers.launch(spec).await
        } else {
            self.processes.launch(spec).await
        }
    }

    // An id belongs to one provider; the other ignores it, as the trait allows.
    fn stop(&self, instance_id: &str) {
        self.processes.stop(instance_id);
        self.containers.stop(instance_id);
    }

    fn kill(&self, instance_id: &str) {
        self.processes.kill(instance_id);
        self.containers.kill(instance_id);
    }

    async fn shutdown(&self) {
        tokio::join!(self.processes.shutdown(), self.containers.shutdown());
    }
}
