//! Test fixtures: in-process backends, misbehaving raw-TCP targets, and a proxy under test.
#![allow(dead_code)]

pub mod raw_h2;
pub mod servers;
#[allow(unused_imports)] // used by the protocol tests only
pub use servers::{grpc_backend, ws_echo_backend};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use flotilla_proxy::{
    serve_listener, ListenerConfig, ListenerOptions, ListenerStats, RouteAction, RouteState,
    Router, TargetGroup, TargetUpdate,
};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A well-behaved HTTP backend that says who it is.
pub struct TestBackend {
    pub name: String,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Connections currently open.
    pub open: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    /// User-Agent of the last request (probe tests).
    pub last_user_agent: Arc<Mutex<Option<String>>>,
    /// The path and query of every request, in order (smuggling tests).
    pub paths: Arc<Mutex<Vec<String>>>,
    /// Requests to `/held` wait for a permit of this gate (none at start; the test adds them).
    pub gate: Arc<tokio::sync::Semaphore>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TestBackend {
    pub async fn start(name: &str) -> TestBackend {
        TestBackend::start_with_keep_alive(name, None).await
    }

    /// A backend that closes keep-alive connections idle longer than `idle` (like a target whose
    /// keep-alive timeout is shorter than the load balancer's).
    pub async fn start_with_keep_alive(name: &str, idle: Option<Duration>) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let last_user_agent = Arc::new(Mutex::new(None));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let accept = {
            let (name, connections, open, requests, ua, paths, tasks, gate) = (
                name.to_string(),
                connections.clone(),
                open.clone(),
                requests.clone(),
                last_user_agent.clone(),
                paths.clone(),
                tasks.clone(),
                gate.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    open.fetch_add(1, Ordering::SeqCst);
                    let open = open.clone();
                    let (name, requests, ua) = (name.clone(), requests.clone(), ua.clone());
                    let paths = paths.clone();
                    let gate = gate.clone();
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        requests.fetch_add(1, Ordering::SeqCst);
                        paths.lock().unwrap().push(
                            req.uri()
                                .path_and_query()
                                .map_or_else(String::new, |p| p.to_string()),
                        );
                        let name = name.clone();
                        let ua = ua.clone();
                        let gate = gate.clone();
                        async move {
                            if req.uri().path() == "/held" {
                                gate.acquire().await.unwrap().forget();
                            }
                            Ok::<_, Infallible>(backend_handle(&name, &ua, req).await)
                        }
                    });
                    tasks.lock().unwrap().spawn(async move {
                        let mut builder = hyper::server::conn::http1::Builder::new();
                        if let Some(idle) = idle {
                            builder
                                .timer(hyper_util::rt::TokioTimer::new())
                                .header_read_timeout(idle);
                        }
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        TestBackend {
            name: name.to_string(),
            addr,
            connections,
            open,
            requests,
            last_user_agent,
            paths,
            gate,
            tasks,
            accept,
        }
    }

    /// Like SIGKILL: the port refuses from now on and every open connection is torn down.
    pub fn kill(&self) {
        self.accept.abort();
        self.tasks.lock().unwrap().abort_all();
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The paths (with queries) requested so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn full(s: impl Into<Bytes>) -> BoxBody {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

fn query_num(req: &Request<Incoming>, key: &str) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn backend_handle(
    name: &str,
    ua: &Mutex<Option<String>>,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    *ua.lock().unwrap() = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let builder = Response::builder().header("x-backend", name);
    match req.uri().path() {
        "/headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
            }
            builder
                .header("keep-alive", "timeout=5")
                .header("connection", "x-hop")
                .header("x-hop", "1")
                .header("x-end", "1")
                .body(full(out))
                .unwrap()
        }
        "/echo" => builder.body(req.into_body().boxed()).unwrap(),
        "/big" => {
            // Streamed in 64 KiB chunks without a Content-Length (chunked).
            let left = query_num(&req, "n");
            builder.body(BigBody { left }.boxed()).unwrap()
        }
        "/sleep" => {
            tokio::time::sleep(Duration::from_millis(query_num(&req, "ms"))).await;
            builder.body(full(name.to_string())).unwrap()
        }
        "/status" => builder
            .status(query_num(&req, "code") as u16)
            .body(full(name.to_string()))
            .unwrap(),
        _ => builder.body(full(name.to_string())).unwrap(),
    }
}

/// A generated body of `left` bytes of `x`, produced chunk by chunk.
pub struct BigBody {
    pub left: u64,
}

impl hyper::body::Body for BigBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = this.left.min(65536);
        this.left -= n;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n as usize])))))
    }
}

/// A target that reads the request head, then does `behaviour` instead of answering (or, for
/// `Reply`, answers every request of the connection with the same bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Close the connection without a response.
    Close,
    /// Answer with something that is not HTTP.
    Garbage,
    /// Never answer (keep the connection open).
    Silent,
    /// Write these bytes for each request head, then wait for the next one.
    Reply(&'static [u8]),
}

pub struct RawBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Connections the proxy closed (end of stream seen while waiting for a request).
    pub closed: Arc<AtomicUsize>,
    /// Request heads received.
    pub requests: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

/// Read from `stream` into `seen` until it holds a whole request head; its length, or `None`
/// when the stream ended (or sent 1 MiB without one).
async fn next_head(stream: &mut TcpStream, seen: &mut Vec<u8>) -> Option<usize> {
    let mut buf = vec![0u8; 16384];
    loop {
        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if seen.len() > 1 << 20 {
            return None;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

impl RawBackend {
    pub async fn start(behaviour: Misbehave) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (conns, ended, heads) = (connections.clone(), closed.clone(), requests.clone());
        let accept = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (ended, heads) = (ended.clone(), heads.clone());
                tasks.spawn(async move {
                    let mut seen = Vec::new();
                    loop {
                        let Some(len) = next_head(&mut stream, &mut seen).await else {
                            ended.fetch_add(1, Ordering::SeqCst);
                            return;
                        };
                        seen.drain(..len);
                        heads.fetch_add(1, Ordering::SeqCst);
                        match behaviour {
                            Misbehave::Close => return,
                            Misbehave::Garbage => {
                                let _ = stream.write_all(b"HELLO\r\n\r\n").await;
                                let _ = stream.flush().await;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                return;
                            }
                            Misbehave::Silent => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                            Misbehave::Reply(bytes) => {
                                if stream.write_all(bytes).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        RawBackend {
            addr,
            connections,
            closed,
            requests,
            accept,
        }
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Wait up to `within` for `cond` to hold (polled every 10 ms); whether it did.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A proxy listener under test.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub shutdown: watch::Sender<bool>,
    pub handle: tokio::task::JoinHandle<Result<(), flotilla_proxy::ProxyError>>,
    pub router: Arc<ArcSwap<Router>>,
    pub stats: Arc<ListenerStats>,
}

impl TestProxy {
    pub async fn start(action: RouteAction, config: ListenerConfig) -> TestProxy {
        TestProxy::start_with(action, config, ListenerOptions::default()).await
    }

    /// A listener with options (TLS, limits).
    pub async fn start_with(
        action: RouteAction,
        config: ListenerConfig,
        options: ListenerOptions,
    ) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Arc::new(ArcSwap::from_pointee(Router::new(action)));
        let (shutdown, rx) = watch::channel(false);
        let stats = Arc::new(ListenerStats::default());
        let handle = tokio::spawn(serve_listener(
            listener,
            router.clone(),
            config,
            options,
            stats.clone(),
            rx,
        ));
        TestProxy {
            addr,
            shutdown,
            handle,
            router,
            stats,
        }
    }

    pub async fn forward_to(group: &Arc<TargetGroup>) -> TestProxy {
        TestProxy::start(RouteAction::Forward(group.clone()), test_config()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

pub fn test_config() -> ListenerConfig {
    ListenerConfig {
        idle_timeout: Duration::from_secs(5),
    }
}

pub fn target(addr: SocketAddr, state: RouteState) -> TargetUpdate {
    TargetUpdate {
        addr,
        instance_id: None,
        zone: None,
        state,
    }
}

pub fn group_of(addrs: &[(SocketAddr, RouteState)]) -> Arc<TargetGroup> {
    let g = TargetGroup::new("test");
    g.update(addrs.iter().map(|(a, s)| target(*a, *s)).collect());
    g
}

/// GET a URL; returns status, the `x-backend` header (or empty) and the body.
pub async fn get(client: &TestClient, url: &str) -> (u16, String, Bytes) {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    send(client, req).await
}

pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> (u16, String, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = resp.status().as_u16();
    let backend = resp
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, backend, body)
}

/// Send raw bytes on a fresh connection and return everything read until the server closes or
/// 2 s pass.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    raw_exchange_within(addr, bytes, Duration::from_secs(2)).await
}

/// [`raw_exchange`], reading until the server closes or `within` passes.
pub async fn raw_exchange_within(addr: SocketAddr, bytes: &[u8], within: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Send a GET over a new HTTP/2 connection on `io` (hyper's client); returns status, version
/// and body.
pub async fn h2_get<I>(io: I, uri: &str) -> (u16, http::Version, Bytes)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (status, version) = (resp.status().as_u16(), resp.version());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, version, body)
}
