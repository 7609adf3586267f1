//! An HTTP/2 connection with no stream open holds no buffer (read, write, header block, frame
//! payload): what thousands of idle HTTP/2 clients cost stays what waiting needs.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::ctx::ConnCtx;
use crate::http1::buf::{held, held_once_waiting};
use crate::{RouteAction, Router};

/// Hang guard of every wait below (never reached when the proxy works).
const HANG: Duration = Duration::from_secs(20);

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(payload.len()).unwrap().to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Read frames until one of `stream` ends it (END_STREAM); how many frames were read.
async fn read_answer(rd: &mut (impl AsyncRead + Unpin), stream: u32) -> usize {
    let mut frames = 0;
    loop {
        let mut head = [0u8; 9];
        tokio::time::timeout(HANG, rd.read_exact(&mut head))
            .await
            .expect("the proxy answers")
            .unwrap();
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        rd.read_exact(&mut payload).await.unwrap();
        frames += 1;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        assert!(head[3] != 3 && head[3] != 7, "reset or GOAWAY: {head:?}");
        if id == stream && matches!(head[3], 0 | 1) && head[4] & 1 == 1 {
            return frames;
        }
    }
}

/// A router answering every request itself.
fn fixed() -> Router {
    Router::new(RouteAction::FixedResponse {
        status: 200,
        content_type: "text/plain".into(),
        body: "ok".into(),
    })
}

#[tokio::test]
async fn an_http2_connection_without_open_streams_holds_no_buffer() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = tokio::spawn(super::serve(
        server,
        Vec::new(),
        ConnCtx::for_tests(fixed()),
    ));
    two_streams_then_idle(client, conn).await;
}

/// The same for h2c with prior knowledge on a plain listener, which the HTTP/1 engine hands
/// over: what it read and held for the preface is given back, not kept for the HTTP/2
/// connection's life.
#[tokio::test]
async fn an_h2c_connection_handed_over_by_http1_holds_no_buffer_when_idle() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = tokio::spawn(crate::http1::serve(
        server,
        ConnCtx::for_tests(fixed()),
        true,
    ));
    two_streams_then_idle(client, conn).await;
}

/// Open the connection, make two requests, each time checking that nothing is held once the
/// connection waits; then close it.
async fn two_streams_then_idle(
    mut client: tokio::io::DuplexStream,
    conn: tokio::task::JoinHandle<()>,
) {
    crate::net::pass::spawn_releaser();
    // :method GET, :scheme http, :path /, :authority "idle" (HPACK, static table).
    let block = b"\x82\x86\x84\x01\x04idle";
    let mut opening = super::frame::PREFACE.to_vec();
    opening.extend(frame(4, 0, 0, &[]));
    client.write_all(&opening).await.unwrap();
    for stream in [1u32, 3] {
        client
            .write_all(&frame(1, 0x5, stream, block))
            .await
            .unwrap();
        assert!(read_answer(&mut client, stream).await >= 1);
        assert_eq!(
            held_once_waiting().await,
            0,
            "buffers held by an HTTP/2 connection after stream {stream}"
        );
    }
    drop(client);
    tokio::time::timeout(HANG, conn).await.unwrap().unwrap();
    assert_eq!(held(), 0);
}
