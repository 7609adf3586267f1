//! HTTP/2 exchanges the client cancels (RST_STREAM, or a closed connection) keep their target
//! connection when the rest of the answer is cheap to read: a client that opens streams and
//! resets them, reconnecting to start afresh each time ("slow rapid reset"), had the proxy open
//! a target connection per request.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::raw_h2::{self, code, kind, setting, Conn};
use common::*;
use flotilla_proxy::RouteState::Healthy;

const SEC: Duration = Duration::from_secs(1);

/// Each request is reset after it reached the target (which answers 30 ms later), on a new
/// client connection each time: the target sees one connection for all of them.
#[tokio::test]
async fn a_slow_rapid_reset_does_not_open_a_target_connection_per_request() {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let rounds = 20;
    for i in 0..rounds {
        let mut c = Conn::open(proxy.addr).await;
        let get = raw_h2::request("GET", "/sleep?ms=30", &[]);
        c.send(&raw_h2::headers(1, &get, true)).await;
        assert!(eventually(5 * SEC, || backend.requests() == i + 1).await);
        c.send(&raw_h2::rst(1, code::CANCEL)).await;
        drop(c);
        // The abandoned answer is read and dropped, and its connection pooled again.
        assert!(
            eventually(5 * SEC, || group.pooled(backend.addr) == Some(1)).await,
            "round {i}: the target connection is not back in the pool"
        );
    }
    assert_eq!(backend.connections(), 1, "target connections opened");
    assert_eq!(group.in_flight(backend.addr), Some(0));
}

/// A stream reset while its answer's body waits for window: the connection is kept when what
/// is left of the answer is small, and closed when it is not (reading it would cost more than
/// a new connection).
#[tokio::test]
async fn a_reset_mid_answer_keeps_the_connection_only_when_little_is_left() {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    for (n, kept) in [(20_000, true), (10_000_000, false)] {
        let mut c = Conn::open_with(proxy.addr, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
        let get = raw_h2::request("GET", &format!("/big?n={n}"), &[]);
        c.send(&raw_h2::headers(1, &get, true)).await;
        c.until(5 * SEC, |f| f.kind == kind::HEADERS && f.stream == 1)
            .await
            .expect("the answer's head");
        c.send(&raw_h2::rst(1, code::CANCEL)).await;
        if kept {
            assert!(eventually(5 * SEC, || group.pooled(backend.addr) == Some(1)).await);
            // The next request goes out on it.
            let mut c = Conn::open(proxy.addr).await;
            c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
                .await;
            let a = c.answer(1).await;
            assert_eq!((a.status, &a.body[..]), (Some(200), &b"b"[..]), "{a:?}");
            assert_eq!(backend.connections(), 1);
        } else {
            // It went out on the kept connection, which is now closed, not pooled.
            let open = backend.open.clone();
            assert!(
                eventually(5 * SEC, || open.load(Ordering::SeqCst) == 0).await,
                "the connection of the large answer is closed"
            );
            assert_eq!(group.pooled(backend.addr), Some(0));
            assert_eq!(backend.connections(), 1);
        }
    }
}
