//! A request body arriving in DATA frames: the connection task queues the payloads, the body
//! (polled by whatever forwards the request) takes them, and what it takes is credited back to
//! the client as flow-control window by the connection — so a target that reads slowly slows
//! the client down instead of filling memory.
//!
//! What is queued is bounded by the windows in payload bytes, and small payloads are joined so
//! that it is bounded in memory too: a client sending one-byte DATA frames (RFC 9113 §10.5)
//! costs about one byte per byte, not a queue entry each. The body also counts what it hands
//! out against the declared `content-length`, so a longer body can never reach a target even if
//! the connection's own check were bypassed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;

/// Payloads smaller than this are appended to the queue's tail buffer instead of being queued
/// as chunks of their own.
const SMALL: usize = 4096;

/// What the connection and one stream's body share.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    chunks: VecDeque<Bytes>,
    /// Small payloads received after the last chunk, joined.
    tail: BytesMut,
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
        if data.len() < SMALL {
            q.tail.extend_from_slice(&data);
        } else {
            if !q.tail.is_empty() {
                let tail = q.tail.split().freeze();
                q.chunks.push_back(tail);
            }
            q.chunks.push_back(data);
        }
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
    /// The declared `content-length`, if any (the connection enforces it, and so does the
    /// body: see `left`).
    length: Option<u64>,
    /// What the declared length still allows.
    left: Option<u64>,
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
            left: length,
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
        if this.done {
            return Poll::Ready(None);
        }
        let mut q = lock(&this.queue);
        let data = match q.chunks.pop_front() {
            Some(data) => Some(data),
            None if !q.tail.is_empty() => Some(q.tail.split().freeze()),
            None => None,
        };
        if let Some(data) = data {
            drop(q);
            if let Some(left) = &mut this.left {
                match left.checked_sub(data.len() as u64) {
                    Some(l) => *left = l,
                    None => {
                        // Longer than declared: never handed on (the connection resets the
                        // stream before this can happen).
                        this.done = true;
                        return Poll::Ready(Some(Err(Box::new(Reset))));
                    }
                }
            }
            // Fits: what is queued is bounded by the stream's window, below 2^31.
            let n = data.len() as u32;
            let mut c = lock(&this.credits);
            // One entry per stream and turn of the connection, however many chunks were taken.
            match c.taken.last_mut() {
                Some((id, taken)) if *id == this.stream => *taken = taken.saturating_add(n),
                _ => c.taken.push((this.stream, n)),
            }
            if let Some(w) = c.waker.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if q.reset || (q.ended && this.left.is_some_and(|l| l != 0)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;

    fn poll(b: &mut RecvBody) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(b).poll_frame(&mut Context::from_waker(noop_waker_ref()))
    }

    /// Everything the body yields until it ends or fails; `Err` when it fails.
    fn drain(b: &mut RecvBody) -> Result<Vec<u8>, ()> {
        let mut got = Vec::new();
        loop {
            match poll(b) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        got.extend_from_slice(&d);
                    }
                }
                Poll::Ready(Some(Err(_))) => return Err(()),
                Poll::Ready(None) => return Ok(got),
                Poll::Pending => panic!("pending after the end"),
            }
        }
    }

    #[test]
    fn small_payloads_are_joined_and_credited_in_one_entry() {
        let credits = Arc::new(Mutex::new(Credits::default()));
        let (tx, mut body) = channel(1, &credits, None);
        for _ in 0..10_000 {
            tx.data(Bytes::from_static(b"x"));
        }
        tx.data(Bytes::from(vec![b'y'; 8192]));
        tx.data(Bytes::from_static(b"z"));
        // The ten thousand bytes and the large payload; the last byte waits in the tail.
        assert_eq!(lock(&tx.0).chunks.len(), 2);
        tx.end(None);
        let got = drain(&mut body).unwrap();
        assert_eq!(got.len(), 10_000 + 8192 + 1);
        assert!(got.ends_with(b"yz"));
        assert_eq!(lock(&credits).taken, vec![(1, 18_193)]);
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_body_is_held_to_its_declared_length() {
        let credits = Arc::new(Mutex::new(Credits::default()));
        let (tx, mut body) = channel(1, &credits, Some(3));
        tx.data(Bytes::from_static(b"abcd"));
        tx.end(None);
        assert!(drain(&mut body).is_err(), "longer than declared");
        let (tx, mut body) = channel(3, &credits, Some(3));
        tx.data(Bytes::from_static(b"ab"));
        tx.end(None);
        assert!(drain(&mut body).is_err(), "shorter than declared");
        let (tx, mut body) = channel(5, &credits, Some(3));
        tx.data(Bytes::from_static(b"abc"));
        tx.end(None);
        assert_eq!(drain(&mut body).unwrap(), b"abc");
        let (tx, mut body) = channel(7, &credits, None);
        tx.data(Bytes::from_static(b"abc"));
        tx.reset();
        assert!(drain(&mut body).is_err(), "reset");
    }
}
