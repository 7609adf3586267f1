//! Talking to origins: where an origin is (the runtime says, through [`OriginResolver`]),
//! the HTTP/1.1 client with pooled keep-alive connections (hyper-util's), and the request a
//! cache sends — only what the cache key holds, so nothing unkeyed shapes a stored answer.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use flotilla_config::edge::{Behavior, Origin};

use crate::key::{kept_cookies, kept_query, Encoding};

/// A body sent to an origin.
pub type OutBody = BoxBody<Bytes, hyper::Error>;

/// Where origins are: the runtime knows its load balancers' listeners and target groups'
/// healthy targets.
pub trait OriginResolver: Send + Sync {
    /// An address to send a request for `origin` to now (`None`: nowhere to go).
    fn resolve(&self, origin: &Origin) -> Option<SocketAddr>;
}

/// Resolves only fixed addresses (tests, and distributions of custom origins).
#[derive(Debug, Default, Clone, Copy)]
pub struct AddressesOnly;

impl OriginResolver for AddressesOnly {
    fn resolve(&self, origin: &Origin) -> Option<SocketAddr> {
        match origin {
            Origin::Address(a) => Some(*a),
            _ => None,
        }
    }
}

/// Why an origin gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The resolver knows no address for it.
    #[error("origin has no address")]
    NoAddress,
    /// It did not answer within the origin timeout.
    #[error("origin timed out")]
    Timeout,
    /// Connecting or exchanging failed.
    #[error("origin failed: {0}")]
    Failed(String),
}

/// The client all of a distribution's origin requests go through.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpConnector, OutBody>,
}

impl Default for OriginClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(4)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        OriginClient { client }
    }
}

impl OriginClient {
    /// Sends `req` to `addr`, waiting at most `timeout` for the answer's head.
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<OutBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, OriginError> {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        *req.uri_mut() = format!("http://{addr}{pq}")
            .parse()
            .map_err(|e| OriginError::Failed(format!("bad request target: {e}")))?;
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(OriginError::Timeout),
            Ok(Err(e)) => Err(OriginError::Failed(e.to_string())),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) and the ones this cache sets itself.
pub fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The GET (or HEAD) a cache sends for a viewer's request: the viewer's `Host`, the key's
/// query strings, headers and cookies, the negotiated `Accept-Encoding`, `X-Forwarded-For`
/// and `Via` — and nothing else the viewer sent. `validators` make it conditional.
pub fn cacheable_request(
    method: &Method,
    viewer: &http::request::Parts,
    behavior: &Behavior,
    encoding: Encoding,
    peer: SocketAddr,
    validators: Option<(&HeaderValue, &HeaderValue)>,
) -> Request<OutBody> {
    let policy = &behavior.cache_key;
    let query = kept_query(viewer.uri.query(), &policy.query_strings);
    let mut target = viewer.uri.path().to_string();
    if !query.is_empty() {
        target.push('?');
        target.push_str(&query.join("&"));
    }
    let mut h = HeaderMap::new();
    if let Some(host) = viewer.headers.get(header::HOST) {
        h.insert(header::HOST, host.clone());
    }
    for name in &policy.headers {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            for v in viewer.headers.get_all(&n) {
                h.append(n.clone(), v.clone());
            }
        }
    }
    let cookies = kept_cookies(&viewer.headers, &policy.cookies);
    if let Ok(v) = HeaderValue::from_str(&cookies.join("; ")) {
        if !cookies.is_empty() {
            h.insert(header::COOKIE, v);
        }
    }
    if encoding != Encoding::Identity {
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    }
    forwarded(&mut h, &viewer.headers, peer);
    h.insert(
        header::USER_AGENT,
        HeaderValue::from_static("Flotilla-Edge"),
    );
    if let Some((etag, lm)) = validators {
        if !etag.is_empty() {
            h.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if !lm.is_empty() {
            h.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    let mut req = Request::new(Empty::new().map_err(|never| match never {}).boxed());
    *req.method_mut() = method.clone();
    *req.uri_mut() = target
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    *req.headers_mut() = h;
    req
}

/// A request passed through uncached (methods other than GET and HEAD): everything but
/// hop-by-hop fields, with `X-Forwarded-For` and `Via`.
pub fn pass_request(
    viewer: http::request::Parts,
    body: Incoming,
    peer: SocketAddr,
) -> Request<OutBody> {
    let mut h = HeaderMap::new();
    for (n, v) in &viewer.headers {
        if !hop_by_hop(n) && n != "x-forwarded-for" && n != header::VIA {
            h.append(n.clone(), v.clone());
        }
    }
    forwarded(&mut h, &viewer.headers, peer);
    let mut req = Request::new(body.boxed());
    *req.method_mut() = viewer.method;
    *req.uri_mut() = viewer
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    *req.headers_mut() = h;
    req
}

fn forwarded(h: &mut HeaderMap, viewer: &HeaderMap, peer: SocketAddr) {
    let prior: Vec<&str> = viewer
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = if prior.is_empty() {
        peer.ip().to_string()
    } else {
        format!("{}, {}", prior.join(", "), peer.ip())
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    h.insert(header::VIA, HeaderValue::from_static("1.1 flotilla-edge"));
}
