//! A hot upgrade hands the containers over with the processes: their engine clients are the
//! instance keeper's children like any instance (none is restarted, none re-attached), the
//! successor continues the predecessor's run (its containers carry that run's label), and the
//! predecessor's watchdog stands down once the successor's is armed at the commit.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::args::container_name;
use super::engine::{Container, Kind};
use super::ContainerProvider;
use crate::local::core::Control;
use crate::local::{HandedProcess, Live};

impl ContainerProvider {
    /// This run's id and every live container instance, for a successor.
    pub(crate) fn handover(&self) -> (String, Vec<HandedProcess>) {
        (self.run.clone(), self.core.handover())
    }

    /// Takes charge of the handed containers: keeper children by the keeper's word; others
    /// (not forked through a keeper) by attaching a new client, as after a restart.
    pub(crate) async fn take_handed(&self, handed: Vec<HandedProcess>, live: &mut Live) {
        if handed.is_empty() {
            return;
        }
        let engine = match self.engine().await {
            Ok(engine) => engine,
            Err(reason) => {
                tracing::warn!(%reason, "no container engine to take the handed containers over with");
                for h in handed {
                    let _ = live.remove(&h.id);
                    self.core.report_gone(h);
                }
                return;
            }
        };
        for h in handed {
            if !h.kept {
                let address = std::net::SocketAddr::new(self.core.host(), h.port);
                let (signal, timeout) = (h.stop_signal(), h.stop_timeout());
                if let Err(e) = self.adopt(&h.id, address, signal, timeout).await {
                    tracing::warn!(instance_id = %h.id, error = %e, "cannot attach to a handed container");
                    self.core.report_gone(h);
                }
                continue;
            }
            let pidfile = (engine.kind == Kind::Podman)
                .then(|| self.core.log_path(&h.id).with_extension("pid"));
            let container = Arc::new(Container {
                engine: Arc::clone(&engine),
                name: h.container.clone().unwrap_or_else(|| container_name(&h.id)),
                pidfile,
            });
            self.core
                .take_handed(h, live, Control::Container(container))
                .await;
        }
    }

    /// Arms the watchdog a successor held back (it is committed now).
    pub(crate) async fn arm(&self) {
        if !self.hold_watchdog.swap(false, Ordering::SeqCst) || !self.guarded() {
            return;
        }
        let engine = self.engine.lock().await.clone();
        if let Some(engine) = engine {
            if let Err(e) = self.start_watchdog(&engine) {
                tracing::error!(error = %e, "containers are not guarded against this flotilla's death");
            }
        }
    }

    /// Stands this process's watchdog down: a successor owns the containers now.
    pub(crate) fn disarm(&self) {
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = watchdog {
            w.disarm();
        }
    }
}
