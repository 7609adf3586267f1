//! The futures an HTTP/2 connection polls (one per stream with work: its exchange, or its
//! response body's next frame), the hasher of its stream map, and its reset budget.

use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::Instant;

use super::{RESET_BUDGET, RESET_REFILL_PER_SEC};
use crate::body::{BoxError, ProxyBody};

/// What a stream's future produced.
pub(super) enum Event {
    /// The response head, with the body and its first frame (so that both go out together).
    Response {
        id: u32,
        parts: http::response::Parts,
        body: ProxyBody,
        first: Option<Result<Frame<Bytes>, BoxError>>,
    },
    /// The body's next frame.
    Frame {
        id: u32,
        body: ProxyBody,
        frame: Option<Result<Frame<Bytes>, BoxError>>,
    },
}

/// A stream's exchange, or its response body's next frame, as the connection polls it (one at
/// a time per stream). Cancelling drops the future at once; the empty task then ends (`None`)
/// at its next poll.
pub(super) struct Task {
    pub(super) id: u32,
    pub(super) fut: Option<Work>,
    /// This task's waker in `tasks` (taken at its first poll), to have it polled once more
    /// and removed when it is cancelled.
    pub(super) waker: Option<Waker>,
}

/// What a task waits for: a stream's exchange (boxed once per stream), or the next frame of
/// its response body, polled in place (no allocation per DATA frame).
pub(super) enum Work {
    Exchange(Pin<Box<dyn Future<Output = Event> + Send>>),
    Body(Option<ProxyBody>),
}

/// Hashes stream ids for the stream map with one multiplication instead of SipHash: the map
/// is looked up several times per request, and holds at most `MAX_CONCURRENT_STREAMS` ids,
/// which the client must open in increasing order, so collisions it could aim for stay few.
#[derive(Default)]
pub(super) struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used by `u32` keys; this keeps the hasher total anyway.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        // Fibonacci hashing spreads increasing ids over the high bits hashbrown groups by.
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Task {
    pub(super) fn new(id: u32, fut: impl Future<Output = Event> + Send + 'static) -> Task {
        Task {
            id,
            fut: Some(Work::Exchange(Box::pin(fut))),
            waker: None,
        }
    }

    pub(super) fn next_frame(id: u32, body: ProxyBody) -> Task {
        Task {
            id,
            fut: Some(Work::Body(Some(body))),
            waker: None,
        }
    }
}

impl Future for Task {
    type Output = Option<Event>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        let Some(fut) = this.fut.as_mut() else {
            return Poll::Ready(None);
        };
        if this.waker.is_none() {
            // FuturesUnordered gives each task one waker for its life.
            this.waker = Some(cx.waker().clone());
        }
        match fut {
            Work::Exchange(f) => f.as_mut().poll(cx).map(Some),
            Work::Body(slot) => {
                let Some(body) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                let id = this.id;
                Poll::Ready(slot.take().map(|body| Event::Frame { id, body, frame }))
            }
        }
    }
}

/// A token bucket of the resets and stream errors a client may still cause (see
/// [`RESET_BUDGET`]); the clock is only read when one is spent.
pub(super) struct Budget {
    pub(super) tokens: u32,
    pub(super) refilled: Instant,
}

impl Budget {
    pub(super) fn spend(&mut self) {
        let now = Instant::now();
        let per_token = Duration::from_secs(1) / RESET_REFILL_PER_SEC;
        let earned = now.saturating_duration_since(self.refilled).as_nanos() / per_token.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(RESET_BUDGET);
            self.refilled = now;
        }
        self.tokens = self.tokens.saturating_sub(1);
    }

    pub(super) fn earn(&mut self) {
        self.tokens = (self.tokens + 1).min(RESET_BUDGET);
    }

    pub(super) fn spent(&self) -> bool {
        self.tokens == 0
    }
}
