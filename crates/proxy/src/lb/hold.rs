//! Scale from zero (beyond AWS, which answers 503): while a target group has no routable
//! target but its auto scaling group may grow from nothing, a request waits in a bounded queue
//! until a target becomes routable, or answers 503 when the queue is full or the wait times out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

/// How a target group holds requests while it has no routable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldConfig {
    /// Requests that may wait at once; more get 503 at once (the queue is bounded).
    pub max_waiting: usize,
    /// How long one request waits for a routable target before it gets 503.
    pub timeout: Duration,
}

/// Called when a request starts waiting, so the control plane can launch capacity.
pub type DemandHook = Arc<dyn Fn() + Send + Sync>;

/// The waiting room of one target group. Costs nothing on the request path while the group
/// has routable targets: it is only consulted when a pick found none.
#[derive(Default)]
pub(crate) struct Hold {
    enabled: OnceLock<(HoldConfig, DemandHook)>,
    waiting: AtomicUsize,
    arrived: Notify,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("config", &self.enabled.get().map(|(c, _)| c))
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

/// Decrements the waiting count however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hold {
    /// Turns holding on (once; later calls are ignored).
    pub(crate) fn enable(&self, config: HoldConfig, on_demand: DemandHook) {
        let _ = self.enabled.set((config, on_demand));
    }

    /// Whether requests may wait (scale from zero is on for this group).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.get().is_some()
    }

    /// Requests waiting right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Wakes every waiting request to pick again (the snapshot gained routable targets).
    pub(crate) fn targets_arrived(&self) {
        self.arrived.notify_waiters();
    }

    /// Waits until `pick` finds a target, up to the configured timeout. `None`: holding is off,
    /// the queue is full, or the time ran out.
    pub(crate) async fn wait_for<T, F>(&self, mut pick: F) -> Option<T>
    where
        F: FnMut() -> Option<T>,
    {
        let (config, on_demand) = self.enabled.get()?;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= config.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let _waiting = Waiting(&self.waiting);
        on_demand();
        let deadline = tokio::time::Instant::now() + config.timeout;
        loop {
            // Registered before the check, so a target arriving in between is not missed.
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = pick() {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pick();
            }
        }
    }
}
