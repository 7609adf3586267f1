//! What a target answers is read strictly enough that no answer can be taken for another: a
//! `101` nobody asked for, framing that contradicts itself, a broken chunk. Each becomes a 502
//! (or, once the answer has begun, a closed connection), and the target connection is not
//! used again.

mod common;

use std::time::Duration;

use common::raw_h2::{self, Conn};
use common::*;
use flotilla_proxy::RouteState::Healthy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEC: Duration = Duration::from_secs(1);

/// One HTTP/1 response read from `s` (a head and its body: none for a 204 or 304, else a
/// `Content-Length` one, or up to the end of the stream without one): the head and the body.
/// Panics after 5 s.
async fn response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end + 4]).into_owned();
                let bodiless = head.starts_with("HTTP/1.1 204") || head.starts_with("HTTP/1.1 304");
                let length = head.lines().find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                });
                let length = if bodiless { Some(0) } else { length };
                if let Some(n) = length {
                    if got.len() >= end + 4 + n {
                        let body = got[end + 4..end + 4 + n].to_vec();
                        got.drain(..end + 4 + n);
                        return (head, body);
                    }
                }
            }
            match s.read(&mut buf).await {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => {
                    let text = String::from_utf8_lossy(&got).into_owned();
                    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
                    return (head.to_string(), body.as_bytes().to_vec());
                }
            }
        }
    };
    tokio::time::timeout(5 * SEC, read)
        .await
        .expect("a response within 5 s")
}

/// A proxy in front of one raw target that answers every request with `reply`.
async fn behind(reply: &'static [u8]) -> (RawBackend, TestProxy) {
    let target = RawBackend::start(Misbehave::Reply(reply)).await;
    let group = group_of(&[(target.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    (target, proxy)
}

/// A target that switches protocols unasked, then writes what looks like an answer.
const UNASKED_101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";

#[tokio::test]
async fn a_101_to_a_request_that_asked_for_no_upgrade_is_a_502() {
    let (target, proxy) = behind(UNASKED_101).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = response(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
        assert!(!String::from_utf8_lossy(&body).contains("smuggled"));
    }
    let mut c = Conn::open(proxy.addr).await;
    c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
        .await;
    let a = c.answer(1).await;
    assert_eq!(a.status, Some(502), "{a:?}");
    assert!(!String::from_utf8_lossy(&a.body).contains("smuggled"));
    // Every connection that switched was dropped, none reused.
    assert_eq!(
        target.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert!(eventually(5 * SEC, || target.closed() == 3).await);
}

/// A target's chunk line with a control byte after the size (which the old decoder took for an
/// extension and relayed): nothing of that answer reaches the client, over either protocol.
#[tokio::test]
async fn a_targets_chunk_line_outside_the_grammar_is_not_relayed() {
    let (target, proxy) =
        behind(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\x00\r\nabc\r\n0\r\n\r\n")
            .await;
    let answer = raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(
        !answer.contains("200 OK") && !answer.contains("abc"),
        "{answer:?}"
    );
    let mut c = Conn::open(proxy.addr).await;
    c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
        .await;
    let a = c.answer(1).await;
    assert!(a.body.is_empty() && !a.ended, "{a:?}");
    assert!(eventually(5 * SEC, || target.closed() == 2).await);
}

/// A `204` that says `Content-Length: 5` and sends five bytes: no body is relayed and no
/// length passed on (a client that believed it would take the next answer's first bytes for
/// this one's body), as nginx does; the connection, whose framing contradicted itself, is not
/// reused. A `304` keeps its `Content-Length` (the length of what it stands for), has no body,
/// and its connection is reused.
#[tokio::test]
async fn a_204_with_a_body_passes_no_length_and_its_connection_is_not_reused() {
    let (target, proxy) =
        behind(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = response(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 204"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
        assert!(body.is_empty(), "{body:?}");
    }
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (status, _, body) = h2_get(stream, &format!("http://{}/", proxy.addr)).await;
    assert_eq!((status, &body[..]), (204, &b""[..]));
    assert_eq!(
        target.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );

    let (target, proxy) =
        behind(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\n").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = response(&mut s).await;
        assert!(
            head.starts_with("HTTP/1.1 304") && body.is_empty(),
            "{head}"
        );
        assert!(head.contains("Content-Length: 5"), "{head}");
    }
    assert_eq!(
        target.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

/// An HTTP/1.0 answer with `Transfer-Encoding: chunked` and `Connection: keep-alive`: RFC 9112
/// §6.1 has its framing treated as faulty and the connection closed after it.
#[tokio::test]
async fn an_http10_chunked_answer_does_not_keep_its_connection() {
    let (target, proxy) = behind(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    let c = client();
    for _ in 0..2 {
        let (status, _, body) = get(&c, &proxy.url("/")).await;
        assert_eq!((status, &body[..]), (200, &b"abc"[..]));
    }
    assert_eq!(
        target.connections.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert!(eventually(5 * SEC, || target.closed() == 2).await);
}
