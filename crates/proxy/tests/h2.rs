//! The HTTP/2 server against raw frames (RFC 9113): which frames are allowed when, connection
//! and stream errors, request validation (§8.2, §8.3), content-length, trailers, flow control,
//! GOAWAY on shutdown and idle, and what hostile clients can make it hold (§10.5) — floods of
//! resets, CONTINUATION, PING, a client that never reads — plus a bounded fuzz run.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::raw_h2::{self, code, flag, kind, setting, Conn};
use common::*;
use flotilla_proxy::RouteState::Healthy;
use flotilla_proxy::{Limits, ListenerConfig, ListenerOptions, RouteAction, TargetGroup};
use tokio::net::TcpStream;
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);

/// Panics anywhere but in the tests' own code (a connection task that panics dies silently),
/// counted from the first call on.
fn proxy_panics() -> usize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("tests/")) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default_hook(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}

/// A backend, its group, and a proxy in front with these timeouts and limits.
struct Setup {
    backend: TestBackend,
    group: Arc<TargetGroup>,
    proxy: TestProxy,
}

async fn setup_with(config: ListenerConfig, limits: Limits) -> Setup {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let options = ListenerOptions {
        limits,
        ..ListenerOptions::default()
    };
    let proxy = TestProxy::start_with(RouteAction::Forward(group.clone()), config, options).await;
    Setup {
        backend,
        group,
        proxy,
    }
}

async fn setup() -> Setup {
    setup_with(test_config(), Limits::default()).await
}

impl Setup {
    async fn conn(&self) -> Conn {
        Conn::open(self.proxy.addr).await
    }

    /// A well-formed GET on a new connection (hyper's client) still gets its answer.
    async fn still_serves(&self) {
        let stream = TcpStream::connect(self.proxy.addr).await.unwrap();
        let (status, _, body) = tokio::time::timeout(
            5 * SEC,
            h2_get(stream, &format!("http://{}/", self.proxy.addr)),
        )
        .await
        .expect("a well-formed request is answered");
        assert_eq!((status, &body[..]), (200, &b"b1"[..]));
    }

    /// Wait until the target has `n` requests in flight.
    async fn in_flight_becomes(&self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.group.in_flight(self.backend.addr) == Some(n) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

/// A well-formed GET on `stream` of `c` is answered 200 "b1".
async fn get_ok(c: &mut Conn, stream: u32) {
    c.send(&raw_h2::headers(
        stream,
        &raw_h2::request("GET", "/", &[]),
        true,
    ))
    .await;
    let a = c.answer(stream).await;
    assert_eq!(
        (a.status, &a.body[..], a.ended),
        (Some(200), &b"b1"[..], true),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_raw_request_is_answered() {
    let s = setup().await;
    let mut c = s.conn().await;
    // The server's SETTINGS come first.
    let first = c.next(5 * SEC).await.unwrap();
    assert_eq!((first.kind, first.flags), (kind::SETTINGS, 0));
    get_ok(&mut c, 1).await;
    get_ok(&mut c, 3).await;
    assert_eq!(s.backend.requests(), 2);
}

#[tokio::test]
async fn malformed_requests_reset_only_their_stream_and_never_reach_the_target() {
    let s = setup().await;
    let mut c = s.conn().await;
    fn base(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut f = vec![(":method", "GET"), (":scheme", "http"), (":path", "/")];
        f.extend_from_slice(extra);
        f
    }
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![(":method", "GET"), (":scheme", "http")],
        vec![(":method", "GET"), (":path", "/")],
        vec![(":scheme", "http"), (":path", "/")],
        vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
        vec![
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a"),
            (":path", "@evil.test/"),
        ],
        base(&[(":authority", "user@evil.test")]),
        base(&[(":method", "POST")]),
        base(&[(":status", "200")]),
        base(&[(":foo", "x")]),
        base(&[("x-a", "1"), (":authority", "late")]),
        base(&[("X-Upper", "1")]),
        base(&[("connection", "close")]),
        base(&[("keep-alive", "timeout=5")]),
        base(&[("proxy-connection", "keep-alive")]),
        base(&[("transfer-encoding", "chunked")]),
        base(&[("upgrade", "websocket")]),
        base(&[("te", "gzip")]),
        base(&[("host", "a"), ("host", "b")]),
        base(&[("x-a", " leading")]),
        base(&[("x-a", "a\rb")]),
        base(&[("content-length", "1"), ("content-length", "2")]),
        // END_STREAM on HEADERS: no DATA can match a length above zero.
        base(&[("content-length", "4")]),
        vec![(":method", "CONNECT"), (":authority", "a:443")],
    ];
    let mut id = 1;
    for fields in &cases {
        c.send(&raw_h2::headers(id, &raw_h2::block(fields), true))
            .await;
        assert_eq!(
            c.rst(id).await,
            Some(code::PROTOCOL_ERROR),
            "{fields:?} resets its stream"
        );
        id += 2;
    }
    get_ok(&mut c, id).await;
    assert_eq!(s.backend.requests(), 1, "only the well-formed request");
}

#[tokio::test]
async fn cookies_are_joined_and_the_authority_is_the_targets_host() {
    let s = setup().await;
    let mut c = s.conn().await;
    let b = raw_h2::block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "x.test:8080"),
        (":path", "/headers"),
        ("cookie", "a=1"),
        ("te", "trailers"),
        ("cookie", "b=2"),
        ("host", "ignored.test"),
    ]);
    c.send(&raw_h2::headers(1, &b, true)).await;
    let a = c.answer(1).await;
    assert_eq!(a.status, Some(200));
    let body = String::from_utf8_lossy(&a.body);
    assert!(body.contains("cookie: a=1; b=2\n"), "{body}");
    assert!(body.contains("host: x.test:8080\n"), "{body}");
    assert!(!body.contains("ignored.test"), "{body}");
}

#[tokio::test]
async fn content_length_is_held_to_the_data() {
    let s = setup().await;
    let mut c = s.conn().await;
    let post = |len: &str| raw_h2::request("POST", "/echo", &[("content-length", len)]);
    // Exactly as declared, in two frames.
    c.send(&raw_h2::headers(1, &post("6"), false)).await;
    c.send(&raw_h2::data(1, b"abc", false)).await;
    c.send(&raw_h2::data(1, b"def", true)).await;
    let a = c.answer(1).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"abcdef"[..]));
    // Shorter than declared.
    c.send(&raw_h2::headers(3, &post("6"), false)).await;
    c.send(&raw_h2::data(3, b"abc", true)).await;
    assert_eq!(c.rst(3).await, Some(code::PROTOCOL_ERROR));
    // Longer, across frames: nothing of the second frame is forwarded.
    c.send(&raw_h2::headers(5, &post("3"), false)).await;
    c.send(&raw_h2::data(5, b"ab", false)).await;
    c.send(&raw_h2::data(5, b"cGET / HTTP/1.1\r\n\r\n", false))
        .await;
    assert_eq!(c.rst(5).await, Some(code::PROTOCOL_ERROR));
    // What the client sent before it saw the reset is ignored: no error, no second reset.
    c.send(&raw_h2::data(5, b"more", false)).await;
    c.send(&raw_h2::headers(5, &raw_h2::block(&[("x-t", "1")]), true))
        .await;
    // Trailers before the declared length was reached.
    c.send(&raw_h2::headers(7, &post("6"), false)).await;
    c.send(&raw_h2::data(7, b"abc", false)).await;
    c.send(&raw_h2::headers(7, &raw_h2::block(&[("x-t", "1")]), true))
        .await;
    assert_eq!(c.rst(7).await, Some(code::PROTOCOL_ERROR));
    // The connection is fine, and frames the client sent on streams we reset are ignored.
    get_ok(&mut c, 9).await;
}

#[tokio::test]
async fn request_trailers_are_forwarded_and_bad_ones_reset_the_stream() {
    let s = setup().await;
    let mut c = s.conn().await;
    c.send(&raw_h2::headers(
        1,
        &raw_h2::request("POST", "/echo", &[]),
        false,
    ))
    .await;
    c.send(&raw_h2::data(1, b"abc", false)).await;
    c.send(&raw_h2::headers(1, &raw_h2::block(&[("x-t", "1")]), true))
        .await;
    let a = c.answer(1).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"abc"[..]));
    for (i, (trailer, end)) in [
        ((":path", "/"), true),
        (("content-length", "3"), true),
        (("transfer-encoding", "chunked"), true),
        (("x-t", "1"), false),
    ]
    .into_iter()
    .enumerate()
    {
        let id = 3 + 2 * i as u32;
        c.send(&raw_h2::headers(
            id,
            &raw_h2::request("POST", "/echo", &[]),
            false,
        ))
        .await;
        c.send(&raw_h2::data(id, b"abc", false)).await;
        c.send(&raw_h2::headers(id, &raw_h2::block(&[trailer]), end))
            .await;
        assert_eq!(
            c.rst(id).await,
            Some(code::PROTOCOL_ERROR),
            "{trailer:?} end={end}"
        );
    }
    get_ok(&mut c, 11).await;
}

#[tokio::test]
async fn trailers_are_held_to_the_header_limit() {
    use raw_h2::{frame, headers, request};
    assert_eq!(proxy_panics(), 0);
    let s = setup().await;
    let mut c = s.conn().await;
    c.send(&headers(1, &request("POST", "/echo", &[]), false))
        .await;
    c.send(&raw_h2::data(1, b"abc", false)).await;
    // A 4000-byte field entered into the dynamic table, then referenced 60 000 times: 64 KiB
    // of block that decodes to 240 MB (and beyond what a HeaderMap can hold).
    let mut b = Vec::new();
    raw_h2::field_indexed(&mut b, "x-a", &"v".repeat(4000));
    b.extend(std::iter::repeat_n(0xbe, 60_000));
    let chunks: Vec<&[u8]> = b.chunks(16_000).collect();
    let mut out = frame(kind::HEADERS, flag::END_STREAM, 1, chunks[0]);
    for (i, chunk) in chunks[1..].iter().enumerate() {
        let last = i + 2 == chunks.len();
        out.extend(frame(
            kind::CONTINUATION,
            if last { flag::END_HEADERS } else { 0 },
            1,
            chunk,
        ));
    }
    c.send(&out).await;
    assert_eq!(c.rst(1).await, Some(code::PROTOCOL_ERROR));
    get_ok(&mut c, 3).await;
    assert_eq!(proxy_panics(), 0, "the proxy panicked");
}

/// Each of these byte sequences, sent after the preface, is a connection error with this code.
#[tokio::test]
async fn protocol_violations_are_connection_errors_with_the_right_code() {
    use raw_h2::{frame, headers, request, settings};
    let s = setup().await;
    let get = |id: u32| headers(id, &request("GET", "/", &[]), true);
    let open = |id: u32| headers(id, &request("POST", "/echo", &[]), false);
    let cat = |parts: Vec<Vec<u8>>| parts.concat();
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "first frame not SETTINGS",
            raw_h2::ping([0; 8]),
            code::PROTOCOL_ERROR,
        ),
        (
            "PING of 7 bytes",
            cat(vec![settings(&[]), frame(kind::PING, 0, 0, &[0; 7])]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "PING on a stream",
            cat(vec![settings(&[]), frame(kind::PING, 0, 1, &[0; 8])]),
            code::PROTOCOL_ERROR,
        ),
        (
            "SETTINGS of 5 bytes",
            cat(vec![settings(&[]), frame(kind::SETTINGS, 0, 0, &[0; 5])]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "SETTINGS ACK with a payload",
            cat(vec![
                settings(&[]),
                frame(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
            ]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "SETTINGS on a stream",
            frame(kind::SETTINGS, 0, 1, &[]),
            code::PROTOCOL_ERROR,
        ),
        (
            "ENABLE_PUSH 2",
            settings(&[(setting::ENABLE_PUSH, 2)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "INITIAL_WINDOW_SIZE above 2^31-1",
            settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]),
            code::FLOW_CONTROL_ERROR,
        ),
        (
            "MAX_FRAME_SIZE below 16384",
            settings(&[(setting::MAX_FRAME_SIZE, 100)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "WINDOW_UPDATE of 0 on the connection",
            cat(vec![settings(&[]), raw_h2::window_update(0, 0)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "connection window above 2^31-1",
            cat(vec![settings(&[]), raw_h2::window_update(0, 0x7fff_ffff)]),
            code::FLOW_CONTROL_ERROR,
        ),
        (
            "WINDOW_UPDATE of 3 bytes",
            cat(vec![
                settings(&[]),
                frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
            ]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "WINDOW_UPDATE on an idle stream",
            cat(vec![settings(&[]), raw_h2::window_update(9, 1)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "RST_STREAM on stream 0",
            cat(vec![settings(&[]), raw_h2::rst(0, 0)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "RST_STREAM of 3 bytes",
            cat(vec![
                settings(&[]),
                get(1),
                frame(kind::RST_STREAM, 0, 1, &[0; 3]),
            ]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "RST_STREAM on an idle stream",
            cat(vec![settings(&[]), raw_h2::rst(5, 0)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "DATA on stream 0",
            cat(vec![settings(&[]), raw_h2::data(0, b"x", true)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "DATA on an idle stream",
            cat(vec![settings(&[]), raw_h2::data(3, b"x", true)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "HEADERS on stream 0",
            cat(vec![settings(&[]), get(0)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "HEADERS on an even stream",
            cat(vec![settings(&[]), get(2)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "stream ids going down",
            cat(vec![settings(&[]), get(5), get(3)]),
            code::PROTOCOL_ERROR,
        ),
        (
            "CONTINUATION without HEADERS",
            cat(vec![
                settings(&[]),
                frame(kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
            ]),
            code::PROTOCOL_ERROR,
        ),
        (
            "another frame inside a header block",
            cat(vec![
                settings(&[]),
                frame(
                    kind::HEADERS,
                    flag::END_STREAM,
                    1,
                    &request("GET", "/", &[]),
                ),
                raw_h2::ping([0; 8]),
            ]),
            code::PROTOCOL_ERROR,
        ),
        (
            "CONTINUATION of another stream",
            cat(vec![
                settings(&[]),
                frame(
                    kind::HEADERS,
                    flag::END_STREAM,
                    1,
                    &request("GET", "/", &[]),
                ),
                frame(kind::CONTINUATION, flag::END_HEADERS, 3, &[]),
            ]),
            code::PROTOCOL_ERROR,
        ),
        (
            "PUSH_PROMISE from a client",
            cat(vec![
                settings(&[]),
                frame(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0, 0, 0, 2]),
            ]),
            code::PROTOCOL_ERROR,
        ),
        (
            "GOAWAY on a stream",
            cat(vec![settings(&[]), frame(kind::GOAWAY, 0, 1, &[0; 8])]),
            code::PROTOCOL_ERROR,
        ),
        (
            "GOAWAY of 4 bytes",
            cat(vec![settings(&[]), frame(kind::GOAWAY, 0, 0, &[0; 4])]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "a frame above our MAX_FRAME_SIZE",
            cat(vec![settings(&[]), frame(0x21, 0, 0, &[0; 16_385])]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "DATA padding longer than the frame",
            cat(vec![
                settings(&[]),
                open(1),
                frame(kind::DATA, flag::PADDED, 1, &[9, b'a']),
            ]),
            code::PROTOCOL_ERROR,
        ),
        (
            "HEADERS padding longer than the frame",
            cat(vec![
                settings(&[]),
                frame(
                    kind::HEADERS,
                    flag::PADDED | flag::END_HEADERS,
                    1,
                    &[200, 0x82],
                ),
            ]),
            code::PROTOCOL_ERROR,
        ),
        (
            "HEADERS with PRIORITY too short",
            cat(vec![
                settings(&[]),
                frame(
                    kind::HEADERS,
                    flag::PRIORITY | flag::END_HEADERS,
                    1,
                    &[0; 3],
                ),
            ]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "an undecodable header block",
            cat(vec![settings(&[]), headers(1, &[0xff, 0xff, 0xff], true)]),
            code::COMPRESSION_ERROR,
        ),
    ];
    for (what, bytes, want) in cases {
        let mut c = Conn::connect(s.proxy.addr).await;
        let mut out = raw_h2::PREFACE.to_vec();
        out.extend(bytes);
        c.send(&out).await;
        assert_eq!(c.goaway().await, Some(want), "{what}");
        assert!(
            c.closes_within(5 * SEC).await,
            "{what}: closed after GOAWAY"
        );
    }
    // A bad preface gets no HTTP/2 at all.
    let mut c = Conn::connect(s.proxy.addr).await;
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await;
    assert!(c.closes_within(5 * SEC).await);
    s.still_serves().await;
}

#[tokio::test]
async fn stream_errors_reset_only_their_stream() {
    use raw_h2::{frame, headers, request};
    let s = setup().await;
    let mut c = s.conn().await;
    let open = |id: u32| headers(id, &request("POST", "/echo", &[]), false);
    let priority = |id: u32, on: u32| {
        let mut p = on.to_be_bytes().to_vec();
        p.push(16);
        frame(kind::PRIORITY, 0, id, &p)
    };
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "WINDOW_UPDATE of 0 on a stream",
            [open(1), raw_h2::window_update(1, 0)].concat(),
            code::PROTOCOL_ERROR,
        ),
        (
            "a stream window above 2^31-1",
            [open(3), raw_h2::window_update(3, 0x7fff_ffff)].concat(),
            code::FLOW_CONTROL_ERROR,
        ),
        (
            "PRIORITY of 4 bytes",
            frame(kind::PRIORITY, 0, 5, &[0; 4]),
            code::FRAME_SIZE_ERROR,
        ),
        (
            "a stream depending on itself (PRIORITY)",
            priority(7, 7),
            code::PROTOCOL_ERROR,
        ),
        (
            "a stream depending on itself (HEADERS)",
            frame(
                kind::HEADERS,
                flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM,
                9,
                &[[0, 0, 0, 9, 16].to_vec(), request("GET", "/", &[])].concat(),
            ),
            code::PROTOCOL_ERROR,
        ),
        (
            "DATA after END_STREAM",
            [
                headers(11, &request("GET", "/sleep?ms=300", &[]), true),
                raw_h2::data(11, b"x", false),
            ]
            .concat(),
            code::STREAM_CLOSED,
        ),
        (
            "trailers after END_STREAM",
            [
                headers(13, &request("GET", "/sleep?ms=300", &[]), true),
                headers(13, &raw_h2::block(&[("x", "1")]), true),
            ]
            .concat(),
            code::STREAM_CLOSED,
        ),
    ];
    let mut last = 0;
    for (what, bytes, want) in cases {
        c.send(&bytes).await;
        let id = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        assert_eq!(c.rst(id).await, Some(want), "{what}");
        last = id;
    }
    get_ok(&mut c, last + 2).await;
}

#[tokio::test]
async fn unknown_frames_priority_and_padding_are_accepted() {
    use raw_h2::{frame, request};
    let s = setup().await;
    let mut c = s.conn().await;
    // An extension frame, PRIORITY on an idle stream, an empty DATA frame.
    c.send(&frame(0x42, 0xff, 0, b"whatever")).await;
    c.send(&frame(kind::PRIORITY, 0, 11, &[0, 0, 0, 0, 16]))
        .await;
    // Padded HEADERS with priority, padded DATA: the target gets the payload only.
    let mut p = vec![3];
    p.extend_from_slice(&[0, 0, 0, 0, 16]);
    p.extend(request("POST", "/echo", &[("content-length", "5")]));
    p.extend_from_slice(&[0; 3]);
    c.send(&frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
        1,
        &p,
    ))
    .await;
    c.send(&raw_h2::data(1, b"", false)).await;
    c.send(&frame(kind::DATA, flag::PADDED, 1, b"\x02ab\0\0"))
        .await;
    c.send(&frame(
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
        b"\x00cde",
    ))
    .await;
    let a = c.answer(1).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"abcde"[..]));
    get_ok(&mut c, 3).await;
}

#[tokio::test]
async fn a_header_block_split_over_continuation_frames_is_one_request() {
    use raw_h2::{frame, request};
    let s = setup().await;
    let mut c = s.conn().await;
    let long = "v".repeat(20_000);
    let b = request("GET", "/headers", &[("x-long", &long)]);
    let (a, rest) = b.split_at(16_000);
    let (b1, b2) = rest.split_at(1000);
    c.send(&frame(kind::HEADERS, flag::END_STREAM, 1, a)).await;
    c.send(&frame(kind::CONTINUATION, 0, 1, b1)).await;
    c.send(&frame(kind::CONTINUATION, flag::END_HEADERS, 1, b2))
        .await;
    let a = c.answer(1).await;
    assert_eq!(a.status, Some(200));
    assert!(String::from_utf8_lossy(&a.body).contains(&long));
}

#[tokio::test]
async fn continuation_floods_end_the_connection() {
    use raw_h2::{frame, request};
    // Empty CONTINUATION frames cost nothing to send but never end the block.
    let s = setup().await;
    let mut c = s.conn().await;
    c.send(&frame(kind::HEADERS, 0, 1, &request("GET", "/", &[])))
        .await;
    let empties: Vec<u8> = (0..1000)
        .flat_map(|_| frame(kind::CONTINUATION, 0, 1, &[]))
        .collect();
    c.send(&empties).await;
    assert_eq!(c.goaway().await, Some(code::ENHANCE_YOUR_CALM));
    // A block far beyond the header limit is not buffered.
    let limits = Limits {
        max_header_bytes: 4096,
        ..Limits::default()
    };
    let s = setup_with(test_config(), limits).await;
    let mut c = s.conn().await;
    c.send(&frame(kind::HEADERS, 0, 1, &request("GET", "/", &[])))
        .await;
    for _ in 0..2 {
        c.send(&frame(kind::CONTINUATION, 0, 1, &[0x82; 16_000]))
            .await;
    }
    assert_eq!(c.goaway().await, Some(code::ENHANCE_YOUR_CALM));
    s.still_serves().await;
}

#[tokio::test]
async fn oversized_headers_get_431_and_the_connection_goes_on() {
    let limits = Limits {
        max_header_bytes: 1024,
        ..Limits::default()
    };
    let s = setup_with(test_config(), limits).await;
    let mut c = s.conn().await;
    let big = "v".repeat(2000);
    c.send(&raw_h2::headers(
        1,
        &raw_h2::request("GET", "/", &[("x-big", &big)]),
        true,
    ))
    .await;
    let a = c.answer(1).await;
    assert_eq!((a.status, a.ended), (Some(431), true));
    get_ok(&mut c, 3).await;
    assert_eq!(s.backend.requests(), 1);
}

#[tokio::test]
async fn an_unfinished_header_block_times_out_however_it_dribbles() {
    let config = ListenerConfig {
        idle_timeout: 30 * SEC,
    };
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = setup_with(config, limits).await;
    let mut c = s.conn().await;
    c.send(&raw_h2::frame(
        kind::HEADERS,
        flag::END_STREAM,
        1,
        &raw_h2::request("GET", "/", &[]),
    ))
    .await;
    // CONTINUATION frames that never end the block.
    let mut closed = false;
    for _ in 0..30 {
        if !c.send(&raw_h2::frame(kind::CONTINUATION, 0, 1, &[])).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if c.closes_within(Duration::from_millis(1)).await {
            closed = true;
            break;
        }
    }
    // Closed by the header read timeout (300 ms) while the client kept dribbling, or soon
    // after; the idle timeout (30 s) is far beyond the hang guard.
    assert!(closed || c.closes_within(2 * SEC).await);
}

#[tokio::test]
async fn idle_connections_get_goaway_and_pings_do_not_keep_them_open() {
    let config = ListenerConfig {
        idle_timeout: Duration::from_millis(500),
    };
    let s = setup_with(config, Limits::default()).await;
    let mut c = s.conn().await;
    get_ok(&mut c, 1).await;
    let started = Instant::now();
    let mut goaway = None;
    while goaway.is_none() && started.elapsed() < 5 * SEC {
        c.send(&raw_h2::ping(*b"stayhere")).await;
        if let Some(f) = c
            .until(Duration::from_millis(100), |f| f.kind == kind::GOAWAY)
            .await
        {
            goaway = Some(f);
        }
    }
    // PINGs went on every 100 ms the whole time (until the hang guard): they did not keep
    // the connection open.
    let goaway = goaway.expect("GOAWAY after the idle timeout");
    assert_eq!((goaway.code(), goaway.last_stream()), (code::NO_ERROR, 1));
    assert!(c.closes_within(2 * SEC).await);
}

#[tokio::test]
async fn shutdown_sends_goaway_finishes_in_flight_streams_and_refuses_new_ones() {
    let s = setup().await;
    let mut c = s.conn().await;
    c.send(&raw_h2::headers(
        1,
        &raw_h2::request("GET", "/sleep?ms=500", &[]),
        true,
    ))
    .await;
    assert!(s.in_flight_becomes(1, 5 * SEC).await);
    s.proxy.shutdown.send(true).unwrap();
    let g = c
        .until(5 * SEC, |f| f.kind == kind::GOAWAY)
        .await
        .expect("GOAWAY");
    assert_eq!((g.code(), g.last_stream()), (code::NO_ERROR, 1));
    // A stream opened after the GOAWAY is refused (safe to retry elsewhere).
    c.send(&raw_h2::headers(3, &raw_h2::request("GET", "/", &[]), true))
        .await;
    assert_eq!(c.rst(3).await, Some(code::REFUSED_STREAM));
    let a = c.answer(1).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"b1"[..]));
    assert!(c.closes_within(5 * SEC).await);
}

#[tokio::test]
async fn a_reset_stream_has_its_exchange_dropped_at_once() {
    let s = setup().await;
    let mut c = s.conn().await;
    c.send(&raw_h2::headers(
        1,
        &raw_h2::request("GET", "/sleep?ms=10000", &[]),
        true,
    ))
    .await;
    assert!(s.in_flight_becomes(1, 5 * SEC).await);
    c.send(&raw_h2::rst(1, code::CANCEL)).await;
    assert!(
        s.in_flight_becomes(0, 2 * SEC).await,
        "the target request is given up, not waited for"
    );
    get_ok(&mut c, 3).await;
}

#[tokio::test]
async fn rapid_reset_gets_enhance_your_calm_and_targets_stay_bounded() {
    let s = setup().await;
    let mut c = s.conn().await;
    let mut id = 1;
    let mut goaway = None;
    let started = Instant::now();
    // Open and reset streams in a loop, giving each exchange time to start.
    while goaway.is_none() && id < 20_000 && started.elapsed() < 10 * SEC {
        let mut hs = Vec::new();
        let mut rs = Vec::new();
        for _ in 0..16 {
            hs.extend(raw_h2::headers(
                id,
                &raw_h2::request("GET", "/sleep?ms=3000", &[]),
                true,
            ));
            rs.extend(raw_h2::rst(id, code::CANCEL));
            id += 2;
        }
        if !c.send(&hs).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if !c.send(&rs).await {
            break;
        }
        if let Some(f) = c
            .until(Duration::from_millis(1), |f| f.kind == kind::GOAWAY)
            .await
        {
            goaway = Some(f.code());
        }
    }
    let goaway = match goaway {
        Some(g) => Some(g),
        None => c.goaway().await,
    };
    assert_eq!(goaway, Some(code::ENHANCE_YOUR_CALM), "after {id} streams");
    assert!(
        s.backend.requests() < 1000,
        "{} target requests",
        s.backend.requests()
    );
    // None of the reset exchanges runs on (each would take 3 s).
    assert!(s.in_flight_becomes(0, 2 * SEC).await);
    s.still_serves().await;
}

#[tokio::test]
async fn streams_beyond_the_concurrency_limit_are_refused() {
    let s = setup().await;
    let mut c = s.conn().await;
    let mut out = Vec::new();
    for i in 0..129u32 {
        out.extend(raw_h2::headers(
            1 + 2 * i,
            &raw_h2::request("POST", "/echo", &[]),
            false,
        ));
    }
    c.send(&out).await;
    assert_eq!(c.rst(257).await, Some(code::REFUSED_STREAM));
    // Once one finishes, a new one is taken.
    c.send(&raw_h2::data(1, b"x", true)).await;
    let a = c.answer(1).await;
    assert_eq!((a.status, &a.body[..]), (Some(200), &b"x"[..]));
    get_ok(&mut c, 259).await;
}

#[tokio::test]
async fn initial_window_changes_apply_to_open_streams() {
    let s = setup().await;
    // No window at first: the answer's head comes, its body waits.
    let mut c = Conn::open_with(s.proxy.addr, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
    c.send(&raw_h2::headers(1, &raw_h2::request("GET", "/", &[]), true))
        .await;
    let h = c
        .until(5 * SEC, |f| f.kind == kind::HEADERS && f.stream == 1)
        .await
        .unwrap();
    assert!(!h.has(flag::END_STREAM));
    assert!(c
        .until(Duration::from_millis(300), |f| f.kind == kind::DATA)
        .await
        .is_none());
    c.send(&raw_h2::settings(&[(setting::INITIAL_WINDOW_SIZE, 1)]))
        .await;
    let d = c.until(5 * SEC, |f| f.kind == kind::DATA).await.unwrap();
    assert_eq!(
        (&d.payload[..], d.has(flag::END_STREAM)),
        (&b"b"[..], false)
    );
    c.send(&raw_h2::window_update(1, 1)).await;
    let d = c.until(5 * SEC, |f| f.kind == kind::DATA).await.unwrap();
    assert_eq!(&d.payload[..], b"1");
    // A change that takes an open stream's window past 2^31-1.
    let mut c = Conn::open_with(s.proxy.addr, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
    c.send(&raw_h2::headers(
        1,
        &raw_h2::request("GET", "/big?n=1000000", &[]),
        true,
    ))
    .await;
    c.until(5 * SEC, |f| f.kind == kind::HEADERS).await.unwrap();
    // The stream's window goes to 2^31-2; the connection's 65 535 are used at once, so
    // the stream stays open with 2^31-2-65 535 left.
    c.send(&raw_h2::window_update(1, 0x7fff_fffe)).await;
    c.until(5 * SEC, |f| f.kind == kind::DATA).await.unwrap();
    c.send(&raw_h2::settings(&[(setting::INITIAL_WINDOW_SIZE, 70_000)]))
        .await;
    assert_eq!(c.goaway().await, Some(code::FLOW_CONTROL_ERROR));
}

#[tokio::test]
async fn data_frames_respect_the_clients_max_frame_size() {
    let s = setup().await;
    for max in [16_384u32, 100_000] {
        let mut c = Conn::open_with(
            s.proxy.addr,
            &[
                (setting::INITIAL_WINDOW_SIZE, 1 << 24),
                (setting::MAX_FRAME_SIZE, max),
            ],
        )
        .await;
        c.send(&raw_h2::window_update(0, 1 << 24)).await;
        let n = 1_000_000;
        c.send(&raw_h2::headers(
            1,
            &raw_h2::request("GET", &format!("/big?n={n}"), &[]),
            true,
        ))
        .await;
        let (mut total, mut largest) = (0, 0);
        while let Some(f) = c.next(5 * SEC).await {
            if f.kind == kind::DATA && f.stream == 1 {
                total += f.payload.len();
                largest = largest.max(f.payload.len());
                if f.has(flag::END_STREAM) {
                    break;
                }
            }
        }
        assert_eq!(total, n);
        assert!(largest <= max as usize, "{largest} > {max}");
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
    let config = ListenerConfig { idle_timeout: SEC };
    let s = setup_with(config, Limits::default()).await;
    let mut c = Conn::open_with(s.proxy.addr, &[(setting::INITIAL_WINDOW_SIZE, 0x7fff_ffff)]).await;
    c.send(&raw_h2::window_update(0, 0x7fff_0000)).await;
    c.send(&raw_h2::headers(
        1,
        &raw_h2::request("GET", "/big?n=1000000000", &[]),
        true,
    ))
    .await;
    assert!(s.in_flight_becomes(1, 5 * SEC).await);
    // Not reading: once the socket buffers are full the proxy's writes make no progress.
    assert!(
        s.in_flight_becomes(0, 10 * SEC).await,
        "the connection and its exchange are given up"
    );
    assert_eq!(s.proxy.stats.active_connections(), 0);
}

#[tokio::test]
async fn ping_and_settings_floods_are_pushed_back_not_queued() {
    let config = ListenerConfig { idle_timeout: SEC };
    let s = setup_with(config, Limits::default()).await;
    let mut c = s.conn().await;
    let chunk: Vec<u8> = (0..1000)
        .flat_map(|i| {
            if i % 2 == 0 {
                raw_h2::ping(*b"flooding")
            } else {
                raw_h2::settings(&[])
            }
        })
        .collect();
    // Without reading the ACKs: the proxy must stop reading rather than buffer them.
    let mut sent = 0usize;
    let mut stalled = false;
    let started = Instant::now();
    while sent < 512 << 20 && started.elapsed() < 20 * SEC {
        match tokio::time::timeout(
            Duration::from_millis(500),
            tokio::io::AsyncWriteExt::write_all(&mut c.s, &chunk),
        )
        .await
        {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) | Err(_) => {
                stalled = true;
                break;
            }
        }
    }
    assert!(
        stalled,
        "{sent} bytes of PING/SETTINGS taken without reading"
    );
    // And the connection does not wait on this client forever.
    let deadline = Instant::now() + 10 * SEC;
    while s.proxy.stats.active_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.proxy.stats.active_connections(), 0);
    s.still_serves().await;
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A random frame: usually a plausible one (a request, a body, settings, window updates,
/// resets) on a plausible stream, sometimes mutated or garbage.
fn random_frame(r: &mut Rng, next_stream: &mut u32) -> Vec<u8> {
    let stream = match r.below(6) {
        0 => 0,
        1 => *next_stream,
        2 => next_stream.saturating_sub(2).max(1),
        3 => r.below(8) as u32,
        4 => (r.next() as u32) & 0x7fff_ffff,
        _ => 1,
    };
    let paths = ["/", "/echo", "/sleep?ms=20", "/big?n=70000", "/headers"];
    let mut f = match r.below(12) {
        0..=2 => {
            let path = paths[r.below(paths.len() as u64) as usize];
            let mut b = raw_h2::request(if r.below(2) == 0 { "GET" } else { "POST" }, path, &[]);
            if r.below(3) == 0 {
                raw_h2::field(&mut b, "content-length", &r.below(20).to_string());
            }
            let id = *next_stream;
            *next_stream += 2;
            let flags = (r.next() as u8) & (flag::END_STREAM | flag::END_HEADERS | flag::PADDED)
                | if r.below(4) == 0 {
                    0
                } else {
                    flag::END_HEADERS
                };
            let mut payload = b;
            if flags & flag::PADDED != 0 {
                let pad = r.below(10) as u8;
                payload.insert(0, pad);
                payload.extend(std::iter::repeat_n(0, usize::from(pad)));
            }
            raw_h2::frame(kind::HEADERS, flags, id, &payload)
        }
        3 | 4 => {
            let n = r.below(40) as usize;
            raw_h2::frame(kind::DATA, (r.next() as u8) & 0x9, stream, &r.bytes(n))
        }
        5 => {
            let pairs: Vec<(u16, u32)> = (0..r.below(4))
                .map(|_| (r.below(8) as u16, r.next() as u32 >> r.below(32)))
                .collect();
            raw_h2::settings(&pairs)
        }
        6 => raw_h2::window_update(stream, (r.next() as u32) >> r.below(32)),
        7 => raw_h2::rst(stream, r.below(14) as u32),
        8 => raw_h2::frame(kind::PING, (r.next() as u8) & 1, 0, &r.bytes(8)),
        9 => {
            let n = r.below(20) as usize;
            raw_h2::frame(
                kind::CONTINUATION,
                (r.next() as u8) & 4,
                stream,
                &r.bytes(n),
            )
        }
        10 => raw_h2::frame(kind::PRIORITY, 0, stream, &r.bytes(5)),
        _ => {
            let n = r.below(30) as usize;
            raw_h2::frame(r.below(16) as u8, r.next() as u8, stream, &r.bytes(n))
        }
    };
    // Mutations: a flipped byte anywhere (the header included), or a cut frame.
    match r.below(10) {
        0 => {
            let at = r.below(f.len() as u64) as usize;
            f[at] ^= 1 << r.below(8);
        }
        1 => {
            let keep = r.below(f.len() as u64) as usize;
            f.truncate(keep.max(1));
        }
        _ => {}
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_frames_never_break_the_listener() {
    assert_eq!(proxy_panics(), 0);
    let config = ListenerConfig {
        idle_timeout: Duration::from_millis(300),
    };
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = setup_with(config, limits).await;
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let started = Instant::now();
    let mut connections = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while connections < 300 && started.elapsed() < 20 * SEC {
        let mut out = raw_h2::PREFACE.to_vec();
        if r.below(10) != 0 {
            out.extend(raw_h2::settings(&[]));
        }
        let mut next_stream = 1;
        for _ in 0..1 + r.below(60) {
            out.extend(random_frame(&mut r, &mut next_stream));
        }
        let addr = s.proxy.addr;
        tasks.spawn(async move {
            let mut c = Conn::connect(addr).await;
            c.send(&out).await;
            // Take whatever comes back until the server closes or goes quiet.
            while c.next(Duration::from_millis(500)).await.is_some() {}
        });
        connections += 1;
        if tasks.len() >= 16 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    assert!(connections >= 50, "only {connections} connections in time");
    assert_eq!(proxy_panics(), 0, "the proxy panicked");
    s.still_serves().await;
    // No exchange outlives its connection for long.
    assert!(s.in_flight_becomes(0, 5 * SEC).await);
}

/// A target that answers `/now` at once, `/held` once the test releases it, and `/never`
/// not at all; it counts the connections it accepted and the requests it read.
struct HeldTarget {
    addr: std::net::SocketAddr,
    release: Arc<tokio::sync::Notify>,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HeldTarget {
    async fn start() -> HeldTarget {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(tokio::sync::Notify::new());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (rel, conns, reqs) = (release.clone(), connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (rel, reqs) = (rel.clone(), reqs.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match stream.read(&mut buf).await {
                                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                                _ => return,
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                        seen.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        reqs.lock().unwrap().push(path.clone());
                        match path.as_str() {
                            "/never" => std::future::pending::<()>().await,
                            "/held" => rel.notified().await,
                            _ => {}
                        }
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HeldTarget {
            addr,
            release,
            connections,
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The wait for a target's response head is timed per target connection (a timer kept with
/// the pooled connection and moved by each request): the deadline counts from this request,
/// also when the connection served one before whose deadline passes during this one — an
/// answer that comes after that earlier deadline is still relayed — and a silent target
/// still gets its 504. Asserted by order and state: the answer is released only after the
/// earlier request's deadline has passed.
#[tokio::test]
async fn a_silent_target_gives_504_after_the_idle_timeout_on_a_pooled_connection() {
    let idle = Duration::from_millis(1000);
    let config = ListenerConfig { idle_timeout: idle };
    let target = HeldTarget::start().await;
    let group = group_of(&[(target.addr, Healthy)]);
    let options = ListenerOptions::default();
    let proxy = TestProxy::start_with(RouteAction::Forward(group.clone()), config, options).await;
    let mut c = Conn::open(proxy.addr).await;
    let ask = |path: &'static str| raw_h2::request("GET", path, &[]);
    // The first exchange leaves its target connection, and the connection's timer (armed
    // for `first + idle`), pooled.
    let first = Instant::now();
    c.send(&raw_h2::headers(1, &ask("/now"), true)).await;
    assert_eq!(c.answer(1).await.status, Some(200));
    // Most of the idle timeout later, the next request takes the same connection; its answer
    // is held until the first request's deadline has certainly passed.
    tokio::time::sleep(idle * 7 / 10).await;
    c.send(&raw_h2::headers(3, &ask("/held"), true)).await;
    assert!(
        eventually(5 * SEC, || target.requests().len() == 2).await,
        "the held request reached the target"
    );
    tokio::time::sleep_until(first + idle + Duration::from_millis(200)).await;
    target.release.notify_one();
    let held = c.answer(3).await;
    assert_eq!((held.status, held.ended), (Some(200), true), "{held:?}");
    assert_eq!(
        target.connections.load(Ordering::SeqCst),
        1,
        "one pooled connection"
    );
    // A target that never answers: 504 once the idle timeout has run out.
    c.send(&raw_h2::headers(5, &ask("/never"), true)).await;
    let silent = c.answer(5).await;
    assert_eq!(silent.status, Some(504), "{silent:?}");
    // The connection that timed out is not reused; the next request gets a fresh one.
    c.send(&raw_h2::headers(7, &ask("/now"), true)).await;
    assert_eq!(c.answer(7).await.status, Some(200));
    assert_eq!(target.connections.load(Ordering::SeqCst), 2);
    assert_eq!(target.requests(), ["/now", "/held", "/never", "/now"]);
}
