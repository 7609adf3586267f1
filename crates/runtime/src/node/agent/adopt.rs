//! An agent's start: what its previous run left running is adopted — a process, or a
//! container whose main process still runs (pid and process start time must both match, so
//! a reused pid is never taken for an instance) — and what ended while it was away is
//! reported as ended. Containers labelled with this agent's state directory that no
//! adopted instance claims (an orphan: launched just before the agent died, or left by a
//! run whose state file was lost) are removed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use flotilla_compute::Signal;

use super::state::{Local, Phase};
use super::Agent;

impl Agent {
    /// See the module documentation.
    pub(super) async fn adopt_survivors(&mut self) {
        // The engine answers "none" quickly on a host without one; asked every start so that
        // an orphan of a run that crashed before saving its state is found too.
        let survivors: HashSet<String> = self
            .provider
            .containers()
            .survivors()
            .await
            .into_iter()
            .collect();
        let mut kept = HashSet::new();
        for (id, mut l) in self.file.load() {
            match l.phase {
                Phase::Running => {}
                // Its launch was cut short with the agent: the container (if any) goes.
                Phase::Starting if l.container => {
                    l.phase = Phase::Exited("its agent restarted while launching it".into());
                }
                _ => {}
            }
            if l.phase != Phase::Running {
                self.local.insert(id, l);
                continue;
            }
            let adopted = self.adopt_one(&id, &l, &survivors).await;
            if adopted {
                tracing::info!(
                    instance = id.as_str(),
                    pid = l.pid,
                    port = l.port,
                    container = l.container,
                    "adopted an instance still running from this agent's previous run"
                );
                l.stopping = false;
                if l.container {
                    kept.insert(id.clone());
                }
            } else {
                tracing::warn!(
                    instance = id.as_str(),
                    pid = l.pid,
                    "an instance of the previous run is gone"
                );
                l.phase = Phase::Exited("exited while its agent was away".into());
            }
            self.local.insert(id, l);
        }
        let removed = self.provider.containers().remove_strays(&kept).await;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed containers no instance of this agent claims"
            );
        }
        self.file.save(&self.local);
    }

    /// Watches a running instance of the previous run again; false if it is gone.
    async fn adopt_one(&self, id: &str, l: &Local, survivors: &HashSet<String>) -> bool {
        if flotilla_compute::process_start_time(l.pid) != Some(l.start_time) {
            return false;
        }
        let address = SocketAddr::new(self.node.options.address, l.port);
        let signal = Signal::from_name(&l.stop_signal).unwrap_or(Signal::TERM);
        let timeout = Duration::from_millis(l.stop_timeout_ms.max(1));
        let watched = match (l.container, survivors.contains(id)) {
            (true, true) => {
                self.provider
                    .containers()
                    .adopt_running(id, l.pid, address, signal, timeout)
                    .await
            }
            // Its container is gone (the pid is someone else's now, or about to be).
            (true, false) => return false,
            (false, _) => self
                .provider
                .processes()
                .adopt(id, l.pid, address, signal, timeout),
        };
        watched
            .map_err(|e| tracing::warn!(instance = id, error = %e, "cannot adopt"))
            .is_ok()
    }
}
