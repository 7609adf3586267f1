//! A request body arriving in DATA frames: the connection task queues the payloads, the body
//! (polled by whatever forwards the request) takes them, and what it takes is credited back to
//! the client as flow-control window by the connection — so a target that reads slowly slows
//! the client down instead of filling memory.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;

/// What the connection and one stream's body share.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// END_STREAM was received.
    ended: bool,
    /// The stream was reset (by the client, or for breaking its declared length).
    reset: bool,
    /// The body's task, waiting for data.
    waker: Option<Waker>,
}

/// Window the bodies of a connection consumed and that is not yet credited back, and the
/// connection task to wake to credit it.
#[derive(Debug, Default)]
pub(crate) struct Credits {
    /// (stream id, bytes) taken by bodies since the connection last looked.
    pub(crate) taken: Vec<(u32, u32)>,
    pub(crate) waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection's side of one stream's body.
#[derive(Debug, Clone)]
pub(crate) struct Sender(Arc<Mutex<Queue>>);

impl Sender {
    pub(crate) fn data(&self, data: Bytes) {
        let mut q = lock(&self.0);
        q.chunks.push_back(data);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn end(&self, trailers: Option<HeaderMap>) {
        let mut q = lock(&self.0);
        q.ended = true;
        q.trailers = trailers;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn reset(&self) {
        let mut q = lock(&self.0);
        q.reset = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }
}

/// One stream's request body, as the forwarding path polls it.
#[derive(Debug)]
pub(crate) struct RecvBody {
    stream: u32,
    queue: Arc<Mutex<Queue>>,
    credits: Arc<Mutex<Credits>>,
    /// The declared `content-length`, if any (the connection enforces it).
    length: Option<u64>,
    done: bool,
}

/// A new body for `stream` and the connection's handle on it.
pub(crate) fn channel(
    stream: u32,
    credits: &Arc<Mutex<Credits>>,
    length: Option<u64>,
) -> (Sender, RecvBody) {
    let queue = Arc::new(Mutex::new(Queue::default()));
    (
        Sender(Arc::clone(&queue)),
        RecvBody {
            stream,
            queue,
            credits: Arc::clone(credits),
            length,
            done: false,
        },
    )
}

/// The stream was reset before its body ended.
#[derive(Debug, thiserror::Error)]
#[error("the client reset the stream or broke its declared length")]
pub(crate) struct Reset;

impl Body for RecvBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut q = lock(&this.queue);
        if let Some(data) = q.chunks.pop_front() {
            drop(q);
            // Fits: a DATA frame is at most 2^24 bytes.
            let n = data.len() as u32;
            let mut c = lock(&this.credits);
            c.taken.push((this.stream, n));
            if let Some(w) = c.waker.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if q.reset {
            this.done = true;
            return Poll::Ready(Some(Err(Box::new(Reset))));
        }
        if q.ended {
            this.done = true;
            return Poll::Ready(q.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
