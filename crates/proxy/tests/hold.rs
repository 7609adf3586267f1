//! Scale from zero in the data plane: requests to a group with no ready target wait (bounded)
//! instead of getting 503 at once, and go out as soon as a target is healthy.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use flotilla_proxy::{HoldConfig, RouteState, TargetGroup};

fn holding(max_waiting: usize, timeout: Duration) -> (Arc<TargetGroup>, Arc<AtomicUsize>) {
    let group = TargetGroup::new("from-zero");
    let demand = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&demand);
    group.enable_hold(
        HoldConfig {
            max_waiting,
            timeout,
        },
        Arc::new(move || {
            d.fetch_add(1, Ordering::SeqCst);
        }),
    );
    (group, demand)
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn held_request_goes_out_when_a_target_turns_healthy() {
    let backend = TestBackend::start("b1").await;
    let (group, demand) = holding(8, Duration::from_secs(10));
    let proxy = TestProxy::forward_to(&group).await;
    let url = proxy.url("/");
    let request = tokio::spawn(async move { get(&client(), &url).await });

    wait_until("the request to wait", || group.held_requests() == 1).await;
    assert_eq!(
        demand.load(Ordering::SeqCst),
        1,
        "the control plane was told"
    );
    // Registered but still initial: the app may not listen yet, so the request keeps waiting.
    group.update(vec![target(backend.addr, RouteState::Initial)]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(group.held_requests(), 1);
    assert_eq!(backend.requests(), 0);

    group.update(vec![target(backend.addr, RouteState::Healthy)]);
    let (status, served_by, _) = request.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(served_by, "b1");
    assert_eq!(group.held_requests(), 0);
}

#[tokio::test]
async fn a_full_queue_and_a_timeout_answer_503() {
    let (group, _) = holding(1, Duration::from_millis(300));
    let proxy = TestProxy::forward_to(&group).await;
    let url = proxy.url("/");
    let first = tokio::spawn({
        let url = url.clone();
        async move { get(&client(), &url).await }
    });
    wait_until("the first request to wait", || group.held_requests() == 1).await;
    // The queue holds one: the second request is refused at once.
    let (status, _, _) = get(&client(), &url).await;
    assert_eq!(status, 503);
    // The first one times out with 503 too: nothing ever became healthy.
    let (status, _, _) = first.await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(group.held_requests(), 0);
}

#[tokio::test]
async fn without_holding_no_target_is_503_at_once() {
    let group = TargetGroup::new("plain");
    let proxy = TestProxy::forward_to(&group).await;
    let (status, _, _) = get(&client(), &proxy.url("/")).await;
    assert_eq!(status, 503);
    assert_eq!(group.held_requests(), 0);
}
