//! The admin API of a cluster-mode node: any node answers for the whole cluster. What only the
//! elected controller knows (groups, instances, activities, operator commands) is served by
//! the leader's own router when this node leads, and forwarded to the leader's admin API
//! otherwise; what every node knows (`GET /v1/nodes`) is answered here. Forwarded requests
//! carry `x-flotilla-forwarded`, and a node that is not the leader refuses those with 503
//! rather than forwarding again (the leader changed meanwhile; the client retries).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::server::{router, AdminBackend};
use crate::AdminError;

/// The header a forwarded request carries (the forwarding node's name).
pub const FORWARDED: &str = "x-flotilla-forwarded";
/// Largest request or answer body relayed.
const MAX_BODY: usize = 16 << 20;
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin API's router, for nodes that keep the leader's.
pub type ApiRouter = Router;

/// Where a request for the controller goes now.
pub enum Route {
    /// This node leads: its own router answers.
    Here(Router),
    /// Another node leads; its admin API's base URL.
    There(String),
    /// Nobody leads (an election is under way) or the store is away; why, in words.
    Nobody(String),
}

/// What a node's admin API asks of the node.
pub trait Relay: Send + Sync + 'static {
    /// Where controller requests go now.
    fn route(&self) -> Route;
    /// This node's name, for the forwarded header.
    fn name(&self) -> String;
}

#[derive(Clone)]
struct State {
    relay: Arc<dyn Relay>,
    /// Answers what every node knows (`/v1/nodes`).
    local: Router,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Paths every node answers itself.
const LOCAL: &[&str] = &["/v1/nodes", "/v1/distributions"];
/// Path prefixes every node answers itself: its own DNS and distributions (what they store
/// in etcd reaches every node).
const LOCAL_PREFIXES: &[&str] = &["/v1/dns/", "/v1/distributions/"];
/// The metrics path: the leader's metrics followed by this node's own.
const METRICS: &str = "/metrics";

fn is_local(path: &str) -> bool {
    LOCAL.contains(&path) || LOCAL_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The node's admin API: `/v1/nodes` from `local` (any node knows the nodes), everything else
/// to the controller as [`Relay::route`] says.
pub fn node_router(
    local: Arc<dyn AdminBackend>,
    relay: Arc<dyn Relay>,
    token: Option<Arc<str>>,
) -> Router {
    let state = State {
        relay,
        local: router(local, token),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    Router::new().fallback(move |req: Request| {
        let state = state.clone();
        async move { dispatch(state, req).await }
    })
}

/// Serves a node's admin API on `listener` until `shutdown` becomes true.
pub async fn serve_node(
    listener: TcpListener,
    local: Arc<dyn AdminBackend>,
    relay: Arc<dyn Relay>,
    token: Option<Arc<str>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, node_router(local, relay, token))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

async fn dispatch(state: State, req: Request) -> Response {
    if is_local(req.uri().path()) {
        return serve(state.local.clone(), req).await;
    }
    // A forwarded request wants the leader's own metrics only (the asker adds its own).
    if req.uri().path() == METRICS && !req.headers().contains_key(FORWARDED) {
        return metrics(state, req).await;
    }
    to_controller(&state, req).await
}

/// The controller's metrics (the leader's) with this node's own appended; this node's alone
/// when the controller cannot answer.
async fn metrics(state: State, req: Request) -> Response {
    let mut local_req = Request::new(Body::empty());
    *local_req.method_mut() = req.method().clone();
    *local_req.uri_mut() = req.uri().clone();
    *local_req.headers_mut() = req.headers().clone();
    let local = serve(state.local.clone(), local_req).await;
    let controller = to_controller(&state, req).await;
    if controller.status() != axum::http::StatusCode::OK
        || local.status() != axum::http::StatusCode::OK
    {
        return local;
    }
    let (parts, body) = controller.into_parts();
    let (Ok(first), Ok(second)) = (
        axum::body::to_bytes(body, MAX_BODY).await,
        axum::body::to_bytes(local.into_body(), MAX_BODY).await,
    ) else {
        return AdminError::Internal("metrics body".into()).into_response();
    };
    let first = String::from_utf8_lossy(&first);
    let second = String::from_utf8_lossy(&second);
    let mut merged = first
        .trim_end()
        .strip_suffix("# EOF")
        .unwrap_or(first.trim_end())
        .to_string();
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    merged.push_str(&second);
    let mut response = Response::from_parts(parts, Body::from(merged));
    response
        .headers_mut()
        .remove(axum::http::header::CONTENT_LENGTH);
    response
}

async fn to_controller(state: &State, req: Request) -> Response {
    match state.relay.route() {
        Route::Here(router) => serve(router, req).await,
        Route::There(_) if req.headers().contains_key(FORWARDED) => AdminError::Unavailable(
            "this node does not lead the cluster (the leader changed); try again".into(),
        )
        .into_response(),
        Route::There(base) => forward(state, &base, req)
            .await
            .unwrap_or_else(|e| e.into_response()),
        Route::Nobody(why) => AdminError::Unavailable(why).into_response(),
    }
}

async fn serve(router: Router, req: Request) -> Response {
    match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Sends `req` to the leader at `base` and hands back its answer.
async fn forward(state: &State, base: &str, req: Request) -> Result<Response, AdminError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| AdminError::BadRequest(format!("request body: {e}")))?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: hyper::Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| AdminError::Internal(format!("leader address {base}: {e}")))?;
    let mut out = hyper::Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            out = out.header(name, value);
        }
    }
    let name =
        HeaderValue::from_str(&state.relay.name()).unwrap_or(HeaderValue::from_static("node"));
    let out = out
        .header(FORWARDED, name)
        .body(Full::new(body))
        .map_err(|e| AdminError::Internal(e.to_string()))?;
    let unreachable = |e: String| {
        AdminError::Unavailable(format!(
            "the leader's admin API at {base} does not answer ({e}); try again"
        ))
    };
    let answer = tokio::time::timeout(FORWARD_TIMEOUT, state.client.request(out))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (parts, body) = answer.into_parts();
    let bytes = tokio::time::timeout(FORWARD_TIMEOUT, body.collect())
        .await
        .map_err(|_| unreachable("answer timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = parts.status;
    *response.headers_mut() = parts.headers;
    Ok(response)
}
