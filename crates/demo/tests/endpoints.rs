//! The demo service over real HTTP/1.1 connections on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_demo::{serve, DemoConfig};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), flotilla_demo::DemoError>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = DemoConfig {
            host: std::net::IpAddr::from([127, 0, 0, 1]),
            port: addr.port(),
            instance_id: "i-test".into(),
            zone: "az-a".into(),
        };
        let task = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    uri: &str,
    accept: Option<&str>,
) -> (Response<()>, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "demo");
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn assert_identity(response: &Response<()>) {
    assert_eq!(response.headers()["x-instance-id"], "i-test");
    assert_eq!(response.headers()["x-zone"], "az-a");
}

#[tokio::test]
async fn root_answers_text_with_identity() {
    let server = Server::start().await;
    let mut client = connect(server.addr).await;
    let (response, body) = send(&mut client, Method::GET, "/", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_identity(&response);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let time = body
        .strip_prefix("It is ")
        .and_then(|rest| rest.strip_suffix(". Served by i-test in az-a."))
        .unwrap_or_else(|| panic!("unexpected body {body:?}"));
    humantime::parse_rfc3339(time).unwrap();

    // Keep-alive: a second request on the same connection.
    let (response, _) = send(&mut client, Method::GET, "/", Some("text/html")).await;
    assert_eq!(response.status(), StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn root_answers_json_when_asked() {
    let server = Server::start().await;
    let mut client = connect(server.addr).await;
    let (response, body) = send(
        &mut client,
        Method::GET,
        "/",
        Some("text/html, application/json;q=0.9"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_identity(&response);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["instance_id"], "i-test");
    assert_eq!(json["zone"], "az-a");
    humantime::parse_rfc3339(json["time"].as_str().unwrap()).unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn health_can_be_failed_and_restored() {
    let server = Server::start().await;
    let mut client = connect(server.addr).await;
    let (response, body) = send(&mut client, Method::GET, "/health", None).await;
    assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "ok"));
    assert_identity(&response);

    let (response, _) = send(&mut client, Method::POST, "/health/fail", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (response, _) = send(&mut client, Method::GET, "/health", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_identity(&response);
    // Only health is affected.
    let (response, _) = send(&mut client, Method::GET, "/", None).await;
    assert_eq!(response.status(), StatusCode::OK);

    let (response, _) = send(&mut client, Method::POST, "/health/pass", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (response, body) = send(&mut client, Method::GET, "/health", None).await;
    assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "ok"));
    server.shutdown().await;
}

#[tokio::test]
async fn work_and_sleep_take_the_time_asked() {
    let server = Server::start().await;
    let mut client = connect(server.addr).await;
    for path in ["/work?ms=80", "/sleep?ms=80"] {
        let started = Instant::now();
        let (response, _) = send(&mut client, Method::GET, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_identity(&response);
        assert!(started.elapsed() >= Duration::from_millis(80), "{path}");
    }
    let (response, _) = send(&mut client, Method::GET, "/sleep?ms=0", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_unknown_paths_and_methods() {
    let server = Server::start().await;
    let mut client = connect(server.addr).await;
    for path in ["/work?ms=abc", "/sleep", "/sleep?ms=-1", "/work?ms="] {
        let (response, body) = send(&mut client, Method::GET, path, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("ms"), "{path}: {body}");
        assert_identity(&response);
    }
    let (response, _) = send(&mut client, Method::GET, "/nope", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_identity(&response);
    let (response, _) = send(&mut client, Method::POST, "/", None).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
    let (response, _) = send(&mut client, Method::GET, "/health/fail", None).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let server = Server::start().await;
    let addr = server.addr;
    let mut client = connect(addr).await;
    // The connection is established and served before the slow request starts.
    let (response, _) = send(&mut client, Method::GET, "/", None).await;
    assert_eq!(response.status(), StatusCode::OK);

    let in_flight =
        tokio::spawn(async move { send(&mut client, Method::GET, "/sleep?ms=500", None).await });
    // Shut down once the app is answering it (polled on another connection, with a deadline).
    let mut stats = connect(addr).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = send(&mut stats, Method::GET, "/stats", None).await;
        if body == r#"{"in_flight":1}"# {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request never got in flight: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stats);
    server.shutdown().await;
    // The request in flight when the shutdown began was answered in full, not cut off.
    let (response, body) = in_flight.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "slept 500 ms");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
