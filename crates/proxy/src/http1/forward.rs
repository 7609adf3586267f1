//! Forwarding one request of an HTTP/2 client to a target group: pick a backend, send over a
//! pooled HTTP/1.1 connection of the engine ([`crate::http1`]), retry once elsewhere when that is
//! safe, or answer with an ELB-generated error. (HTTP/1 clients are served by the engine
//! itself; target groups that speak HTTP/2 by [`crate::http2::upstream`].)

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{Method, Response};

use crate::access_log::{Logged, UpstreamTiming};
use crate::body::{ProxyBody, ReqBody};
use crate::errors::Generated;
use crate::headers::{self, Forwarded};
use crate::http1::client::{self, NoAnswer, ResponseBody, Upload};
use crate::http1::salvage::{salvage, Left};
use crate::http1::{checkout, ConnectError, Typed, UpConn, MAX_STALE};
use crate::lb::forwarding::{Failure, Forwarding};
use crate::lb::target_group::{Backend, TargetGroup};
use crate::ListenerConfig;

/// What a failed attempt on one target amounted to: the target's failure, with whether the
/// whole request could be sent again, or the client's body that broke off (a 400, not counted
/// against the target, never retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    Target(Failure, bool),
    ClientBody,
}

impl FailKind {
    /// No (valid) answer to a request that can be sent again if `resend`.
    fn no_answer(e: NoAnswer, resend: bool) -> FailKind {
        match e {
            NoAnswer::Closed => FailKind::Target(Failure::Closed, resend),
            NoAnswer::NoHeaders => FailKind::Target(Failure::NoHeaders, resend),
            NoAnswer::TryTimeout => FailKind::Target(Failure::TryTimeout, resend),
            NoAnswer::Invalid => FailKind::Target(Failure::Invalid, resend),
            NoAnswer::ClientBody => FailKind::ClientBody,
        }
    }
}

/// A request on its way: the encoded head and the body, until an attempt takes the body.
struct Outgoing {
    head: Vec<u8>,
    /// `Some(chunked)` while a body is still to be sent.
    framing: Option<bool>,
    body: Option<ReqBody>,
    /// Bodiless and idempotent: it can be sent again even after it reached a target.
    replayable: bool,
    is_head: bool,
}

impl Outgoing {
    /// Whether nothing of the request is lost yet (no body was taken by a failed attempt).
    fn intact(&self) -> bool {
        self.framing.is_none() || self.body.is_some()
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
    fwd: &Forwarded<'_>,
    cfg: &ListenerConfig,
) -> Response<ProxyBody> {
    let sticky = Forwarding::sticky(group, &parts);
    let logged = parts.extensions.get::<Logged>().is_some();
    let (head, framing) = match client::encode_forwarded_head(&parts, &body, fwd) {
        Some(encoded) => encoded,
        None => {
            headers::prepare_request(&mut parts.uri, &mut parts.headers, fwd);
            client::encode_head(&parts, &body)
        }
    };
    let mut req = Outgoing {
        head,
        framing,
        replayable: is_idempotent(&parts.method) && framing.is_none(),
        body: framing.map(|_| body),
        is_head: parts.method == Method::HEAD,
    };

    let Some(mut fwd) = Forwarding::request(group, sticky).await else {
        tracing::debug!(group = group.name(), "no routable target");
        return Generated::NoTargets.response();
    };
    loop {
        let (failure, resend) = match attempt(&fwd, &mut req, cfg, logged).await {
            Ok(mut resp) => {
                fwd.stick(resp.headers_mut());
                return resp;
            }
            Err(FailKind::ClientBody) => return Generated::BadRequest.response(),
            Err(FailKind::Target(f, resend)) => (f, resend),
        };
        if !fwd.retry(failure, resend) {
            return fwd.give_up(failure).response();
        }
    }
}

/// One try on one backend. Pooled connections the target closed while idle are skipped (the
/// request is sent again when it can be) without counting as the retry.
async fn attempt(
    fwd: &Forwarding<'_>,
    req: &mut Outgoing,
    cfg: &ListenerConfig,
    logged: bool,
) -> Result<Response<ProxyBody>, FailKind> {
    let backend = fwd.target();
    let in_flight = fwd.begin();
    let mut stale = 0;
    loop {
        let (up, reused, sent_at) = match send_head(fwd, &req.head, cfg, stale).await {
            Ok(sent) => sent,
            Err(None) => {
                stale += 1;
                continue;
            }
            Err(Some(f)) => return Err(FailKind::Target(f, req.intact())),
        };
        let upload = match (req.framing, req.body.take()) {
            (Some(chunked), Some(body)) => Some(Upload::new(body, chunked, sent_at)),
            _ => None,
        };
        let mut lent = Lent {
            conn: Some(up),
            upload,
            backend,
            idle: cfg.idle_timeout,
            is_head: req.is_head,
            try_by: fwd.try_deadline(req.replayable, sent_at, cfg.idle_timeout),
        };
        let waited = lent.read_head(sent_at).await;
        // Not dropped while waiting: the connection is ours again (closed if it fails below).
        let (Some(up), upload) = (lent.conn.take(), lent.upload.take()) else {
            return Err(FailKind::Target(Failure::Closed, false));
        };
        let head = match waited {
            Ok(h) => h,
            Err(NoAnswer::Closed) if reused && req.replayable && stale < MAX_STALE => {
                tracing::debug!(target = %backend.addr, "pooled connection was closed; sending again");
                stale += 1;
                continue;
            }
            Err(e) => {
                tracing::debug!(target = %backend.addr, error = ?e, reused, "no response");
                return Err(FailKind::no_answer(e, req.replayable));
            }
        };
        let status = head.parts.status.as_u16();
        let headers_at = fwd.answered(status, sent_at);
        let body = ResponseBody::new(up, &head, upload, in_flight, cfg.idle_timeout);
        let mut resp = client::into_response(head, body).map(|b| ProxyBody::H1(Box::new(b)));
        if logged {
            resp.extensions_mut().insert(UpstreamTiming {
                target: backend.addr,
                status,
                sent_at,
                headers_at,
            });
        }
        return Ok(resp);
    }
}

/// Take a connection to `backend` (a pooled one unless `stale` were found closed) and write
/// `head` to it: the connection, whether it was pooled, and when the head went out.
/// `Err(None)`: a pooled connection turned out closed, try another.
async fn send_head(
    fwd: &Forwarding<'_>,
    head: &[u8],
    cfg: &ListenerConfig,
    stale: usize,
) -> Result<(UpConn, bool, Instant), Option<Failure>> {
    let backend = fwd.target();
    let checkout = checkout(backend, cfg.idle_timeout, fwd.connect_timeout(), stale);
    let (mut up, reused, sent_at) = match checkout.await {
        Ok(got) => got,
        Err(ConnectError::Timeout) => return Err(Some(Failure::ConnectTimeout)),
        Err(ConnectError::Io(_)) => return Err(Some(Failure::ConnectFailed)),
    };
    let by = tokio::time::Instant::from_std(sent_at) + cfg.idle_timeout;
    match up.send(head, by).await {
        Ok(()) => Ok((up, reused, sent_at)),
        Err(e) => {
            // Nothing of the body was taken yet: the request can be sent again.
            tracing::debug!(target = %backend.addr, error = %e, reused, "send failed");
            Err((!reused).then_some(Failure::Closed))
        }
    }
}

/// A target connection lent to an exchange that may be dropped while it waits for the
/// answer's head — an HTTP/2 client resets its stream, or goes away. Dropped then, a connection
/// whose request went out whole is salvaged ([`salvage`]) rather than closed, so a client that
/// cancels its requests does not make the proxy open a target connection for each.
struct Lent<'a> {
    conn: Option<UpConn>,
    /// The rest of the request body, while it is being sent.
    upload: Option<Upload>,
    backend: &'a Arc<Backend>,
    idle: Duration,
    is_head: bool,
    /// The per-try deadline for the answer's head, if one applies.
    try_by: Option<Instant>,
}

impl Lent<'_> {
    async fn read_head(&mut self, sent_at: Instant) -> Result<Typed, NoAnswer> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(NoAnswer::Closed);
        };
        let (is_head, idle, try_by) = (self.is_head, self.idle, self.try_by);
        client::read_head(conn, &mut self.upload, is_head, idle, sent_at, try_by).await
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let (Some(conn), None) = (self.conn.take(), &self.upload) {
            let left = Left::Head {
                is_head: self.is_head,
            };
            salvage(conn, left, self.backend, self.idle);
        }
    }
}
