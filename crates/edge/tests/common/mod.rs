//! A programmable origin and a distribution in front of it, on ephemeral loopback ports.
//! Objects are made stale on arrival with an `Age` equal to their `max-age`, so expiry,
//! revalidation and stale serving are tested without waiting.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use flotilla_edge::server::BoundListener;
use flotilla_edge::{AddressesOnly, Edge};

/// What the origin has seen and how it behaves.
#[derive(Default)]
pub struct OriginState {
    /// Requests per path.
    pub hits: Mutex<std::collections::HashMap<String, u64>>,
    /// Every request's headers, in order.
    pub seen: Mutex<Vec<(String, HeaderMap)>>,
    /// Answer 503 to everything.
    pub failing: AtomicBool,
    /// A version number in bodies and ETags.
    pub version: AtomicU64,
}

impl OriginState {
    pub fn count(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

fn answer(status: u16, headers: &[(&str, String)], body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

/// The origin's behaviour by path.
async fn origin(state: Arc<OriginState>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    state
        .seen
        .lock()
        .unwrap()
        .push((path.clone(), req.headers().clone()));
    let v = state.version.load(Ordering::SeqCst);
    let etag = format!("\"v{v}\"");
    if state.failing.load(Ordering::SeqCst) {
        return answer(503, &[], full("down"));
    }
    let body = format!("{path} v{v}");
    let cc = |s: &str| ("cache-control", s.to_string());
    match path.as_str() {
        "/fresh" => answer(200, &[cc("max-age=60"), ("etag", etag)], full(body)),
        "/default" => answer(200, &[("etag", etag)], full(body)),
        "/expired" => answer(200, &[cc("max-age=5"), ("age", "5".into())], full(body)),
        "/revalidate" => {
            if req
                .headers()
                .get("if-none-match")
                .and_then(|x| x.to_str().ok())
                == Some(etag.as_str())
            {
                return answer(
                    304,
                    &[
                        cc("max-age=5"),
                        ("age", "5".into()),
                        ("etag", etag),
                        ("x-revalidated", "yes".into()),
                    ],
                    full(""),
                );
            }
            answer(
                200,
                &[cc("max-age=5"), ("age", "5".into()), ("etag", etag)],
                full(body),
            )
        }
        "/swr" => answer(
            200,
            &[
                cc("max-age=5, stale-while-revalidate=600"),
                ("age", "5".into()),
            ],
            full(body),
        ),
        "/sie" => answer(
            200,
            &[cc("max-age=5, stale-if-error=600"), ("age", "5".into())],
            full(body),
        ),
        "/no-store" => answer(200, &[cc("no-store")], full(body)),
        "/private" => answer(200, &[cc("private, max-age=60")], full(body)),
        "/vary" => {
            let gz = req
                .headers()
                .get("accept-encoding")
                .and_then(|x| x.to_str().ok())
                .is_some_and(|s| s.contains("gzip"));
            let b = if gz { format!("gzip:{body}") } else { body };
            answer(
                200,
                &[cc("max-age=60"), ("vary", "Accept-Encoding".into())],
                full(b),
            )
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            answer(200, &[cc("max-age=60")], full(body))
        }
        "/reflect" => {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|x| x.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            let b = format!(
                "host={} xfh={} xou={}",
                h("host"),
                h("x-forwarded-host"),
                h("x-original-url")
            );
            answer(200, &[cc("max-age=60")], full(b))
        }
        "/big" => answer(
            200,
            &[
                cc("max-age=60"),
                ("etag", etag),
                ("content-type", "text/plain".into()),
            ],
            full("0123456789".repeat(10_000)),
        ),
        "/huge" => answer(200, &[cc("max-age=60")], full(vec![b'x'; 300_000])),
        "/blob" => answer(200, &[cc("max-age=60"), ("etag", etag)], full(blob())),
        "/endless" => answer(200, &[cc("max-age=60")], Endless.boxed()),
        "/text" => answer(
            200,
            &[cc("max-age=60"), ("content-type", "text/html".into())],
            full("<p>hello edge</p>".repeat(200)),
        ),
        _ => answer(404, &[], full("not here")),
    }
}

/// `/blob`'s body: 1.5 MiB that differ from byte to byte (a misplaced chunk shows).
pub fn blob() -> Vec<u8> {
    (0..1_572_867u32)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// 16 KiB chunks for ever (until the reader goes away).
struct Endless;

static CHUNK: [u8; 16384] = [b'e'; 16384];

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

/// Starts the origin; returns its address.
pub async fn start_origin(state: Arc<OriginState>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(origin(state, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// A distribution `cdn` in front of `origin`, with extra TOML for its default behaviour.
pub async fn start_edge(
    origin: SocketAddr,
    behavior_extra: &str,
    dist_extra: &str,
) -> (Arc<Edge>, SocketAddr) {
    let text = format!(
        r#"
[distributions.cdn]
listeners = [{{ bind = "127.0.0.1:0" }}]
{dist_extra}
[distributions.cdn.origins.o]
address = "{origin}"
[distributions.cdn.default_behavior]
origin = "o"
{behavior_extra}
"#
    );
    let cfg = flotilla_config::parse(&text, std::path::Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let d = cfg.distributions["cdn"].clone();
    let bound = BoundListener::bind(&d.listeners[0], None).await.unwrap();
    let addr = bound.local_addr().unwrap();
    let edge = Edge::new("cdn", d, Arc::new(AddressesOnly));
    let (_stop, rx) = watch::channel(false);
    // The sender lives as long as the test: leak it so the listener keeps serving.
    std::mem::forget(_stop);
    tokio::spawn(bound.serve(Arc::clone(&edge), rx));
    (edge, addr)
}

/// A plain HTTP/1.1 client.
pub fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// What a request got: status, headers, body.
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn x_cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GETs `path` from the edge with extra headers.
pub async fn get(edge: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    request_on(&client(), edge, "GET", path, headers).await
}

/// One request on `client` (which may keep its connection for the next).
pub async fn request_on<C>(
    client: &hyper_util::client::legacy::Client<C, Full<Bytes>>,
    edge: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{edge}{path}"))
        .header("host", "cdn.example.test");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("hang guard")
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body,
    }
}

/// Polls `f` until it holds or a hang-guard deadline passes.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
