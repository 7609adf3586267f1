//! Deadlines: no stream, target connection or client connection waits for ever. Targets that
//! stall mid-body (HTTP/1 and HTTP/2 targets, HTTP/1 and HTTP/2 clients), clients that stop
//! reading or give no flow-control window: each is given up after the idle timeout of its
//! wait, and what it held (the target connection, the in-flight count) is released.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::raw_h2::{self, code, kind, setting, Conn};
use common::*;
use flotilla_proxy::RouteState::Healthy;
use flotilla_proxy::{ListenerConfig, ListenerOptions, RouteAction, TargetGroup};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);

/// Listener settings with a one-second idle timeout.
fn quick() -> ListenerConfig {
    ListenerConfig { idle_timeout: SEC }
}

/// A client that asks for a large answer and stops reading it: once the proxy's writes have
/// made no progress for the idle timeout the exchange is given up, and the target connection
/// it held is closed.
#[tokio::test]
async fn a_client_that_stops_reading_releases_its_target_connection() {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::start(RouteAction::Forward(group.clone()), quick()).await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut s,
        b"GET /big?n=1000000000 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(eventually(5 * SEC, || group.in_flight(backend.addr) == Some(1)).await);
    // Not reading: the socket buffers fill and the proxy's writes stop making progress.
    assert!(
        eventually(10 * SEC, || group.in_flight(backend.addr) == Some(0)).await,
        "the exchange is given up"
    );
    let open = backend.open.clone();
    assert!(eventually(5 * SEC, || open.load(Ordering::SeqCst) == 0).await);
    drop(s);
}

/// A target that sends its head and part of its body, then nothing: the HTTP/1 client's
/// connection is closed after the idle timeout (its answer cannot be completed), and so is
/// the target's.
#[tokio::test]
async fn a_target_stalling_mid_body_closes_both_connections_after_the_idle_timeout() {
    let target = RawBackend::start(Misbehave::Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
    ))
    .await;
    let group = group_of(&[(target.addr, Healthy)]);
    let proxy = TestProxy::start(RouteAction::Forward(group.clone()), quick()).await;
    let answer =
        raw_exchange_within(proxy.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 10 * SEC).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("abc"),
        "{answer:?}"
    );
    assert!(eventually(5 * SEC, || target.closed() == 1).await);
    assert_eq!(group.in_flight(target.addr), Some(0));
}

/// A target that sends its head and part of its body, then nothing: the stream is reset once
/// the target has been silent for the idle timeout, and its connection is closed, instead of
/// both staying open for ever.
#[tokio::test]
async fn a_target_stalling_mid_body_has_the_stream_reset_and_its_connection_closed() {
    let target = RawBackend::start(Misbehave::Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
    ))
    .await;
    let group = group_of(&[(target.addr, Healthy)]);
    let proxy = TestProxy::start(RouteAction::Forward(group.clone()), quick()).await;
    let mut c = Conn::open(proxy.addr).await;
    c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
        .await;
    let a = c.answer(1).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"abc"[..]), "{a:?}");
    assert_eq!(a.reset, Some(code::INTERNAL_ERROR), "{a:?}");
    assert!(eventually(5 * SEC, || target.closed() == 1).await);
    assert_eq!(group.in_flight(target.addr), Some(0));
}

/// A client that gives no window (SETTINGS_INITIAL_WINDOW_SIZE 0) to answers it asked for,
/// while keeping its connection busy with PINGs: each stream is reset after the idle timeout
/// without window, and the target connections its answers held are closed.
#[tokio::test]
async fn a_zero_window_client_cannot_hold_target_connections() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::start(RouteAction::Forward(group.clone()), quick()).await;
    let in_flight = |n| group.in_flight(backend.addr) == Some(n);
    let mut c = Conn::open_with(proxy.addr, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
    let streams: Vec<u32> = (0..8).map(|i| 1 + 2 * i).collect();
    for &id in &streams {
        c.send(&raw_h2::headers(
            id,
            &raw_h2::request("GET", "/big?n=1000000", &[]),
            true,
        ))
        .await;
    }
    assert!(eventually(5 * SEC, || in_flight(8)).await);
    let mut reset = std::collections::BTreeSet::new();
    let deadline = Instant::now() + 10 * SEC;
    while reset.len() < streams.len() && Instant::now() < deadline && !c.closed {
        c.send(&raw_h2::ping([7; 8])).await;
        let rst = c
            .until(Duration::from_millis(200), |f| f.kind == kind::RST_STREAM)
            .await;
        if let Some(f) = rst {
            assert_eq!(f.code(), code::CANCEL, "stream {}", f.stream);
            reset.insert(f.stream);
        }
    }
    assert_eq!(reset.into_iter().collect::<Vec<_>>(), streams);
    assert!(eventually(2 * SEC, || in_flight(0)).await);
    let open = backend.open.clone();
    assert!(
        eventually(5 * SEC, || open.load(Ordering::SeqCst) == 0).await,
        "target connections closed"
    );
    // The connection itself goes on: a stream with window gets its answer.
    c.send(&raw_h2::window_update(0, 1 << 16)).await;
    c.send(&raw_h2::headers(
        21,
        &raw_h2::request("GET", "/", &[]),
        true,
    ))
    .await;
    c.send(&raw_h2::window_update(21, 1 << 16)).await;
    let a = c.answer(21).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"b1"[..]), "{a:?}");
}

/// An HTTP/2 target that sends its response head and one DATA frame, then nothing.
async fn stalling_h2_backend() -> SocketAddr {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                let first: Result<Frame<Bytes>, std::convert::Infallible> =
                    Ok(Frame::data(Bytes::from_static(b"abc")));
                let frames =
                    futures_util::stream::iter([first]).chain(futures_util::stream::pending());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(StreamBody::new(frames)))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/2 target whose body stalls: the client's stream ends in an error after the idle
/// timeout instead of waiting for ever, and the request no longer counts as in flight.
#[tokio::test]
async fn an_http2_target_stalling_mid_body_ends_the_stream_after_the_idle_timeout() {
    let backend = stalling_h2_backend().await;
    let group = TargetGroup::with_protocol_version("h2", flotilla_proxy::ProtocolVersion::Http2);
    group.update(vec![target(backend, Healthy)]);
    let options = ListenerOptions::default();
    let lb = TestProxy::start_with(RouteAction::Forward(group.clone()), quick(), options).await;
    let stream = TcpStream::connect(lb.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/", lb.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(10 * SEC, resp.into_body().collect())
        .await
        .expect("the stream ends");
    assert!(body.is_err(), "the stream is reset, not completed");
    assert!(eventually(5 * SEC, || group.in_flight(backend) == Some(0)).await);
}
