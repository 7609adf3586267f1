//! One HTTP/2 client's request, as a stream's exchange: routed through the listener's
//! [`Routing`](crate::lb::Routing), forwarded to its target group — over pooled HTTP/1.1
//! connections ([`crate::http1::forward`]) or, for groups that speak HTTP/2 or gRPC, over the
//! target's multiplexed connection ([`super::upstream`]) — or answered by the load balancer;
//! counted and access-logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use crate::access_log;
use crate::body::{BodyLimit, BoxError, ProxyBody, ReqBody, TargetBodyError};
use crate::ctx::ConnCtx;
use crate::errors::{self, Generated};
use crate::http2::upstream::{self, ProtocolVersion};
use crate::lb::target_group::TargetGroup;
use crate::lb::Routed;
use crate::request::Req;

/// Route an HTTP/2 client's request and produce its response, with the first frame of its body
/// (`None`: it has none): forwarded, or answered by the load balancer (redirect, fixed
/// response, 4xx/5xx). A target's answer whose body fails before its first frame — before
/// anything of it reached the client — becomes a 502 (504 if the target went silent). Counted
/// and access-logged here. One async level over the forwarding on purpose: each level keeps its
/// own copy of the request's parts in the stream's future, which is moved into place for
/// every request.
pub(crate) async fn handle(
    mut parts: http::request::Parts,
    body: ReqBody,
    ctx: &ConnCtx,
) -> (Response<ProxyBody>, Option<Result<Frame<Bytes>, BoxError>>) {
    let log = ctx.stats.access_log();
    let pending = log.map(|_| access_log::Pending::start(&mut parts, ctx.peer, ctx.local));
    let mut resp = match route(parts, body, ctx) {
        Stream::Answer(resp) => resp,
        Stream::Forward {
            group,
            parts,
            body,
            exceeded,
        } => {
            let resp = if group.protocol_version() == ProtocolVersion::Http1 {
                crate::http1::forward::forward(&group, parts, body, &ctx.forwarded(), &ctx.config)
                    .await
            } else {
                // Boxed: its state would otherwise widen every HTTP/1 exchange's future too.
                Box::pin(upstream::forward(
                    &group,
                    parts,
                    body,
                    &ctx.forwarded(),
                    &ctx.config,
                ))
                .await
            };
            if exceeded.is_some_and(|e| e.load(Ordering::Relaxed)) {
                payload_too_large()
            } else {
                resp
            }
        }
    };
    let mut first = first_frame(resp.body_mut()).await;
    if let Some(Err(e)) = &first {
        let timeout = e
            .downcast_ref::<TargetBodyError>()
            .is_some_and(|e| *e == TargetBodyError::Timeout);
        let generated = if timeout {
            Generated::GatewayTimeout
        } else {
            Generated::BadGateway
        };
        resp = generated.response();
        first = first_frame(resp.body_mut()).await;
    }
    let generated = matches!(resp.body(), ProxyBody::Full(_));
    ctx.stats.record(resp.status(), generated);
    if let (Some(log), Some(p)) = (log, pending) {
        log.log(p.finish(&resp));
    }
    (resp, first)
}

/// The first frame of a response body, so that the head and it go out together.
async fn first_frame(body: &mut ProxyBody) -> Option<Result<Frame<Bytes>, BoxError>> {
    if body.is_end_stream() {
        return None;
    }
    body.frame().await
}

/// Where a request goes, decided without waiting.
enum Stream {
    /// The load balancer answers itself.
    Answer(Response<ProxyBody>),
    /// To a target group, with the body limited; `exceeded` is raised if the limit was hit.
    Forward {
        group: Arc<TargetGroup>,
        parts: http::request::Parts,
        body: ReqBody,
        exceeded: Option<Arc<AtomicBool>>,
    },
}

fn route(parts: http::request::Parts, body: ReqBody, ctx: &ConnCtx) -> Stream {
    if let Some(max) = ctx.limits.max_request_body {
        if let Some(resp) = over_body_limit(&body, max) {
            return Stream::Answer(resp);
        }
    }
    let group = match ctx.routing.route(Req::Parts(&parts), ctx.peer.ip()) {
        Routed::Forward(group) => group,
        Routed::Answer(resp) => return Stream::Answer(*resp),
    };
    let mut body = body;
    let mut exceeded = None;
    if let Some(left) = ctx.limits.max_request_body {
        let flag = Arc::new(AtomicBool::new(false));
        body = body.with_limit(BodyLimit {
            left,
            exceeded: Arc::clone(&flag),
        });
        exceeded = Some(flag);
    }
    Stream::Forward {
        group,
        parts,
        body,
        exceeded,
    }
}

/// 413 for a request whose declared length exceeds the body limit (checked before anything is
/// forwarded). The connection is closed after the answer: the unread body must not be taken
/// for the next request.
fn over_body_limit(body: &ReqBody, max: u64) -> Option<Response<ProxyBody>> {
    let declared = http_body::Body::size_hint(body).lower();
    if declared <= max {
        return None;
    }
    Some(payload_too_large())
}

/// The 413 answer (only HTTP/2 clients come here: the HTTP/1 engine answers its own).
fn payload_too_large() -> Response<ProxyBody> {
    errors::text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
        Bytes::from_static(b"413 Payload Too Large: the request body exceeds the limit\n"),
    )
}
