//! Body types of the forwarding path: what is sent to targets and what is sent to clients.
//! Both stream frame by frame; nothing is buffered whole.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use crate::target_group::{now_ms, Backend};

/// A request body on its way to a target: either the client's body, streamed, or nothing.
///
/// Empty bodies are represented without the client's `Incoming`, so a bodiless request can be
/// rebuilt and replayed on another target after a connection failure.
///
/// A streamed body records when it last produced data, so that the wait for the target's
/// response headers counts from the end of the upload rather than from its start.
///
/// It may carry a size limit: a body that grows past it fails (so the target never gets a
/// truncated request that looks complete) and records that in its flag, for a 413.
#[derive(Debug)]
pub(crate) struct ReqBody(Option<(Source, Arc<AtomicU64>)>, Option<BodyLimit>);

/// Where a non-empty request body comes from.
#[derive(Debug)]
enum Source {
    /// Streamed from an HTTP/2 client, as hyper delivers it.
    Incoming(Incoming),
    /// Read whole already (an HTTP/1 client's body bridged to an HTTP/2 target).
    Full(Option<Bytes>),
}

/// What is left of a request body's size limit, and where exceeding it is recorded.
#[derive(Debug)]
pub(crate) struct BodyLimit {
    pub(crate) left: u64,
    pub(crate) exceeded: Arc<AtomicBool>,
}

/// The error of a request body that grew past its limit.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit")]
pub(crate) struct TooLarge;

impl ReqBody {
    /// Wrap a client body, dropping it right away if it is already known to be empty.
    pub(crate) fn new(body: Incoming) -> Self {
        if body.is_end_stream() {
            ReqBody(None, None)
        } else {
            let activity = Arc::new(AtomicU64::new(now_ms()));
            ReqBody(Some((Source::Incoming(body), activity)), None)
        }
    }

    /// A body already read whole.
    pub(crate) fn full(data: Bytes) -> Self {
        if data.is_empty() {
            return ReqBody(None, None);
        }
        let activity = Arc::new(AtomicU64::new(now_ms()));
        ReqBody(Some((Source::Full(Some(data)), activity)), None)
    }

    /// Fail the body once more than `limit.left` bytes have come.
    pub(crate) fn with_limit(mut self, limit: BodyLimit) -> Self {
        self.1 = Some(limit);
        self
    }

    pub(crate) fn empty() -> Self {
        ReqBody(None, None)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Where the upload progress is recorded (milliseconds of [`now_ms`]); `None` when there is
    /// no body to upload.
    pub(crate) fn activity(&self) -> Option<Arc<AtomicU64>> {
        self.0.as_ref().map(|(_, a)| Arc::clone(a))
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match &mut this.0 {
            Some((source, activity)) => {
                let res = match source {
                    Source::Incoming(b) => Pin::new(b)
                        .poll_frame(cx)
                        .map(|r| r.map(|f| f.map_err(Into::into))),
                    Source::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
                };
                if res.is_ready() {
                    activity.store(now_ms(), Ordering::Relaxed);
                }
                if let (Poll::Ready(Some(Ok(frame))), Some(limit)) = (&res, &mut this.1) {
                    let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                    match limit.left.checked_sub(len) {
                        Some(left) => limit.left = left,
                        None => {
                            limit.exceeded.store(true, Ordering::Relaxed);
                            return Poll::Ready(Some(Err(Box::new(TooLarge))));
                        }
                    }
                }
                res
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            None => true,
            Some((Source::Incoming(b), _)) => b.is_end_stream(),
            Some((Source::Full(d), _)) => d.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Some((Source::Incoming(b), _)) => b.size_hint(),
            Some((Source::Full(d), _)) => {
                SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64))
            }
            None => SizeHint::with_exact(0),
        }
    }
}

/// Counts a request as in flight on a backend for as long as it lives.
///
/// Created when a request is handed to a backend and moved into the response body, so the count
/// drops when the client has received the whole response (or the exchange is abandoned): that
/// is what connection draining waits for.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Backend>);

impl InFlight {
    pub(crate) fn start(backend: &Arc<Backend>) -> Self {
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(backend))
    }

    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A target's response body on its way to the client.
///
/// Holds the in-flight mark and the connection the response came on; when the body has been
/// read to its end the connection goes back to the backend's idle pool for reuse.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    in_flight: InFlight,
    conn: Option<SendRequest<ReqBody>>,
    idle_timeout: Duration,
    done: bool,
}

impl UpstreamBody {
    pub(crate) fn new(
        inner: Incoming,
        in_flight: InFlight,
        conn: SendRequest<ReqBody>,
        idle_timeout: Duration,
    ) -> Self {
        UpstreamBody {
            inner,
            in_flight,
            conn: Some(conn),
            idle_timeout,
            done: false,
        }
    }
}

impl UpstreamBody {
    /// A body whose connection is not pooled here (multiplexed HTTP/2 connections stay in
    /// use by other streams; upgraded ones are spliced).
    pub(crate) fn unpooled(inner: Incoming, in_flight: InFlight, idle_timeout: Duration) -> Self {
        UpstreamBody {
            inner,
            in_flight,
            conn: None,
            idle_timeout,
            done: false,
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Only a connection whose response was fully read can carry another request; one
            // abandoned mid-body is closed by hyper when `conn` drops here.
            if self.done || self.inner.is_end_stream() {
                self.in_flight.backend().pool.put(conn, self.idle_timeout);
            }
        }
    }
}

/// The body of every response the proxy sends to a client.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// A short body generated by the load balancer (error pages, fixed responses).
    Full(Option<Bytes>),
    /// A target's body, streamed through.
    Upstream(UpstreamBody),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Upstream(up) => {
                let res = Pin::new(&mut up.inner).poll_frame(cx);
                match &res {
                    Poll::Ready(None) => up.done = true,
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!(target = %up.in_flight.backend().addr, error = %e, "target response body failed");
                        up.in_flight
                            .backend()
                            .errors_total
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                res
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(data) => data.is_none(),
            ProxyBody::Upstream(up) => up.done || up.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Upstream(up) => up.inner.size_hint(),
        }
    }
}
