//! Body types of the forwarding path: what is sent to targets and what is sent to clients.
//! Both stream frame by frame; nothing is buffered whole.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::http1::Deadline;
use crate::lb::target_group::Backend;

/// A request body on its way to a target: the client's body, streamed, or one read whole, or
/// nothing (empty bodies carry no `Incoming`, so a bodiless request is known to be replayable).
///
/// It may carry a size limit: a body that grows past it fails (so the target never gets a
/// truncated request that looks complete) and records that in its flag, for a 413.
#[derive(Debug)]
pub(crate) struct ReqBody(Option<Source>, Option<BodyLimit>);

/// Where a non-empty request body comes from.
#[derive(Debug)]
enum Source {
    /// Read whole already (an HTTP/1 client's body bridged to an HTTP/2 target).
    Full(Option<Bytes>),
    /// Arriving in DATA frames on one of our HTTP/2 client connections.
    H2(crate::http2::RecvBody),
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
    /// No body.
    pub(crate) fn empty() -> Self {
        ReqBody(None, None)
    }

    /// A body arriving on an HTTP/2 stream.
    pub(crate) fn h2(body: crate::http2::RecvBody) -> Self {
        ReqBody(Some(Source::H2(body)), None)
    }

    /// A body already read whole.
    pub(crate) fn full(data: Bytes) -> Self {
        if data.is_empty() {
            return ReqBody(None, None);
        }
        ReqBody(Some(Source::Full(Some(data))), None)
    }

    /// Fail the body once more than `limit.left` bytes have come.
    pub(crate) fn with_limit(mut self, limit: BodyLimit) -> Self {
        self.1 = Some(limit);
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
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
            Some(source) => {
                let res = match source {
                    Source::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
                    Source::H2(b) => Pin::new(b).poll_frame(cx),
                };
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
            Some(Source::Full(d)) => d.is_none(),
            Some(Source::H2(b)) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Some(Source::H2(b)) => b.size_hint(),
            Some(Source::Full(d)) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
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
        backend.enter();
        InFlight(Arc::clone(backend))
    }

    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Why a target's response body broke off (whatever protocol the target speaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TargetBodyError {
    #[error("the target sent nothing of the body for the idle timeout")]
    Timeout,
    #[error("malformed chunked framing from the target")]
    Framing,
    #[error("the target closed the connection mid-body")]
    Closed,
}

/// A target's HTTP/2 response body on its way to the client, holding the in-flight mark until
/// it ends. (Its multiplexed connection stays with the other streams.) The target must send
/// some of it within the idle timeout of each wait; the timer is made at the first wait.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    in_flight: InFlight,
    idle: Duration,
    timer: Option<Deadline>,
    /// The last poll found nothing: the timer runs.
    waiting: bool,
}

impl UpstreamBody {
    pub(crate) fn new(inner: Incoming, in_flight: InFlight, idle: Duration) -> Self {
        UpstreamBody {
            inner,
            in_flight,
            idle,
            timer: None,
            waiting: false,
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        let failed = |why: &dyn std::fmt::Display| {
            let backend = self.in_flight.backend();
            tracing::debug!(target = %backend.addr, error = %why, "target response body failed");
            backend.count_error();
        };
        match res {
            Poll::Pending => {
                if !std::mem::replace(&mut self.waiting, true) {
                    let by = tokio::time::Instant::now() + self.idle;
                    match self.timer.as_mut() {
                        Some(t) => t.set(by),
                        None => self.timer = Some(Deadline::new(by)),
                    }
                }
                let expired = self.timer.as_mut().map(|t| t.poll_expired(cx));
                if expired.is_some_and(|e| e.is_ready()) {
                    failed(&TargetBodyError::Timeout);
                    return Poll::Ready(Some(Err(Box::new(TargetBodyError::Timeout))));
                }
                Poll::Pending
            }
            Poll::Ready(res) => {
                self.waiting = false;
                if let Some(Err(e)) = &res {
                    failed(e);
                }
                Poll::Ready(res.map(|r| r.map_err(Into::into)))
            }
        }
    }
}

/// The error of a body stream (whatever its source).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy sends to a client.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// A short body generated by the load balancer (error pages, fixed responses).
    Full(Option<Bytes>),
    /// An HTTP/2 target's body, streamed through.
    Upstream(UpstreamBody),
    /// An HTTP/1 target's body for an HTTP/2 client, without its framing.
    H1(Box<crate::http1::client::ResponseBody>),
}

impl ProxyBody {
    /// An HTTP/1 target's response fields, kept raw for the head's writer (once).
    pub(crate) fn take_fields(&mut self) -> Option<crate::http1::RawFields> {
        match self {
            ProxyBody::H1(body) => body.take_fields(),
            _ => None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::H1(body) => Pin::new(body.as_mut()).poll_frame(cx),
            ProxyBody::Upstream(up) => up.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(data) => data.is_none(),
            ProxyBody::H1(body) => body.is_end_stream(),
            ProxyBody::Upstream(up) => up.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::H1(body) => body.size_hint(),
            ProxyBody::Upstream(up) => up.inner.size_hint(),
        }
    }
}
