//! Answers to HTTP/2 clients gathered at the end of the scheduler's pass, the way HAProxy's
//! event loop reads every ready socket before it sends.
//!
//! On a one-thread runtime, a connection with an answer ready parks here until every task
//! that was ready before it has run; then all of them write in one burst. A load generator or
//! client on another core is then woken once per pass instead of once per answer, which
//! costs both sides fewer wake-ups and evens out which connection waits (HTTP/2 p99 went from
//! 1.18x HAProxy's to parity, docs/benchmarks.md). Requests to targets are not held: the
//! sooner a target has them, the sooner it answers. Nor are HTTP/1 answers or TCP flows:
//! there the extra poll per write cost 4 % (a new connection per request) and a third (TCP)
//! more user-space instructions, for no gain measured.
//!
//! The release is one task per thread ([`spawn_releaser`]). Without it (a multi-thread
//! runtime, or before it first ran) [`end_of_pass`] completes at once.
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The writers waiting for the end of this thread's pass.
#[derive(Default)]
struct Pass {
    /// Wakers of the connections holding a write.
    waiting: Vec<Waker>,
    /// The releaser task, once it has run.
    releaser: Option<Waker>,
    /// Set while the releaser spawned for this thread lives. A runtime dropped on another
    /// thread drops its releaser there, so the flag, not this thread's state, says it is gone.
    alive: Option<Arc<AtomicBool>>,
    /// The releaser was woken for the current pass.
    scheduled: bool,
}

impl Pass {
    /// Whether a live releaser will run this pass; forgets a dead one.
    fn live(&mut self) -> bool {
        match &self.alive {
            Some(alive) if alive.load(Ordering::Relaxed) => true,
            Some(_) => {
                self.alive = None;
                self.releaser = None;
                self.scheduled = false;
                false
            }
            None => false,
        }
    }
}

thread_local! {
    static PASS: RefCell<Pass> = RefCell::new(Pass::default());
}

/// Start this thread's releaser, unless one lives, when the runtime runs every task on this
/// thread.
pub(crate) fn spawn_releaser() {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if rt.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
        return;
    }
    let alive = PASS.with(|p| {
        let mut p = p.try_borrow_mut().ok()?;
        if p.live() {
            return None;
        }
        let alive = Arc::new(AtomicBool::new(true));
        p.alive = Some(Arc::clone(&alive));
        Some(alive)
    });
    if let Some(alive) = alive {
        rt.spawn(release(Unregister(alive)));
    }
}

/// Completes once every task that was ready before it has run (at once when there is no
/// live releaser on this thread).
pub(crate) fn end_of_pass() -> EndOfPass {
    EndOfPass { parked: false }
}

/// The future of [`end_of_pass`].
pub(crate) struct EndOfPass {
    parked: bool,
}

impl Future for EndOfPass {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.parked {
            // Released, or polled again for another reason: either way the write may go.
            return Poll::Ready(());
        }
        let parked = PASS.with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return false;
            };
            if !p.live() {
                return false;
            }
            let Some(releaser) = p.releaser.as_ref() else {
                return false;
            };
            if !p.scheduled {
                releaser.wake_by_ref();
                p.scheduled = true;
            }
            p.waiting.push(cx.waker().clone());
            true
        });
        if !parked {
            return Poll::Ready(());
        }
        self.parked = true;
        Poll::Pending
    }
}

/// Marks the releaser gone when it ends with its runtime, and lets every writer parked on
/// this thread go, so that no connection waits for a releaser that is gone.
struct Unregister(Arc<AtomicBool>);

impl Drop for Unregister {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
        let waiting = PASS.try_with(|p| {
            p.try_borrow_mut()
                .map(|mut p| {
                    p.live();
                    std::mem::take(&mut p.waiting)
                })
                .unwrap_or_default()
        });
        for w in waiting.unwrap_or_default() {
            w.wake();
        }
    }
}

/// The releaser: each time it runs — after the tasks that were queued before it was woken —
/// it wakes the parked writers, which then run in the order they parked.
async fn release(_unregister: Unregister) {
    let mut batch: Vec<Waker> = Vec::new();
    std::future::poll_fn(|cx| {
        PASS.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.releaser.as_ref().is_none_or(|r| !r.will_wake(cx.waker())) {
                    p.releaser = Some(cx.waker().clone());
                }
                p.scheduled = false;
                std::mem::swap(&mut p.waiting, &mut batch);
            }
        });
        for w in batch.drain(..) {
            w.wake();
        }
        Poll::<()>::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::Mutex;

    /// Lets the runtime run every other queued task (and the releaser) once.
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_parked_write_goes_after_the_tasks_queued_before_it() {
        spawn_releaser();
        settle().await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.lock().unwrap().push("a ready");
                end_of_pass().await;
                log.lock().unwrap().push("a writes");
            })
        };
        let b = {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.lock().unwrap().push("b ready") })
        };
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["a ready", "b ready", "a writes"]);
    }

    #[test]
    fn without_a_releaser_a_write_goes_at_once() {
        let done = std::thread::spawn(|| end_of_pass().now_or_never().is_some())
            .join()
            .unwrap();
        assert!(done);
    }

    #[test]
    fn a_multi_thread_runtime_gets_no_releaser() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let done = rt.block_on(async {
            spawn_releaser();
            settle().await;
            end_of_pass().now_or_never().is_some()
        });
        assert!(done);
    }

    #[test]
    fn a_releaser_gone_with_its_runtime_is_replaced_by_the_next() {
        let current = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = current();
        first.block_on(async {
            spawn_releaser();
            settle().await;
        });
        drop(first);
        // The dead releaser holds nobody back ...
        assert!(end_of_pass().now_or_never().is_some());
        // ... and the next runtime on this thread starts its own.
        let second = current();
        let parked = second.block_on(async {
            spawn_releaser();
            settle().await;
            let mut wait = std::pin::pin!(end_of_pass());
            let first_poll = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
            wait.await;
            first_poll.is_pending()
        });
        assert!(parked);
    }
}
