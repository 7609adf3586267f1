//! An idle keep-alive connection holds no buffer: not the client connection (read buffer,
//! write buffers, the head's field list), not the target connection parked in the pool. What
//! an idle connection costs is what decides how many clients one process can hold
//! (`bench/idle-memory.sh`); this keeps the property from regressing without timing anything.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ctx::ConnCtx;
use crate::http1::buf::{held, held_once_waiting};
use crate::{RouteAction, RouteState, Router, TargetGroup, TargetUpdate};

/// Hang guard of every wait below (never reached when the proxy works).
const HANG: Duration = Duration::from_secs(20);

/// A keep-alive target answering `ok` to every request; also the count of connections it
/// accepted.
async fn target() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                        if sock.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Read from `rd` until what was read ends with `end`.
async fn read_until(rd: &mut (impl AsyncRead + Unpin), end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = tokio::time::timeout(HANG, rd.read(&mut buf))
            .await
            .expect("the proxy answers")
            .unwrap();
        assert!(n > 0, "connection closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test]
async fn an_idle_keep_alive_connection_and_its_pooled_target_connection_hold_no_buffer() {
    let (addr, accepted) = target().await;
    let group = TargetGroup::new("idle");
    group.update(vec![TargetUpdate {
        addr,
        instance_id: None,
        zone: None,
        state: RouteState::Healthy,
    }]);
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let conn = tokio::spawn(super::serve(
        server,
        ConnCtx::for_tests(Router::new(RouteAction::Forward(group))),
        false,
    ));
    for request in 1..=2 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: idle.test\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until(&mut client, b"ok\n").await;
        assert!(
            answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "request {request}"
        );
        assert_eq!(
            held_once_waiting().await,
            0,
            "buffers held by an idle connection after request {request}"
        );
    }
    // The second request took the parked target connection (and a buffer for it again).
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    drop(client);
    tokio::time::timeout(HANG, conn).await.unwrap().unwrap();
    assert_eq!(held(), 0);
}

/// What an idle plain connection's task holds is this future: with tokio's own ~100 bytes and
/// the span, a future up to ~380 bytes keeps the task in a 512-byte cell (tokio rounds tasks up
/// to multiples of 128 bytes). Debug builds make it larger than release builds (344 and 336
/// bytes when written), so the bound holds for both; `cargo test -p flotilla-proxy
/// idle_connection_future -- --nocapture` prints it.
#[test]
fn the_idle_connection_future_stays_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nonblocking(true).unwrap();
        let sock = crate::net::accept::Sock::Raw(Some(mio::net::TcpStream::from_std(stream)));
        let ctx = ConnCtx::for_tests(Router::new(RouteAction::Forward(TargetGroup::new("x"))));
        let fut = super::serve(sock, ctx, true);
        let size = std::mem::size_of_val(&fut);
        println!("idle_future: HTTP/1 connection future {size} bytes");
        assert!(
            size <= 384,
            "an idle HTTP/1 connection's future grew to {size} bytes"
        );
    });
}
