//! The deadlines of one attempt, per target group: a connect that does not complete within
//! `connect_timeout` (a blackholed target: its SYNs are dropped) and an idempotent request
//! whose answer does not begin within `per_try_timeout` (a target that takes the connection
//! and the request but never answers) are tried once more on the other target and succeed; a
//! POST that reached the silent target is not sent again. No assertion on time: the deadlines
//! only decide which target answers.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_proxy::RouteState::Healthy;
use flotilla_proxy::{ListenerConfig, RouteAction, TargetGroup, TargetGroupSettings};
use http_body_util::Full;
use hyper::Request;
use tokio::net::{TcpSocket, TcpStream};

/// A group over `addrs` (in this order: round robin tries the first one first) with the
/// given attempt deadlines.
fn group(addrs: &[SocketAddr], connect: Duration, per_try: Option<Duration>) -> Arc<TargetGroup> {
    let settings = TargetGroupSettings {
        connect_timeout: connect,
        per_try_timeout: per_try,
        ..TargetGroupSettings::default()
    };
    let g = TargetGroup::with_settings("deadlines", settings);
    g.update(addrs.iter().map(|a| target(*a, Healthy)).collect());
    g
}

/// A listening socket on 127.0.0.1 whose accept queue is full and never drained: the kernel
/// drops every further SYN, so connecting to it neither succeeds nor is refused. Returns the
/// address, the listener and the connections that filled its queue (all to be kept alive).
async fn blackhole() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filled = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => filled.push(s),
            _ => break,
        }
    }
    // Hang guard only: the queue holds a handful of connections at most.
    assert!(filled.len() < 8, "the accept queue never filled");
    (addr, listener, filled)
}

/// A target that takes requests and never answers, then a good one, in a group with a
/// 300 ms per-try deadline.
async fn silent_then_good() -> (RawBackend, TestBackend, Arc<TargetGroup>) {
    let silent = RawBackend::start(Misbehave::Silent).await;
    let good = TestBackend::start("good").await;
    let g = group(
        &[silent.addr, good.addr],
        Duration::from_secs(2),
        Some(Duration::from_millis(300)),
    );
    (silent, good, g)
}

fn post(url: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"order=1")))
        .unwrap()
}

#[tokio::test]
async fn a_connect_that_times_out_is_retried_on_the_other_target() {
    let (hole, _listener, _filled) = blackhole().await;
    let good = TestBackend::start("good").await;
    let g = group(&[hole, good.addr], Duration::from_millis(300), None);
    let proxy = TestProxy::forward_to(&g).await;
    let c = client();
    // The first request tries the blackhole first; a POST too, since nothing of it was sent.
    let (status, backend, _) = get(&c, &proxy.url("/a")).await;
    assert_eq!((status, backend.as_str()), (200, "good"));
    let (status, backend, _) = send(&c, post(&proxy.url("/b"))).await;
    assert_eq!((status, backend.as_str()), (200, "good"));
    let hole_stats = g.stats().into_iter().find(|s| s.addr == hole).unwrap();
    assert!(
        hole_stats.errors_total >= 1 && hole_stats.consecutive_failures >= 1,
        "the blackhole was tried and ejected: {hole_stats:?}"
    );
    assert_eq!(good.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idempotent_request_without_an_answer_is_retried_on_the_other_target() {
    let (silent, good, g) = silent_then_good().await;
    let proxy = TestProxy::forward_to(&g).await;
    let c = client();
    for path in ["/1", "/2", "/3"] {
        let (status, backend, _) = get(&c, &proxy.url(path)).await;
        assert_eq!((status, backend.as_str()), (200, "good"), "{path}");
    }
    assert_eq!(
        silent.requests.load(Ordering::SeqCst),
        1,
        "the silent target got the first request, then was ejected"
    );
    assert_eq!(good.requests.load(Ordering::SeqCst), 3);
    let silent_stats = g
        .stats()
        .into_iter()
        .find(|s| s.addr == silent.addr)
        .unwrap();
    assert_eq!(silent_stats.errors_total, 1);
}

#[tokio::test]
async fn a_post_that_reached_a_silent_target_is_not_retried() {
    let (silent, good, g) = silent_then_good().await;
    let config = ListenerConfig {
        idle_timeout: Duration::from_secs(1),
    };
    let proxy = TestProxy::start(RouteAction::Forward(g.clone()), config).await;
    let (status, _, _) = send(&client(), post(&proxy.url("/order"))).await;
    assert_eq!(
        status, 504,
        "the target may have acted on it: no second try"
    );
    assert_eq!(silent.requests.load(Ordering::SeqCst), 1);
    assert_eq!(good.requests.load(Ordering::SeqCst), 0);
}
