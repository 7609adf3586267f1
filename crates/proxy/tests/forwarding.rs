//! One forwarding path for every protocol: WebSocket upgrades and requests to targets spoken
//! to in HTTP/2 pick, stick, wait (scale from zero) and retry as plain HTTP/1 requests do.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_proxy::RouteState::Healthy;
use flotilla_proxy::{HoldConfig, ProtocolVersion, TargetGroup, TargetGroupSettings};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::Message;

/// An address nothing listens on: connecting is refused.
async fn refusing() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A WebSocket handshake to `lb` (with `cookie` if given): the open socket and the 101's
/// `Set-Cookie`, if any.
async fn upgrade(
    lb: SocketAddr,
    cookie: Option<&str>,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    Option<String>,
) {
    let mut req = Request::get(format!("ws://{lb}/chat"))
        .header("host", lb.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", generate_key());
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let tcp = TcpStream::connect(lb).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req.body(()).unwrap(), tcp)
        .await
        .expect("upgrade through the proxy");
    assert_eq!(resp.status(), 101);
    let set = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, set)
}

async fn echo(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(got.into_text().unwrap().as_str(), text);
}

#[tokio::test]
async fn a_websocket_upgrade_is_retried_on_another_target_when_one_refuses() {
    let live = ws_echo_backend().await;
    let dead = refusing().await;
    let group = group_of(&[(dead, Healthy), (live, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    // Round robin sends every other upgrade to the refusing target first (until it is
    // ejected): each one still reaches the live target.
    for i in 0..4 {
        let (mut ws, _) = upgrade(proxy.addr, None).await;
        echo(&mut ws, &format!("hello {i}")).await;
    }
    let stats = group.stats();
    let dead_stats = stats.iter().find(|s| s.addr == dead).unwrap();
    assert!(dead_stats.errors_total >= 1, "{dead_stats:?}");
    assert!(
        dead_stats.consecutive_failures >= 1,
        "ejected: {dead_stats:?}"
    );
    let live_stats = stats.iter().find(|s| s.addr == live).unwrap();
    assert_eq!(
        live_stats.responses_by_class[0], 4,
        "four 101s: {live_stats:?}"
    );
}

#[tokio::test]
async fn a_websocket_upgrade_goes_to_the_target_its_cookie_names() {
    let (a, b) = (ws_echo_backend().await, ws_echo_backend().await);
    let group = TargetGroup::with_settings(
        "sticky",
        TargetGroupSettings {
            stickiness: Some(Duration::from_secs(3600)),
            ..TargetGroupSettings::default()
        },
    );
    group.update(vec![target(a, Healthy), target(b, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let (mut first, cookie) = upgrade(proxy.addr, None).await;
    let cookie = cookie.expect("the 101 carries the stickiness cookie");
    let cookie = cookie.split(';').next().unwrap().to_string();
    echo(&mut first, "first").await;
    let pinned = if group.in_flight(a) == Some(1) { a } else { b };
    assert_eq!(group.in_flight(pinned), Some(1));
    // Round robin alone would alternate; the cookie keeps every upgrade on the same target.
    let mut open = Vec::new();
    for i in 0..4 {
        let (mut ws, _) = upgrade(proxy.addr, Some(&cookie)).await;
        echo(&mut ws, &format!("again {i}")).await;
        open.push(ws);
    }
    assert_eq!(group.in_flight(pinned), Some(5));
}

#[tokio::test]
async fn a_websocket_upgrade_waits_while_the_group_scales_from_zero() {
    let backend = ws_echo_backend().await;
    let group = TargetGroup::new("from-zero");
    group.enable_hold(
        HoldConfig {
            max_waiting: 4,
            timeout: Duration::from_secs(30),
        },
        Arc::new(|| {}),
    );
    let proxy = TestProxy::forward_to(&group).await;
    let addr = proxy.addr;
    let waiting = tokio::spawn(async move {
        let (mut ws, _) = upgrade(addr, None).await;
        echo(&mut ws, "after the wait").await;
    });
    assert!(
        eventually(Duration::from_secs(10), || group.held_requests() == 1).await,
        "the upgrade waits for a target"
    );
    group.update(vec![target(backend, Healthy)]);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the held upgrade went out")
        .unwrap();
    assert_eq!(group.held_requests(), 0);
}

#[tokio::test]
async fn a_request_to_an_http2_target_group_is_retried_when_a_target_refuses() {
    let live = grpc_backend().await;
    let dead = refusing().await;
    let group = TargetGroup::with_protocol_version("grpc", ProtocolVersion::Grpc);
    group.update(vec![target(dead, Healthy), target(live, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..4 {
        let req = Request::post(format!("http://{}/echo.Echo/Say", proxy.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(format!("call{i}"))))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "call {i}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("call{i}"));
    }
    let stats = group.stats();
    let live_stats = stats.iter().find(|s| s.addr == live).unwrap();
    assert_eq!(live_stats.responses_by_class[1], 4, "{live_stats:?}");
    let dead_stats = stats.iter().find(|s| s.addr == dead).unwrap();
    assert!(dead_stats.errors_total >= 1, "{dead_stats:?}");
}
