//! Shutdown of an idle HTTP/1 keep-alive connection, in virtual time. The listener's shutdown
//! holds no timer of its own for each connection: the connection moves its one deadline to
//! [`IDLE_GRACE`] from the moment it hears of the shutdown, serves a request that arrives
//! meanwhile (answered with `Connection: close`), and closes when the grace runs out.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ctx::ConnCtx;
use crate::net::drain::{Drain, IDLE_GRACE};
use crate::{RouteAction, Router};

/// Hang guard of every wait below (virtual time; never reached when the proxy works).
const HANG: Duration = Duration::from_secs(30);

/// A keep-alive connection answered by a fixed response, its task, and its listener's drain.
fn connection() -> (DuplexStream, JoinHandle<()>, Arc<Drain>) {
    let router = Router::new(RouteAction::FixedResponse {
        status: 200,
        content_type: "text/plain".into(),
        body: "ok\n".into(),
    });
    let ctx = ConnCtx::for_tests(router);
    let drain = Arc::clone(&ctx.drain);
    let (client, server) = tokio::io::duplex(64 * 1024);
    (
        client,
        tokio::spawn(super::serve(server, ctx, false)),
        drain,
    )
}

/// Send one request and read its whole answer (it ends with the body `ok\n`), lower-cased.
async fn exchange(client: &mut DuplexStream) -> String {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: grace.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok\n") {
        let n = tokio::time::timeout(HANG, client.read(&mut buf))
            .await
            .expect("the proxy answers")
            .unwrap();
        assert!(n > 0, "closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).to_ascii_lowercase()
}

/// Wait until the proxy closes the connection.
async fn closed(client: &mut DuplexStream) {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(HANG, client.read(&mut buf))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    assert_eq!(n, 0, "unexpected bytes: {:?}", &buf[..n]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_closes_one_grace_after_shutdown_begins() {
    let (mut client, conn, drain) = connection();
    let answer = exchange(&mut client).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    let begun = Instant::now();
    let shutdown = tokio::spawn(async move { drain.shutdown().await });
    closed(&mut client).await;
    let waited = Instant::now() - begun;
    assert!(
        waited >= IDLE_GRACE && waited < 2 * IDLE_GRACE,
        "closed {waited:?} after shutdown began"
    );
    tokio::time::timeout(HANG, conn).await.unwrap().unwrap();
    // The listener's shutdown ends once its last connection has.
    tokio::time::timeout(HANG, shutdown).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_within_the_grace_is_served_and_its_answer_closes() {
    let (mut client, conn, drain) = connection();
    exchange(&mut client).await;
    let shutdown = tokio::spawn(async move { drain.shutdown().await });
    tokio::time::sleep(IDLE_GRACE / 2).await;
    let answer = exchange(&mut client).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    closed(&mut client).await;
    tokio::time::timeout(HANG, conn).await.unwrap().unwrap();
    tokio::time::timeout(HANG, shutdown).await.unwrap().unwrap();
}
