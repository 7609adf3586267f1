//! Forwarding one request to a target group: pick a backend, send over a pooled connection,
//! retry once elsewhere when that is safe, or answer with an ELB-generated error.

use std::error::Error as _;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, Uri, Version};

use crate::access_log::{Logged, UpstreamTiming};
use crate::body::{InFlight, ProxyBody, ReqBody, UpstreamBody};
use crate::errors::Generated;
use crate::h2_upstream::{self, ProtocolVersion};
use crate::headers::{self, Forwarded};
use crate::pool::{self, ConnectError};
use crate::target_group::{now_ms, Backend, TargetGroup};
use crate::ListenerConfig;

/// How many stale pooled connections one attempt may run into before it insists on a fresh
/// connection (keeps the loop bounded whatever the pool holds).
const MAX_STALE: usize = 3;

/// What a failed attempt on one target amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// Connecting failed (refused, unreachable): nothing was sent.
    ConnectFailed,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The connection was closed or reset before any response arrived.
    Closed,
    /// No response headers within the idle timeout.
    NoHeaders,
    /// The target answered something that is not a valid HTTP response.
    Invalid,
    /// The client's request body broke off mid-upload.
    ClientBody,
}

impl FailKind {
    /// Failures after which the request may go to another target, provided it can be
    /// re-sent (it came back unsent, or it is idempotent and bodiless).
    fn retryable(self) -> bool {
        matches!(self, FailKind::ConnectFailed | FailKind::Closed)
    }

    fn generated(self) -> Generated {
        match self {
            FailKind::ConnectFailed | FailKind::Closed | FailKind::Invalid => Generated::BadGateway,
            FailKind::ConnectTimeout | FailKind::NoHeaders => Generated::GatewayTimeout,
            FailKind::ClientBody => Generated::BadRequest,
        }
    }

    /// Whether the target is to blame (counted in its `errors_total`).
    fn is_target_error(self) -> bool {
        self != FailKind::ClientBody
    }
}

struct Failure {
    kind: FailKind,
    /// The request, when hyper handed it back without having sent any of it.
    request: Option<Request<ReqBody>>,
}

/// The head of a bodiless idempotent request, kept to rebuild it after a failure that
/// consumed the original.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    fn build(&self) -> Request<ReqBody> {
        let mut req = Request::new(ReqBody::empty());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        *req.version_mut() = Version::HTTP_11;
        req
    }
}

/// Methods that RFC 9110 defines as idempotent: safe to send twice.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Forward a client request to `group` and produce the client's response. Never fails: every
/// problem becomes a generated 4xx/5xx.
pub(crate) async fn forward(
    group: &TargetGroup,
    mut parts: Parts,
    body: ReqBody,
    fwd: &Forwarded,
    cfg: &ListenerConfig,
) -> Response<ProxyBody> {
    if group.protocol_version() != ProtocolVersion::Http1 {
        return h2_upstream::forward(group, parts, body, fwd, cfg).await;
    }
    headers::prepare_request(&mut parts.uri, &mut parts.headers, fwd);
    parts.version = Version::HTTP_11;
    // Only bodiless idempotent requests can be rebuilt after hyper consumed them.
    let replay = (is_idempotent(&parts.method) && body.is_empty()).then(|| Replay {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
    });
    let sticky = group.sticky_pick(&parts);
    let logged = parts.extensions.get::<Logged>().is_some();
    let req = Request::from_parts(parts, body);

    let first = match sticky {
        Some(b) => Some(b),
        None => group.pick_or_wait().await,
    };
    let Some(first) = first else {
        tracing::debug!(group = group.name(), "no routable target");
        return Generated::NoTargets.response();
    };
    let failure = match attempt(&first, req, replay.as_ref(), cfg, logged).await {
        Ok(mut resp) => {
            group.stick(resp.headers_mut(), &first);
            return resp;
        }
        Err(f) => f,
    };
    if !failure.kind.retryable() {
        return give_up(group, &first, failure.kind);
    }
    let Some(req) = failure
        .request
        .or_else(|| replay.as_ref().map(Replay::build))
    else {
        return give_up(group, &first, failure.kind);
    };
    let Some(second) = group.pick(Some(&first)) else {
        return give_up(group, &first, failure.kind);
    };
    tracing::debug!(group = group.name(), failed = %first.addr, retry = %second.addr, kind = ?failure.kind, "retrying on another target");
    match attempt(&second, req, replay.as_ref(), cfg, logged).await {
        Ok(mut resp) => {
            group.stick(resp.headers_mut(), &second);
            resp
        }
        Err(f) => give_up(group, &second, f.kind),
    }
}

fn give_up(group: &TargetGroup, backend: &Backend, kind: FailKind) -> Response<ProxyBody> {
    tracing::info!(group = group.name(), target = %backend.addr, ?kind, "request failed on target");
    kind.generated().response()
}

/// One try on one backend. Pooled connections the target closed while idle are skipped
/// (and a request they consumed is rebuilt when possible) without counting as the retry.
async fn attempt(
    backend: &Arc<Backend>,
    mut req: Request<ReqBody>,
    replay: Option<&Replay>,
    cfg: &ListenerConfig,
    logged: bool,
) -> Result<Response<ProxyBody>, Failure> {
    let in_flight = InFlight::start(backend);
    backend.requests_total.fetch_add(1, Ordering::Relaxed);
    let fail = |kind: FailKind, request: Option<Request<ReqBody>>| {
        if kind.is_target_error() {
            backend.errors_total.fetch_add(1, Ordering::Relaxed);
        }
        Failure { kind, request }
    };
    let mut stale = 0;
    loop {
        let pooled = if stale < MAX_STALE {
            backend.pool.take(cfg.idle_timeout).await
        } else {
            None
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => match pool::connect(backend.addr, cfg.connect_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(target = %backend.addr, error = %e, "connect failed");
                    backend.eject();
                    let kind = match e {
                        ConnectError::Timeout => FailKind::ConnectTimeout,
                        ConnectError::Io(_) | ConnectError::Handshake(_) => FailKind::ConnectFailed,
                    };
                    return Err(fail(kind, Some(req)));
                }
            },
        };
        let activity = req.body().activity();
        let sent_at = Instant::now();
        let sent =
            with_header_timeout(conn.try_send_request(req), cfg.idle_timeout, activity).await;
        match sent {
            None => return Err(fail(FailKind::NoHeaders, None)),
            Some(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                let headers_at = Instant::now();
                backend.connected();
                backend.metrics.response(parts.status, headers_at - sent_at);
                if logged {
                    parts.extensions.insert(UpstreamTiming {
                        target: backend.addr,
                        status: parts.status.as_u16(),
                        sent_at,
                        headers_at,
                    });
                }
                headers::strip_hop_by_hop(&mut parts.headers);
                let body = UpstreamBody::new(body, in_flight, conn, cfg.idle_timeout);
                return Ok(Response::from_parts(parts, ProxyBody::Upstream(body)));
            }
            Some(Err(mut e)) => {
                let unsent = e.take_message();
                let err = e.into_error();
                let kind = classify(&err);
                tracing::debug!(target = %backend.addr, error = %err, reused, unsent = unsent.is_some(), "send failed");
                if reused && kind == FailKind::Closed {
                    if let Some(again) = unsent.or_else(|| replay.map(Replay::build)) {
                        stale += 1;
                        req = again;
                        continue;
                    }
                    return Err(fail(kind, None));
                }
                return Err(fail(kind, unsent));
            }
        }
    }
}

/// Wait for response headers at most `idle` after the upload last made progress (or after the
/// request was handed over, for bodiless requests). `None` = timed out; the dropped future
/// closes the connection.
async fn with_header_timeout<F: std::future::Future>(
    fut: F,
    idle: Duration,
    activity: Option<Arc<AtomicU64>>,
) -> Option<F::Output> {
    let Some(activity) = activity else {
        return tokio::time::timeout(idle, fut).await.ok();
    };
    let fut = std::pin::pin!(fut);
    let mut fut = fut;
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = &mut sleep => {
                let last = activity.load(Ordering::Relaxed);
                let quiet = now_ms().saturating_sub(last);
                if quiet >= idle_ms {
                    return None;
                }
                let rest = Duration::from_millis(idle_ms - quiet);
                sleep.as_mut().reset(tokio::time::Instant::now() + rest);
            }
        }
    }
}

/// Sort a send failure: malformed answers are final, connection losses may be retried.
fn classify(err: &hyper::Error) -> FailKind {
    if err.is_parse() || err.is_parse_status() || err.is_parse_too_large() {
        return FailKind::Invalid;
    }
    if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
        return FailKind::Closed;
    }
    if err.is_user() || err.is_body_write_aborted() {
        return FailKind::ClientBody;
    }
    let mut source = err.source();
    while let Some(s) = source {
        if s.is::<io::Error>() {
            return FailKind::Closed;
        }
        source = s.source();
    }
    FailKind::Invalid
}
