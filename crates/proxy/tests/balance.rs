//! Target-choice algorithms through the proxy: least outstanding requests, weighted random,
//! slow start on a manual clock, `AWSALB` stickiness, and draining with keep-alive clients.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_proxy::{Algorithm, Clock, RouteState, TargetGroup, TargetGroupSettings};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use RouteState::*;

async fn backends(n: usize) -> Vec<TestBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(TestBackend::start(&format!("b{i}")).await);
    }
    v
}

fn group_with(
    settings: TargetGroupSettings,
    targets: &[(&TestBackend, RouteState)],
) -> Arc<TargetGroup> {
    let g = TargetGroup::with_settings("test", settings);
    g.update(targets.iter().map(|(b, s)| target(b.addr, *s)).collect());
    g
}

/// Requests served per backend name over `n` sequential GETs.
async fn spread(proxy: &TestProxy, n: usize) -> HashMap<String, usize> {
    let c = client();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        *counts.entry(backend).or_insert(0) += 1;
    }
    counts
}

/// Poll (bounded) until `cond` holds.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn least_outstanding_requests_avoids_the_busy_target_and_rotates_ties() {
    let bs = backends(3).await;
    let settings = TargetGroupSettings {
        algorithm: Algorithm::LeastOutstandingRequests,
        ..TargetGroupSettings::default()
    };
    let group = group_with(
        settings,
        &[(&bs[0], Healthy), (&bs[1], Healthy), (&bs[2], Healthy)],
    );
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let slow = {
        let (c, url) = (c.clone(), proxy.url("/sleep?ms=1500"));
        tokio::spawn(async move { get(&c, &url).await })
    };
    wait_until("the slow request to be in flight", || {
        group.stats().iter().any(|s| s.in_flight == 1)
    })
    .await;
    let busy = group
        .stats()
        .into_iter()
        .find(|s| s.in_flight == 1)
        .unwrap()
        .addr;
    let busy_name = bs.iter().find(|b| b.addr == busy).unwrap().name.clone();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!(status, 200);
        assert_ne!(
            backend, busy_name,
            "the target with a request in flight is avoided"
        );
        seen.push(backend);
    }
    // The two idle targets tie at 0 and take turns.
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    let (status, backend, _) = slow.await.unwrap();
    assert_eq!((status, backend), (200, busy_name));
}

#[tokio::test]
async fn weighted_random_spreads_over_every_target_without_rotation() {
    let bs = backends(3).await;
    let settings = TargetGroupSettings {
        algorithm: Algorithm::WeightedRandom,
        ..TargetGroupSettings::default()
    };
    let group = group_with(
        settings,
        &[(&bs[0], Healthy), (&bs[1], Healthy), (&bs[2], Healthy)],
    );
    let proxy = TestProxy::forward_to(&group).await;
    let counts = spread(&proxy, 600).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    // Expected 200 each; ±70 is over 6 standard deviations (σ ≈ 11.5).
    assert!(
        counts.values().all(|&n| (130..=270).contains(&n)),
        "{counts:?}"
    );
    // Not round robin: an exact 200/200/200 split is vanishingly unlikely.
    assert!(counts.values().any(|&n| n != 200), "{counts:?}");
}

#[tokio::test]
async fn slow_start_ramps_a_newly_healthy_target_linearly() {
    let bs = backends(2).await;
    let (clock, ms) = Clock::manual(1_000);
    let settings = TargetGroupSettings {
        slow_start: Duration::from_secs(100),
        clock,
        ..TargetGroupSettings::default()
    };
    // b0 registered into the empty group: no slow start for it.
    let group = group_with(settings, &[(&bs[0], Healthy), (&bs[1], Initial)]);
    let proxy = TestProxy::forward_to(&group).await;
    assert_eq!(spread(&proxy, 20).await.get("b0"), Some(&20));

    // b1 becomes healthy beside a healthy b0: it enters slow start at ~0 share.
    group.update(vec![
        target(bs[0].addr, Healthy),
        target(bs[1].addr, Healthy),
    ]);
    let start = spread(&proxy, 300).await;
    assert!(start.get("b1").copied().unwrap_or(0) <= 10, "{start:?}");

    // Half way: weight 1/2 against 1, i.e. a third of the requests (expected 100 of 300).
    ms.fetch_add(50_000, Ordering::Relaxed);
    let half = spread(&proxy, 300).await;
    let b1 = half.get("b1").copied().unwrap_or(0);
    assert!((55..=145).contains(&b1), "{half:?}");

    // Done: round robin again, exactly even.
    ms.fetch_add(50_000, Ordering::Relaxed);
    let done = spread(&proxy, 40).await;
    assert_eq!(
        (done.get("b0"), done.get("b1")),
        (Some(&20), Some(&20)),
        "{done:?}"
    );

    // Unhealthy ends slow start; healthy again re-enters it.
    group.update(vec![
        target(bs[0].addr, Healthy),
        target(bs[1].addr, Unhealthy),
    ]);
    group.update(vec![
        target(bs[0].addr, Healthy),
        target(bs[1].addr, Healthy),
    ]);
    let again = spread(&proxy, 300).await;
    assert!(again.get("b1").copied().unwrap_or(0) <= 10, "{again:?}");
}

#[tokio::test]
async fn slow_start_does_not_apply_to_targets_healthy_together_in_an_empty_group() {
    let bs = backends(2).await;
    let (clock, _ms) = Clock::manual(0);
    let settings = TargetGroupSettings {
        slow_start: Duration::from_secs(100),
        clock,
        ..TargetGroupSettings::default()
    };
    let group = group_with(settings, &[(&bs[0], Initial), (&bs[1], Initial)]);
    group.update(vec![
        target(bs[0].addr, Healthy),
        target(bs[1].addr, Healthy),
    ]);
    let proxy = TestProxy::forward_to(&group).await;
    let counts = spread(&proxy, 40).await;
    assert_eq!((counts.get("b0"), counts.get("b1")), (Some(&20), Some(&20)));
}

/// GET with an optional cookie; returns the backend and the `AWSALB` value set, if any.
async fn sticky_get(c: &TestClient, url: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = Request::get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", format!("theme=dark; {cookie}"));
    }
    let resp = c
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let backend = resp.headers()["x-backend"].to_str().unwrap().to_string();
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("AWSALB="));
    if let Some(set) = &set {
        assert!(
            set.contains("; Expires=") && set.contains("; Path=/"),
            "{set}"
        );
    }
    let _ = resp.into_body().collect().await;
    (
        backend,
        set.map(|s| s.split(';').next().unwrap().to_string()),
    )
}

#[tokio::test]
async fn lb_cookie_stickiness_pins_the_client_and_repicks_when_the_target_goes() {
    let bs = backends(3).await;
    let settings = TargetGroupSettings {
        stickiness: Some(Duration::from_secs(3600)),
        ..TargetGroupSettings::default()
    };
    let all = [(&bs[0], Healthy), (&bs[1], Healthy), (&bs[2], Healthy)];
    let group = group_with(settings, &all);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    let url = proxy.url("/");

    let (first, cookie) = sticky_get(&c, &url, None).await;
    let cookie = cookie.expect("AWSALB issued");
    for b in &bs {
        assert!(
            !cookie.contains(&b.addr.port().to_string()),
            "opaque: {cookie}"
        );
    }
    for _ in 0..10 {
        let (backend, again) = sticky_get(&c, &url, Some(&cookie)).await;
        assert_eq!(backend, first);
        assert!(again.is_some(), "re-issued on every response");
    }
    // Without the cookie, round robin goes on as usual.
    let (other, _) = sticky_get(&c, &url, None).await;
    assert_ne!(other, first);
    // A tampered cookie is ignored.
    let tampered = format!("{}0", &cookie[..cookie.len() - 1]);
    let (_, fresh) = sticky_get(&c, &url, Some(&tampered)).await;
    assert!(fresh.is_some());

    // The target drains: the cookie's request goes elsewhere and re-sticks there.
    let pinned = bs.iter().find(|b| b.name == first).unwrap().addr;
    group.update(
        bs.iter()
            .map(|b| target(b.addr, if b.addr == pinned { Draining } else { Healthy }))
            .collect(),
    );
    let (moved, new_cookie) = sticky_get(&c, &url, Some(&cookie)).await;
    assert_ne!(moved, first);
    let new_cookie = new_cookie.unwrap();
    assert_ne!(new_cookie, cookie);
    for _ in 0..5 {
        assert_eq!(sticky_get(&c, &url, Some(&new_cookie)).await.0, moved);
    }
    // Unhealthy (with others healthy) also re-picks.
    let moved_addr = bs.iter().find(|b| b.name == moved).unwrap().addr;
    group.update(
        bs.iter()
            .map(|b| {
                target(
                    b.addr,
                    if b.addr == moved_addr {
                        Unhealthy
                    } else {
                        Healthy
                    },
                )
            })
            .collect(),
    );
    assert_ne!(sticky_get(&c, &url, Some(&new_cookie)).await.0, moved);
}

#[tokio::test]
async fn draining_moves_a_keep_alive_client_connection_to_another_target() {
    let bs = backends(2).await;
    let group = group_of(&[(bs[0].addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    // One client connection, kept alive across every request below.
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut ask = async |path: &str| {
        let req = Request::get(path)
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let backend = resp.headers()["x-backend"].to_str().unwrap().to_string();
        let _ = resp.into_body().collect().await;
        backend
    };
    assert_eq!(ask("/").await, "b0");
    // b0 drains while a second client has a request in flight on it.
    let c = client();
    let slow = {
        let (c, url) = (c.clone(), proxy.url("/sleep?ms=500"));
        tokio::spawn(async move { get(&c, &url).await })
    };
    wait_until("the slow request on b0", || {
        group.in_flight(bs[0].addr) == Some(1)
    })
    .await;
    group.update(vec![
        target(bs[0].addr, Draining),
        target(bs[1].addr, Healthy),
    ]);
    // The same keep-alive client connection simply moves on to b1.
    for _ in 0..3 {
        assert_eq!(ask("/").await, "b1");
    }
    // The in-flight request on the draining target finishes normally.
    let (status, backend, _) = slow.await.unwrap();
    assert_eq!((status, backend.as_str()), (200, "b0"));
    assert!(!conn.is_finished(), "the client connection stayed open");
}

#[tokio::test]
async fn cross_zone_off_splits_by_zone_and_on_splits_by_target() {
    // Zone a has one target, zone b three.
    let bs = backends(4).await;
    let group = TargetGroup::with_settings(
        "test",
        TargetGroupSettings {
            cross_zone: false,
            ..TargetGroupSettings::default()
        },
    );
    group.update(
        bs.iter()
            .enumerate()
            .map(|(i, b)| flotilla_proxy::TargetUpdate {
                zone: Some(if i == 0 { "az-a" } else { "az-b" }.to_string()),
                ..target(b.addr, Healthy)
            })
            .collect(),
    );
    let proxy = TestProxy::forward_to(&group).await;
    let n = 400;
    let off = spread(&proxy, n).await;
    let zone_a = off.get("b0").copied().unwrap_or(0);
    // Each zone gets half (binomial, n = 400: ±4.5 standard deviations).
    assert!((155..=245).contains(&zone_a), "cross-zone off: {off:?}");
    group.set_cross_zone(true);
    let on = spread(&proxy, n).await;
    // Round robin over the four targets: exactly a quarter each.
    for b in ["b0", "b1", "b2", "b3"] {
        assert_eq!(
            on.get(b).copied().unwrap_or(0),
            n / 4,
            "cross-zone on: {on:?}"
        );
    }
}
