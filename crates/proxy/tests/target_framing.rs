//! What a target answers is read strictly enough that no answer can be taken for another: a
//! `101` nobody asked for, framing that contradicts itself, a broken chunk. Each becomes a 502
//! (or, once the answer has begun, a closed connection), and the target connection is not
//! used again.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw_h2::{self, Conn};
use common::*;
use flotilla_proxy::RouteState::Healthy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

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
    assert_eq!(target.connections.load(Ordering::SeqCst), 3);
    assert!(eventually(5 * SEC, || target.closed() == 3).await);
}

/// A target's chunk line with a control byte after the size (which the old decoder took for an
/// extension and relayed) in the first bytes of its body: nothing of it has reached the client
/// yet, so the client gets a 502 instead (it had been a closed connection), over either
/// protocol, and the target connection is closed.
#[tokio::test]
async fn a_targets_bad_chunk_before_anything_was_relayed_is_a_502() {
    let (target, proxy) =
        behind(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\x00\r\nabc\r\n0\r\n\r\n")
            .await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = response(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
        assert!(!String::from_utf8_lossy(&body).contains("abc"));
    }
    let mut c = Conn::open(proxy.addr).await;
    c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
        .await;
    let a = c.answer(1).await;
    assert_eq!(a.status, Some(502), "{a:?}");
    assert!(!String::from_utf8_lossy(&a.body).contains("abc"));
    assert!(eventually(5 * SEC, || target.closed() == 3).await);
}

/// A target that sends a good chunk, and a bad one only once the client has the first: the
/// answer has begun, so the client's HTTP/1 connection is closed (no second answer on it) and
/// its HTTP/2 stream reset; nothing after the bad chunk line is relayed.
#[tokio::test]
async fn a_targets_bad_chunk_after_the_answer_began_ends_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let go = Arc::new(Notify::new());
    let closed = Arc::new(AtomicUsize::new(0));
    let (go2, closed2) = (go.clone(), closed.clone());
    let target = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
            stream.write_all(head).await.unwrap();
            go2.notified().await;
            let _ = stream.write_all(b"3\x00\r\nxyz\r\n0\r\n\r\n").await;
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            closed2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let group = group_of(&[(addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;

    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"3\r\nabc\r\n") {
        let n = tokio::time::timeout(5 * SEC, s.read(&mut buf))
            .await
            .expect("the first chunk within 5 s")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    go.notify_one();
    let rest = tokio::time::timeout(5 * SEC, s.read_to_end(&mut got)).await;
    assert!(rest.is_ok(), "the client connection is closed");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("3\r\nabc\r\n"),
        "{text:?}"
    );
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text:?}");

    let mut c = Conn::open(proxy.addr).await;
    c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
        .await;
    let d = c
        .until(5 * SEC, |f| f.kind == raw_h2::kind::DATA)
        .await
        .expect("the first chunk's data");
    assert_eq!(d.payload, b"abc");
    go.notify_one();
    assert_eq!(c.rst(1).await, Some(raw_h2::code::INTERNAL_ERROR));
    assert!(eventually(5 * SEC, || closed.load(Ordering::SeqCst) == 2).await);
    target.abort();
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
    assert_eq!(target.connections.load(Ordering::SeqCst), 3);

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
    assert_eq!(target.connections.load(Ordering::SeqCst), 1);
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
    assert_eq!(target.connections.load(Ordering::SeqCst), 2);
    assert!(eventually(5 * SEC, || target.closed() == 2).await);
}
