//! Both providers behind one [`ComputeProvider`]: what `flotilla up` drives, since a
//! cluster's groups may run processes and images side by side.

use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::{
    ComputeError, ComputeEvent, ComputeProvider, ContainerProvider, LaunchSpec, LaunchedInstance,
    LocalProcessProvider,
};

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
        let (events, receiver) = mpsc::unbounded_channel();
        let processes = LocalProcessProvider::with_events(log_dir.clone(), events.clone())?;
        let containers = ContainerProvider::new(log_dir, home, events)?;
        Ok((
            Self {
                processes,
                containers,
            },
            receiver,
        ))
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
