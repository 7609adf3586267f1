//! The bookkeeping every instance shares, whatever runs it: the live set, graceful stops with
//! their SIGKILL timers, and the exit watch that reports each exit once.
//!
//! An instance is one child process of Flotilla: the program itself, or a container engine's
//! client attached to the container. [`Control`] says how such an instance is stopped, killed
//! and cleaned up after.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use super::{ports, sys};
use crate::container::Container;
use crate::{ComputeEvent, Signal};

/// How an instance is stopped and what is left to clean up once its process has exited.
#[derive(Clone)]
pub(crate) enum Control {
    /// A program leading its own process group: signals go to the group, and whatever is left
    /// in the group when the leader exits is SIGKILLed.
    Group,
    /// A container engine's client attached to a container: the engine stops and kills the
    /// container, and removes it once the client has exited.
    Container(Arc<Container>),
}

/// State shared with the per-instance exit watchers and stop timers.
pub(crate) struct Shared {
    pub(crate) log_dir: PathBuf,
    pub(crate) options: super::LocalOptions,
    pub(crate) runtime: Handle,
    pub(crate) events: mpsc::UnboundedSender<ComputeEvent>,
    pub(crate) state: Mutex<State>,
    /// Number of live or launching instances, so `shutdown` can wait for zero.
    pub(crate) live: watch::Sender<usize>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) instances: HashMap<String, Entry>,
    /// Launches that have reserved a port but whose process is not registered yet.
    pub(crate) launching: usize,
    pub(crate) shutting_down: bool,
}

pub(crate) struct Entry {
    pub(crate) pid: u32,
    pub(crate) port: u16,
    /// Its process start time, when known (handed to a hot upgrade's successor with the pid).
    pub(crate) start_time: Option<u64>,
    /// A child of the instance keeper (its exit comes from there) rather than a child of this
    /// process's spawner thread or a process adopted by pid.
    pub(crate) kept: bool,
    pub(crate) stop_signal: Signal,
    pub(crate) stop_timeout: Duration,
    pub(crate) control: Control,
    /// Flotilla asked this instance to stop (or killed it).
    pub(crate) requested: bool,
    /// A graceful stop (with its SIGKILL timer) is already under way.
    pub(crate) stopping: bool,
    /// Its launch has not been judged yet: an exit now is the launch's failure, told by the
    /// launch's result, not an exit event.
    pub(crate) settling: bool,
    /// Becomes `Some(status)` once the exit has been observed; lets the stop timer stand down.
    pub(crate) exited: watch::Receiver<Option<String>>,
}

impl State {
    fn live_count(&self) -> usize {
        self.instances.len() + self.launching
    }
}

impl Shared {
    pub(crate) fn new(
        log_dir: PathBuf,
        options: super::LocalOptions,
        runtime: Handle,
        events: mpsc::UnboundedSender<ComputeEvent>,
    ) -> Self {
        Self {
            log_dir,
            options,
            runtime,
            events,
            state: Mutex::new(State::default()),
            live: watch::Sender::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // more than losing track of instances entirely, so keep going with the data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How the instance `instance_id` is stopped and cleaned up after, while it is known.
    pub(crate) fn control_of(&self, instance_id: &str) -> Option<Control> {
        self.lock()
            .instances
            .get(instance_id)
            .map(|e| e.control.clone())
    }

    pub(crate) fn log_path(&self, instance_id: &str) -> PathBuf {
        self.log_dir.join(format!("{instance_id}.log"))
    }

    /// Gives back a reservation after a failed launch.
    pub(crate) fn unreserve(&self, port: u16) {
        ports::release(port);
        let mut state = self.lock();
        state.launching = state.launching.saturating_sub(1);
        self.publish_live(&state);
    }

    pub(crate) fn publish_live(&self, state: &State) {
        self.live.send_replace(state.live_count());
    }

    /// Ends the settling of a launch that succeeded; `false` if the instance has already
    /// exited (the launch failed after all).
    pub(crate) fn settle(&self, instance_id: &str) -> bool {
        let mut state = self.lock();
        match state.instances.get_mut(instance_id) {
            Some(entry) => {
                entry.settling = false;
                true
            }
            None => false,
        }
    }

    /// Starts a graceful stop of `instance_id` if it is live and not already stopping.
    pub(crate) fn stop(self: &Arc<Self>, instance_id: &str) {
        let mut state = self.lock();
        let Some(entry) = state.instances.get_mut(instance_id) else {
            tracing::debug!(instance_id, "stop: no such live instance");
            return;
        };
        entry.requested = true;
        if entry.stopping {
            return;
        }
        entry.stopping = true;
        let (pid, signal, timeout) = (entry.pid, entry.stop_signal, entry.stop_timeout);
        let control = entry.control.clone();
        let mut exited = entry.exited.clone();
        drop(state);

        tracing::info!(instance_id, pid, %signal, ?timeout, "stopping instance");
        let instance_id = instance_id.to_owned();
        match control {
            Control::Group => {
                sys::signal_group(pid, signal);
            }
            Control::Container(c) => {
                let container = Arc::clone(&c);
                self.runtime
                    .spawn(async move { container.stop(timeout).await });
            }
        }
        let control = self.kill_control(pid, instance_id.clone());
        self.runtime.spawn(async move {
            let timed_out = tokio::select! {
                _ = exited.wait_for(Option::is_some) => false,
                () = tokio::time::sleep(timeout) => true,
            };
            if timed_out && exited.borrow().is_none() {
                tracing::warn!(%instance_id, pid, ?timeout, "stop timed out; sending SIGKILL");
                control.await;
            }
        });
    }

    /// A future that SIGKILLs the instance (for the stop timer, which outlives the lock).
    fn kill_control(
        self: &Arc<Self>,
        pid: u32,
        instance_id: String,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(self);
        async move {
            let control = shared.control_of(&instance_id);
            match control {
                Some(Control::Container(c)) => c.kill().await,
                _ => {
                    sys::signal_group(pid, Signal::KILL);
                }
            }
        }
    }

    /// SIGKILLs the instance at once (the process group, or the container).
    pub(crate) fn kill(&self, instance_id: &str) {
        let mut state = self.lock();
        let Some(entry) = state.instances.get_mut(instance_id) else {
            tracing::debug!(instance_id, "kill: no such live instance");
            return;
        };
        entry.requested = true;
        let (pid, control) = (entry.pid, entry.control.clone());
        drop(state);
        tracing::info!(instance_id, pid, "killing instance");
        match control {
            Control::Group => {
                sys::signal_group(pid, Signal::KILL);
            }
            Control::Container(c) => {
                self.runtime.spawn(async move { c.kill().await });
            }
        }
    }

    /// Marks a live instance as one Flotilla asked to stop (a hot upgrade hands that over).
    pub(crate) fn mark_requested(&self, instance_id: &str) {
        if let Some(e) = self.lock().instances.get_mut(instance_id) {
            e.requested = true;
        }
    }

    /// Registers a started instance; returns whether shutdown began meanwhile (then the
    /// caller stops it at once).
    pub(crate) fn register(&self, instance_id: &str, entry: Entry) -> bool {
        let mut state = self.lock();
        state.launching = state.launching.saturating_sub(1);
        state.instances.insert(instance_id.to_owned(), entry);
        self.publish_live(&state);
        state.shutting_down
    }

    /// Awaits the child's exit, cleans up after it, forgets the instance and reports the exit
    /// (unless its launch was still settling: the launch's result tells that failure).
    pub(crate) async fn watch_exit(
        self: Arc<Self>,
        instance_id: String,
        forked: super::Forked,
        exited: watch::Sender<Option<String>>,
    ) {
        let super::Forked { pid, exit } = forked;
        let status = exit.await;
        let control = self.control_of(&instance_id);
        match control {
            // Anything the instance left behind in its group (helpers it forked) goes with it:
            // an instance is one unit, and stragglers would hold its port. The group id cannot
            // have been reused yet, because a pid is not recycled while a group of that id has
            // members.
            Some(Control::Group) | None => {
                sys::signal_group(pid, Signal::KILL);
            }
            // The client is gone; the container must go too (it may outlive a killed client).
            Some(Control::Container(c)) => c.remove().await,
        }
        self.forget(instance_id, pid, status, exited);
    }

    /// Drops an exited instance, frees its port and reports the exit.
    pub(crate) fn forget(
        &self,
        instance_id: String,
        pid: u32,
        status: String,
        exited: watch::Sender<Option<String>>,
    ) {
        let (requested, settling) = {
            let mut state = self.lock();
            let entry = state.instances.remove(&instance_id);
            if let Some(e) = &entry {
                ports::release(e.port);
            }
            self.publish_live(&state);
            entry.map_or((false, false), |e| (e.requested, e.settling))
        };
        exited.send_replace(Some(status.clone()));
        if settling {
            tracing::debug!(%instance_id, pid, %status, "instance exited while its launch settled");
            return;
        }
        if requested {
            tracing::info!(%instance_id, pid, %status, "instance exited");
        } else {
            tracing::warn!(%instance_id, pid, %status, "instance exited unexpectedly");
        }
        // The receiver may be gone during teardown; nobody is left to care then.
        let _ = self.events.send(ComputeEvent::Exited {
            instance_id,
            status,
            requested,
        });
    }
}
