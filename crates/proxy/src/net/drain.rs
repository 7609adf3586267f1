//! Graceful shutdown of a listener's client connections: once it begins, idle HTTP/1 connections
//! close after [`IDLE_GRACE`] (a request that arrives meanwhile is served, with `Connection:
//! close`), busy ones after their current response (which says `Connection: close`), and the
//! listener waits until every connection is gone.
//!
//! Why the grace: a client may send on an idle keep-alive connection at the instant the server
//! closes it, and that request fails. A hot upgrade stops the old process's listeners while
//! clients are busy on every connection; with the grace each active client gets its next answer
//! with `Connection: close` and reconnects — to the new process — instead of losing a request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// How long an idle connection still waits for one more request once shutdown has begun.
pub(crate) const IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The shutdown state shared by a listener and its connections.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    stopping: AtomicBool,
    stop: Notify,
    live: AtomicUsize,
    gone: Notify,
}

/// Counts one connection as live until dropped.
#[derive(Debug)]
pub(crate) struct Live(Arc<Drain>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.gone.notify_waiters();
        }
    }
}

impl Drain {
    /// Count a new connection.
    pub(crate) fn enter(self: &Arc<Self>) -> Live {
        self.live.fetch_add(1, Ordering::AcqRel);
        Live(Arc::clone(self))
    }

    /// Whether shutdown has begun: the response being written is the connection's last.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Resolves once shutdown has begun, plus `grace`. Create it when the connection starts and
    /// poll it whenever the connection is idle: it is registered from creation, so no shutdown
    /// is missed in between. An HTTP/1 keep-alive connection waits [`IDLE_GRACE`] (a request
    /// sent at the instant of closing would fail); an HTTP/2 one none, since its GOAWAY tells
    /// the client which streams were taken and new ones are refused, safe to retry.
    pub(crate) fn stopped(
        &self,
        grace: std::time::Duration,
    ) -> impl Future<Output = ()> + Send + '_ {
        let notified = self.stop.notified();
        async move {
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_stopping() {
                notified.await;
            }
            if !grace.is_zero() {
                tokio::time::sleep(grace).await;
            }
        }
    }

    /// Begin shutdown and wait until every connection has ended.
    pub(crate) async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
        loop {
            let gone = self.gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            gone.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shutdown_wakes_idle_connections_and_waits_for_the_busy_one() {
        let drain = Arc::new(Drain::default());
        let idle = {
            let drain = Arc::clone(&drain);
            let live = drain.enter();
            tokio::spawn(async move {
                drain.stopped(IDLE_GRACE).await;
                drop(live);
            })
        };
        let busy = drain.enter();
        let waiter = {
            let drain = Arc::clone(&drain);
            tokio::spawn(async move { drain.shutdown().await })
        };
        idle.await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a busy connection is still live");
        assert!(drain.is_stopping());
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
