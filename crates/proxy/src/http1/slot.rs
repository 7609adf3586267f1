//! Heap room for a future that runs now and then (serving one request), taken from a
//! per-thread store while it runs and given back when it ends.
//!
//! A connection's future is as large as its largest state. Serving a request (routing,
//! forwarding, relaying, retrying) needs kilobytes of state across its awaits; waiting for the
//! next request needs a few hundred bytes. Awaited inline, the request's state would stay in
//! every idle keep-alive connection; boxed per request, it would cost an allocation per
//! request. Run in a slot, it costs an idle connection nothing and a request a `Vec` pop and
//! push (the slots are reused, as the buffers of [`super::buf`]).

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::spare::Store;

/// A slot: room for one future of one type, empty (`None`) while spare.
type Erased = Pin<Box<dyn Any>>;

thread_local! {
    /// Spare slots by the type of future they hold room for (one entry per kind of client
    /// stream: plain, TLS).
    static SPARE: RefCell<Vec<(TypeId, Store<Erased>)>> = const { RefCell::new(Vec::new()) };
}

/// Trim this thread's slot stores ([`super::spare`]).
pub(super) fn trim() -> usize {
    SPARE
        .try_with(|s| {
            s.try_borrow_mut()
                .map_or(0, |mut s| s.iter_mut().map(|(_, store)| store.trim()).sum())
        })
        .unwrap_or(0)
}

/// A future running in a slot; the slot goes back to the store when it ends (or is dropped).
pub(crate) struct Running<F: Future + 'static> {
    slot: Option<Pin<Box<Option<F>>>>,
}

/// Run `fut` in a spare slot (a new one if the store has none of its type).
pub(crate) fn run<F: Future + 'static>(fut: F) -> Running<F> {
    let mut slot = take::<F>().unwrap_or_else(|| Box::pin(None));
    slot.set(Some(fut));
    Running { slot: Some(slot) }
}

impl<F: Future + 'static> Future for Running<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Running` is `Unpin` (it only holds a pinned box), so it may be borrowed mutably.
        let Some(fut) = self.slot.as_mut().and_then(|s| s.as_mut().as_pin_mut()) else {
            // Polled again after it finished: a caller error, answered by never finishing.
            return Poll::Pending;
        };
        let out = std::task::ready!(fut.poll(cx));
        if let Some(slot) = self.slot.take() {
            give(slot);
        }
        Poll::Ready(out)
    }
}

impl<F: Future + 'static> Drop for Running<F> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            give(slot);
        }
    }
}

/// A spare slot for futures of type `F`.
#[allow(unsafe_code)]
fn take<F: Future + 'static>() -> Option<Pin<Box<Option<F>>>> {
    let erased = SPARE
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            let (_, spare) = s.iter_mut().find(|(t, _)| *t == TypeId::of::<F>())?;
            spare.take()
        })
        .ok()??;
    // SAFETY: the box is unpinned only to look at its type; its value is not moved out of
    // its allocation (and is `None`: nothing pinned lives in it) before it is pinned again.
    let boxed = unsafe { Pin::into_inner_unchecked(erased) };
    boxed.downcast::<Option<F>>().ok().map(Box::into_pin)
}

/// Empty `slot` (dropping what it holds) and keep it for the next future of its type.
fn give<F: Future + 'static>(mut slot: Pin<Box<Option<F>>>) {
    slot.set(None);
    // During thread teardown the store may be gone: then the slot is simply freed.
    let _ = SPARE.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        let i = match s.iter().position(|(t, _)| *t == TypeId::of::<F>()) {
            Some(i) => i,
            None => {
                s.push((TypeId::of::<F>(), Store::new()));
                s.len() - 1
            }
        };
        s[i].1.give(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same future type each call (two `async` blocks would be two types).
    async fn one(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn a_slot_is_reused_by_the_next_future_of_its_type() {
        let addr = |r: &Running<_>| r.slot.as_ref().map(|s| &**s as *const Option<_> as usize);
        let first = run(one(1));
        let at = addr(&first);
        assert!(at.is_some());
        assert_eq!(first.await, 1);
        let second = run(one(2));
        // A future of another type does not take it.
        let other = run(async { "other" });
        assert_eq!(addr(&second), at);
        assert_eq!(second.await, 2);
        assert_eq!(other.await, "other");
    }
}
