//! Graceful shutdown of a listener's client connections: once it begins, idle HTTP/1 connections
//! close after [`IDLE_GRACE`] (a request that arrives meanwhile is served, with `Connection:
//! close`), busy ones after their current response (which says `Connection: close`), and the
//! listener waits until every connection is gone.
//!
//! Why the grace: a client may send on an idle keep-alive connection at the instant the server
//! closes it, and that request fails. A hot upgrade stops the old process's listeners while
//! clients are busy on every connection; with the grace each active client gets its next answer
//! with `Connection: close` and reconnects — to the new process — instead of losing a request.

use futures_util::future::FusedFuture;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// How long an idle connection still waits for one more request once shutdown has begun.
pub(crate) const IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

pin_project_lite::pin_project! {
    /// [`Drain::stopped`]: a named future rather than an `async` block, which would keep its
    /// `Notified` twice (captured, then pinned) in every idle connection.
    pub(crate) struct Stopped<'a> {
        drain: &'a Drain,
        #[pin]
        notified: Notified<'a>,
        done: bool,
    }
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // `Notified` hears `notify_waiters` from its creation on, polled or not; the flag
        // covers a poll after it resolved.
        if *this.done || this.drain.is_stopping() || this.notified.poll(cx).is_ready() {
            *this.done = true;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl FusedFuture for Stopped<'_> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// The shutdown state shared by a listener and its connections.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    stopping: AtomicBool,
    stop: Notify,
    live: AtomicUsize,
    gone: Notify,
}

impl Drain {
    /// Count a new connection as live: shutdown waits for it until [`Drain::leave`] (a
    /// connection's [`crate::ctx::ConnCtx`] does both, so no handle of its own is kept).
    pub(crate) fn enter(&self) {
        self.live.fetch_add(1, Ordering::AcqRel);
    }

    /// A connection counted by [`Drain::enter`] has ended.
    pub(crate) fn leave(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.gone.notify_waiters();
        }
    }

    /// Whether shutdown has begun: the response being written is the connection's last.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Resolves once shutdown has begun. Create it when the connection starts and poll it
    /// whenever the connection is idle: it hears a shutdown begun at any time after its
    /// creation. It holds no timer: an HTTP/1 keep-alive connection then waits
    /// [`IDLE_GRACE`] on its own deadline (a request sent at the instant of closing would
    /// fail); an HTTP/2 one closes at once, since its GOAWAY tells the client which streams
    /// were taken and new ones are refused, safe to retry.
    pub(crate) fn stopped(&self) -> Stopped<'_> {
        Stopped {
            drain: self,
            notified: self.stop.notified(),
            done: false,
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
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn shutdown_wakes_idle_connections_and_waits_for_the_busy_one() {
        let drain = Arc::new(Drain::default());
        let idle = {
            let drain = Arc::clone(&drain);
            drain.enter();
            tokio::spawn(async move {
                drain.stopped().await;
                drain.leave();
            })
        };
        drain.enter();
        let waiter = {
            let drain = Arc::clone(&drain);
            tokio::spawn(async move { drain.shutdown().await })
        };
        idle.await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a busy connection is still live");
        assert!(drain.is_stopping());
        drain.leave();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
