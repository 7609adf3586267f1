//! The container provider: instances from OCI images, run by an existing engine — Podman's
//! CLI, or Docker's where Docker Engine runs — never by a runtime of our own.
//!
//! An instance is the engine's client attached to its container (`run` without `--detach`), a child
//! of Flotilla's like any process instance, so everything the local provider guarantees
//! holds: the output goes to `<log_dir>/<instance_id>.log`, the exit is noticed the moment the
//! container exits (the client exits with its status), the client dies with Flotilla. What
//! the engine does differently is stopping (`stop`, `kill`: the container is not our child)
//! and surviving the client, which the exit watcher (removal after every exit), the
//! [watchdog](watchdog) (removal after Flotilla's death, even by SIGKILL) and the start of
//! the next run (adoption or removal of labelled containers) take care of.
//!
//! A launch is judged before it is reported: the container must still run once it accepts
//! connections on its port or has run for [`SETTLE`] since its main process appeared; one
//! that exits sooner — the engine refusing it (unknown image, failed pull, bad option) ends
//! the client at once too — is a failed launch with its status and last lines of output (the
//! engine's reason or the app's), so the control plane backs off instead of replacing it in a
//! tight loop.

mod adopt;
mod args;
mod engine;
mod handover;
mod launch;
mod limits;
mod watchdog;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

pub(crate) use engine::Container;
pub use engine::ENGINE_ENV;

use crate::local::{LocalOptions, LocalProcessProvider};
use crate::{ComputeError, ComputeEvent, ComputeProvider, LaunchSpec, LaunchedInstance};
use engine::Engine;
use watchdog::Watchdog;

/// How long a started container must keep running (unless it accepts connections sooner)
/// before its launch counts as successful.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Runs instances from images through a container engine. See the module documentation.
pub struct ContainerProvider {
    /// The process machinery the engine's clients run under.
    core: LocalProcessProvider,
    /// Labels every container of this Flotilla (its state directory), across runs.
    home: String,
    /// Labels this run's containers, for the watchdog.
    run: String,
    /// The engine, once found; looked for again after a failure (it may be installed later).
    engine: tokio::sync::Mutex<Option<Arc<Engine>>>,
    watchdog: Mutex<Option<Watchdog>>,
    /// A hot upgrade's successor not yet committed: its watchdog waits for the commit (were
    /// it to die first, the predecessor serves on with these very containers).
    hold_watchdog: std::sync::atomic::AtomicBool,
}

impl ContainerProvider {
    /// A provider whose containers are labelled with `home` (the state directory: a later run
    /// with the same one adopts or removes them) and whose exits are reported on `events`.
    ///
    /// Finding the engine waits for the first use: a machine without one runs process
    /// instances as before, and an image launch there fails with the reason.
    pub fn new(
        log_dir: PathBuf,
        home: String,
        events: mpsc::UnboundedSender<ComputeEvent>,
    ) -> Result<Self, ComputeError> {
        Self::with_options(log_dir, home, LocalOptions::default(), events)
    }

    /// [`new`](Self::new) with instances on `options.host` (`FLOTILLA_HOST`, and where a
    /// `port` is published). With `die_with_parent = false` (a cluster-mode agent) the
    /// containers and their engine clients outlive this process, no watchdog removes them,
    /// and the next run adopts them with [`adopt_running`](Self::adopt_running).
    pub fn with_options(
        log_dir: PathBuf,
        home: String,
        options: LocalOptions,
        events: mpsc::UnboundedSender<ComputeEvent>,
    ) -> Result<Self, ComputeError> {
        let core = LocalProcessProvider::with_options(log_dir, options, events)?;
        Ok(Self::with_core(core, home, None))
    }

    /// Whether this provider's containers die with it (a watchdog removes them however it
    /// ends), as under `flotilla up`; not on a cluster-mode agent.
    fn guarded(&self) -> bool {
        self.core.shared.options.die_with_parent
    }

    /// A provider whose engine clients run under `core`; `run` continues a predecessor's run
    /// (a hot upgrade's successor, whose watchdog then waits for [`arm`](Self::arm)).
    pub(crate) fn with_core(core: LocalProcessProvider, home: String, run: Option<String>) -> Self {
        let hold = run.is_some();
        let run = run.unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}-{nanos:x}", std::process::id())
        });
        Self {
            core,
            home,
            run,
            engine: tokio::sync::Mutex::new(None),
            watchdog: Mutex::new(None),
            hold_watchdog: std::sync::atomic::AtomicBool::new(hold),
        }
    }

    /// The engine, found (and the watchdog started) on first use.
    async fn engine(&self) -> Result<Arc<Engine>, String> {
        let mut cached = self.engine.lock().await;
        if let Some(engine) = cached.as_ref() {
            return Ok(Arc::clone(engine));
        }
        let engine = Arc::new(Engine::detect().await?);
        if self.guarded() && !self.hold_watchdog.load(std::sync::atomic::Ordering::SeqCst) {
            self.start_watchdog(&engine)?;
        }
        tracing::info!(engine = %engine.program.display(), run = %self.run, "container engine found");
        *cached = Some(Arc::clone(&engine));
        Ok(engine)
    }
}

impl ContainerProvider {
    /// Starts this run's watchdog.
    fn start_watchdog(&self, engine: &Engine) -> Result<(), String> {
        match Watchdog::start(engine, &self.run) {
            Ok(w) => {
                *self.watchdog.lock().unwrap_or_else(PoisonError::into_inner) = Some(w);
                Ok(())
            }
            // Without it a SIGKILLed Flotilla would leave containers behind: refuse.
            Err(e) => Err(format!("cannot start the container watchdog: {e}")),
        }
    }
}

impl ComputeProvider for ContainerProvider {
    async fn launch(&self, spec: LaunchSpec) -> Result<LaunchedInstance, ComputeError> {
        self.launch_container(spec).await
    }

    fn stop(&self, instance_id: &str) {
        self.core.stop(instance_id);
    }

    fn kill(&self, instance_id: &str) {
        self.core.kill(instance_id);
    }

    async fn shutdown(&self) {
        self.core.shutdown().await;
    }
}
