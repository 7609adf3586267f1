//! End-to-end tests of the data plane: real sockets on 127.0.0.1, in-process backends.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_proxy::{
    probe_http, ListenerConfig, ProbeError, RouteAction, RouteState, TargetGroup,
};
use http_body_util::Full;
use hyper::Request;

use RouteState::*;

fn count(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

async fn backends(n: usize) -> Vec<TestBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(TestBackend::start(&format!("b{i}")).await);
    }
    v
}

#[tokio::test]
async fn round_robin_over_three_backends() {
    let bs = backends(3).await;
    let group = group_of(&bs.iter().map(|b| (b.addr, Healthy)).collect::<Vec<_>>());
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..30 {
        let (status, backend, body) = get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        assert_eq!(body, backend.as_bytes());
        seen.push(backend);
    }
    let counts = count(&seen);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
    // Strict rotation: no backend twice in a row.
    assert!(seen.windows(2).all(|w| w[0] != w[1]));
    let stats = group.stats();
    assert_eq!(stats.iter().map(|s| s.requests_total).sum::<u64>(), 30);
    assert!(stats.iter().all(|s| s.errors_total == 0));
}

#[tokio::test]
async fn only_healthy_targets_get_requests() {
    let bs = backends(3).await;
    let group = group_of(&[
        (bs[0].addr, Healthy),
        (bs[1].addr, Unhealthy),
        (bs[2].addr, Initial),
    ]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    for _ in 0..10 {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        assert_eq!(backend, "b0");
    }
}

#[tokio::test]
async fn fails_open_when_no_target_is_healthy() {
    let bs = backends(3).await;
    let group = group_of(&[
        (bs[0].addr, Unhealthy),
        (bs[1].addr, Initial),
        (bs[2].addr, Draining),
    ]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        seen.push(backend);
    }
    let counts = count(&seen);
    assert_eq!(counts.get("b0"), Some(&5));
    assert_eq!(counts.get("b1"), Some(&5));
    assert_eq!(counts.get("b2"), None, "draining target got requests");
}

#[tokio::test]
async fn no_targets_or_only_draining_gives_503() {
    let b = TestBackend::start("b0").await;
    let group = TargetGroup::new("empty");
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let (status, _, body) = get(&c, &proxy.url("/")).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("no registered targets"));

    group.update(vec![target(b.addr, Draining)]);
    let (status, _, _) = get(&c, &proxy.url("/")).await;
    assert_eq!(status, 503);
    assert_eq!(b.requests(), 0);

    group.update(vec![target(b.addr, Healthy)]);
    let (status, backend, _) = get(&c, &proxy.url("/")).await;
    assert_eq!((status, backend.as_str()), (200, "b0"));

    // Both 503s were counted as load-balancer errors, the 200 was not.
    assert_eq!(proxy.stats.requests_total(), 3);
    assert_eq!(proxy.stats.elb_5xx_total(), 2);
    assert_eq!(proxy.stats.target_5xx_total(), 0);
    assert!(proxy.stats.connections_total() >= 1);
}

#[tokio::test]
async fn draining_target_finishes_in_flight_and_gets_no_new_requests() {
    let bs = backends(2).await;
    let group = group_of(&[(bs[0].addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let slow = {
        let c = c.clone();
        let url = proxy.url("/sleep?ms=600");
        tokio::spawn(async move { get(&c, &url).await })
    };
    // Wait (bounded) until the slow request is on b0.
    for _ in 0..100 {
        if group.in_flight(bs[0].addr) == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(group.in_flight(bs[0].addr), Some(1));
    group.update(vec![
        target(bs[0].addr, Draining),
        target(bs[1].addr, Healthy),
    ]);
    for _ in 0..5 {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!((status, backend.as_str()), (200, "b1"));
    }
    assert_eq!(group.in_flight(bs[0].addr), Some(1), "still running");
    let (status, backend, _) = slow.await.unwrap();
    assert_eq!((status, backend.as_str()), (200, "b0"));
    for _ in 0..100 {
        if group.in_flight(bs[0].addr) == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(group.in_flight(bs[0].addr), Some(0));
    assert_eq!(bs[0].requests(), 1);
    // Removed entirely: unknown.
    group.update(vec![target(bs[1].addr, Healthy)]);
    assert_eq!(group.in_flight(bs[0].addr), None);
}

#[tokio::test]
async fn refused_target_is_retried_elsewhere_without_client_errors() {
    let bs = backends(3).await;
    let group = group_of(&bs.iter().map(|b| (b.addr, Healthy)).collect::<Vec<_>>());
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    // Warm the pools, then kill one backend (port now refuses, pooled connections die).
    for _ in 0..6 {
        assert_eq!(get(&c, &proxy.url("/")).await.0, 200);
    }
    bs[1].kill();
    let mut seen = Vec::new();
    for i in 0..60 {
        // Alternate GET and POST-with-body: a refused connect sends nothing, so both retry.
        let (status, backend, body) = if i % 2 == 0 {
            get(&c, &proxy.url("/")).await
        } else {
            let req = Request::post(proxy.url("/echo"))
                .body(Full::new(Bytes::from_static(b"payload")))
                .unwrap();
            send(&c, req).await
        };
        assert_eq!(status, 200, "request {i}: {body:?}");
        seen.push(backend);
    }
    assert!(!seen.iter().any(|b| b == "b1"));
    let dead = group
        .stats()
        .into_iter()
        .find(|s| s.addr == bs[1].addr)
        .unwrap();
    assert!(dead.errors_total >= 1);
    // Ejection: the dead backend is not tried for every request.
    assert!(dead.requests_total < 20, "{dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_target_under_concurrent_traffic_costs_no_request() {
    let bs = Arc::new(backends(3).await);
    let group = group_of(&bs.iter().map(|b| (b.addr, Healthy)).collect::<Vec<_>>());
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (c, url, failures, done) = (
            c.clone(),
            proxy.url(if w % 2 == 0 { "/" } else { "/sleep?ms=5" }),
            failures.clone(),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            for _ in 0..80 {
                let (status, _, _) = get(&c, &url).await;
                if status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for _ in 0..200 {
        if done.load(Ordering::SeqCst) >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bs[2].kill();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert_eq!(done.load(Ordering::SeqCst), 320);
}

#[tokio::test]
async fn connection_closed_before_response_retries_get_but_not_post_with_body() {
    let closer = RawBackend::start(Misbehave::Close).await;
    let good = TestBackend::start("good").await;
    let group = group_of(&[(closer.addr, Healthy), (good.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    for _ in 0..6 {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!((status, backend.as_str()), (200, "good"));
    }
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let req = Request::post(proxy.url("/echo"))
            .body(Full::new(Bytes::from_static(b"not idempotent")))
            .unwrap();
        statuses.push(send(&c, req).await.0);
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 502]);
    assert!(closer.connections.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn garbage_response_gives_502_for_that_request_only() {
    let garbage = RawBackend::start(Misbehave::Garbage).await;
    let good = TestBackend::start("good").await;
    let group = group_of(&[(garbage.addr, Healthy), (good.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, backend, body) = get(&c, &proxy.url("/")).await;
        if status == 502 {
            assert!(String::from_utf8_lossy(&body).contains("502"));
        } else {
            assert_eq!(backend, "good");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 200, 502, 502, 502]);
    let bad = group
        .stats()
        .into_iter()
        .find(|s| s.addr == garbage.addr)
        .unwrap();
    assert_eq!(bad.errors_total, 3);
    assert_eq!(bad.in_flight, 0);
}

#[tokio::test]
async fn silent_target_gives_504_after_idle_timeout() {
    let silent = RawBackend::start(Misbehave::Silent).await;
    let group = group_of(&[(silent.addr, Healthy)]);
    let config = ListenerConfig {
        idle_timeout: Duration::from_millis(300),
    };
    let proxy = TestProxy::start(RouteAction::Forward(group.clone()), config).await;
    let c = client();
    // The silent target's 504 comes from the idle timeout (`get` has a 20 s hang guard).
    let (status, _, body) = get(&c, &proxy.url("/")).await;
    assert_eq!(status, 504);
    assert!(String::from_utf8_lossy(&body).contains("504"));
    assert_eq!(group.in_flight(silent.addr), Some(0));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarded_headers_added() {
    let b = TestBackend::start("b0").await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let req = Request::get(proxy.url("/headers"))
        .header("host", "app.example.test")
        .header("connection", "x-secret")
        .header("x-secret", "s")
        .header("keep-alive", "timeout=9")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("upgrade", "websocket")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert!(h.get("keep-alive").is_none());
    assert!(
        h.get("x-hop").is_none(),
        "header named by Connection leaked"
    );
    assert_eq!(h.get("x-end").unwrap(), "1");
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    let lines: Vec<&str> = seen.lines().collect();
    let has = |l: &str| lines.contains(&l);
    assert!(has("host: app.example.test"), "{seen}");
    assert!(has("x-forwarded-for: 203.0.113.7, 127.0.0.1"), "{seen}");
    assert!(has("x-forwarded-proto: http"), "{seen}");
    assert!(
        has(&format!("x-forwarded-port: {}", proxy.addr.port())),
        "{seen}"
    );
    assert!(has("x-end-to-end: kept"), "{seen}");
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te:",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(!seen.contains(gone), "{gone} reached the target: {seen}");
    }
    assert!(!lines.iter().any(|l| l.starts_with("connection: x-secret")));

    // Without an incoming X-Forwarded-For, one is created.
    let (_, _, body) = get(&c, &proxy.url("/headers")).await;
    assert!(String::from_utf8_lossy(&body).contains("x-forwarded-for: 127.0.0.1\n"));
}

#[tokio::test]
async fn multi_megabyte_bodies_stream_both_ways() {
    let b = TestBackend::start("b0").await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post(proxy.url("/echo"))
        .body(Full::new(Bytes::from(payload.clone())))
        .unwrap();
    let (status, _, body) = send(&c, req).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), payload.len());
    assert!(body == payload);

    let n = 5 * 1024 * 1024 + 17;
    let (status, _, body) = get(&c, &proxy.url(&format!("/big?n={n}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), n);
    assert!(body.iter().all(|&x| x == b'x'));
    assert_eq!(group.in_flight(b.addr), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let b = TestBackend::start("b0").await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    // A new client connection per request: reuse must come from the proxy's pool.
    for _ in 0..50 {
        let c = client();
        let (status, _, _) = get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
    }
    eprintln!("upstream connections for 50 requests: {}", b.connections());
    assert_eq!(b.requests(), 50);
    assert!(
        b.connections() <= 3,
        "{} connections for 50 requests",
        b.connections()
    );
}

#[tokio::test]
async fn fixed_response_action_answers_without_targets() {
    let proxy = TestProxy::start(
        RouteAction::FixedResponse {
            status: 403,
            content_type: "text/plain".into(),
            body: "no\n".into(),
        },
        test_config(),
    )
    .await;
    let c = client();
    let (status, _, body) = get(&c, &proxy.url("/anything")).await;
    assert_eq!(status, 403);
    assert_eq!(&body[..], b"no\n");
}

#[tokio::test]
async fn malformed_client_request_gets_400() {
    let b = TestBackend::start("b0").await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let out = raw_exchange(proxy.addr, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
    assert_eq!(b.requests(), 0);
    // The proxy still works afterwards.
    assert_eq!(get(&client(), &proxy.url("/")).await.0, 200);
}

#[tokio::test]
async fn probe_http_reports_status_timeout_and_refusal() {
    let b = TestBackend::start("b0").await;
    let timeout = Duration::from_millis(500);
    assert_eq!(probe_http(b.addr, "/health", timeout).await, Ok(200));
    assert_eq!(
        b.last_user_agent.lock().unwrap().as_deref(),
        Some("ELB-HealthChecker/2.0")
    );
    assert_eq!(
        probe_http(b.addr, "/status?code=503", timeout).await,
        Ok(503)
    );

    let silent = RawBackend::start(Misbehave::Silent).await;
    assert_eq!(
        probe_http(silent.addr, "/", timeout).await,
        Err(ProbeError::Timeout)
    );

    let garbage = RawBackend::start(Misbehave::Garbage).await;
    assert!(matches!(
        probe_http(garbage.addr, "/", timeout).await,
        Err(ProbeError::Malformed(_))
    ));

    let dead = TestBackend::start("dead").await;
    let addr = dead.addr;
    drop(dead);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        probe_http(addr, "/", timeout).await,
        Err(ProbeError::Connect(_))
    ));
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_request() {
    let b = TestBackend::start("b0").await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let slow = {
        let c = c.clone();
        let url = proxy.url("/sleep?ms=500");
        tokio::spawn(async move { get(&c, &url).await })
    };
    for _ in 0..100 {
        if group.in_flight(b.addr) == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.shutdown.send(true).unwrap();
    let (status, backend, _) = slow.await.unwrap();
    assert_eq!((status, backend.as_str()), (200, "b0"));
    let res = tokio::time::timeout(Duration::from_secs(5), proxy.handle)
        .await
        .expect("serve did not return")
        .unwrap();
    assert!(res.is_ok());
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}

#[tokio::test]
async fn pooled_connection_closed_by_target_is_replaced_transparently() {
    // One target only (so no retry elsewhere is possible), closing idle connections after 50 ms.
    let b = TestBackend::start_with_keep_alive("b0", Some(Duration::from_millis(50))).await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    for i in 0..6 {
        let (status, _, _) = if i % 2 == 0 {
            get(&c, &proxy.url("/")).await
        } else {
            let req = Request::post(proxy.url("/echo"))
                .body(Full::new(Bytes::from_static(b"body")))
                .unwrap();
            send(&c, req).await
        };
        assert_eq!(status, 200, "request {i}");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert_eq!(b.requests(), 6);
    assert_eq!(group.stats()[0].errors_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_answered_and_counted() {
    let bs = Arc::new(backends(3).await);
    let group = group_of(&bs.iter().map(|b| (b.addr, Healthy)).collect::<Vec<_>>());
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url) = (c.clone(), proxy.url("/big?n=100000"));
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let (status, _, body) = get(&c, &url).await;
                assert_eq!((status, body.len()), (200, 100000));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = group.stats();
    assert_eq!(stats.iter().map(|s| s.requests_total).sum::<u64>(), 200);
    for _ in 0..100 {
        if group.stats().iter().all(|s| s.in_flight == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(group
        .stats()
        .iter()
        .all(|s| s.in_flight == 0 && s.errors_total == 0));
    let conns: usize = bs.iter().map(|b| b.connections()).sum();
    eprintln!("upstream connections for 200 concurrent requests: {conns}");
    assert!(conns <= 24, "{conns} upstream connections for 200 requests");
}

#[tokio::test]
async fn removed_target_has_its_idle_connections_closed() {
    let bs = backends(2).await;
    let group = group_of(&[(bs[0].addr, Healthy), (bs[1].addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    for _ in 0..4 {
        assert_eq!(get(&c, &proxy.url("/")).await.0, 200);
    }
    assert!(bs[0].open.load(Ordering::SeqCst) >= 1);
    group.update(vec![target(bs[1].addr, Healthy)]);
    for _ in 0..200 {
        if bs[0].open.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(bs[0].open.load(Ordering::SeqCst), 0);
    assert!(bs[1].open.load(Ordering::SeqCst) >= 1);
}
