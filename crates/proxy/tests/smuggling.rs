//! Request smuggling: every ambiguous or malformed HTTP/1.1 framing is answered 400 (501 for an
//! unknown `Transfer-Encoding`, as AWS) on a connection that is then closed, and nothing reaches
//! the target.

mod common;

use std::time::Duration;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use common::*;
use flotilla_proxy::rules;
use flotilla_proxy::RouteState::Healthy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send `bytes` on a fresh connection; return what came back and whether the proxy closed the
/// connection (EOF) within the deadline.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await,
        Ok(Ok(_)) | Ok(Err(_))
    );
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

async fn refused_with(case: &str, bytes: &[u8], status: &str) {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let (answer, closed) = exchange(proxy.addr, bytes).await;
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{case}: expected {status}, got {answer:?}"
    );
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{case}: {answer:?}");
    assert!(closed, "{case}: connection left open after {status}");
    assert_eq!(backend.requests(), 0, "{case}: request reached the target");
}

#[tokio::test]
async fn content_length_with_transfer_encoding() {
    refused_with(
        "CL then TE",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "TE then CL",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "400",
    )
    .await;
}

#[tokio::test]
async fn duplicate_content_length() {
    refused_with(
        "same value twice",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "400",
    )
    .await;
    refused_with(
        "differing values",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        "400",
    )
    .await;
    refused_with(
        "list value",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        "400",
    )
    .await;
    refused_with(
        "signed value",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
        "400",
    )
    .await;
}

#[tokio::test]
async fn bad_chunk_size() {
    refused_with(
        "non-hex chunk size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "overflowing chunk size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        "400",
    )
    .await;
}

#[tokio::test]
async fn obs_fold() {
    refused_with(
        "continuation line",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "folded transfer-encoding",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        "400",
    )
    .await;
}

#[tokio::test]
async fn unknown_transfer_encoding_is_501() {
    refused_with(
        "gzip",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "501",
    )
    .await;
    refused_with(
        "chunked not last",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "501",
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_in_http10_or_twice() {
    refused_with(
        "HTTP/1.0 with TE",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "two TE headers",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400",
    )
    .await;
}

#[tokio::test]
async fn bare_lf_and_control_characters() {
    refused_with(
        "bare LF after request line",
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "bare LF after a header",
        b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "NUL in a header value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "control character in the request line",
        b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
        "400",
    )
    .await;
    refused_with(
        "whitespace before the colon",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
        "400",
    )
    .await;
}

#[tokio::test]
async fn a_clean_request_still_passes_and_keeps_the_connection() {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        while !got.ends_with("abc\r\n0\r\n\r\n") && !got.ends_with("\r\n\r\nabc") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed early: {got:?}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    }
    assert_eq!(backend.requests(), 2);
}

#[tokio::test]
async fn a_pipelined_ambiguous_request_is_refused_after_the_good_one() {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let (answer, closed) = exchange(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\n\r\nhello"), "{answer}");
    let second = answer
        .find("HTTP/1.1 400")
        .expect("no 400 for the second request");
    assert!(second > answer.find("hello").unwrap(), "{answer}");
    assert!(closed);
    assert_eq!(backend.requests(), 1);
}

/// A backend behind a listener whose rule answers `/status` itself with a fixed 403: the path
/// an attacker wants to reach the target with.
async fn guarded() -> (TestBackend, TestProxy) {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let src = r#"
[target_groups.test]
[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "test" }
[[load_balancers.front.listeners.rules]]
priority = 1
conditions = [ { field = "path-pattern", values = ["/status"] } ]
action = { type = "fixed-response", status = 403, content_type = "text/plain", body = "no" }
"#;
    let config = flotilla_config::parse(src, Path::new("guarded.toml")).unwrap();
    let mut listener = config.load_balancers["front"].listeners[0].clone();
    listener.bind = proxy.addr;
    let groups = HashMap::from([("test".to_string(), group)]);
    proxy
        .router
        .store(Arc::new(rules::compile(&listener, &groups)));
    (backend, proxy)
}

/// `Connection` naming `Content-Length` or `Transfer-Encoding` once made the rewrite drop the
/// framing the body was still relayed by: the target read the body as a second request, past
/// the listener's rules, and its answer waited on the pooled connection for the next client.
#[tokio::test]
async fn framing_fields_named_by_connection_are_refused_and_cannot_reach_past_the_rules() {
    let (backend, proxy) = guarded().await;
    let c = client();
    // A pooled target connection, which a smuggled answer would poison.
    assert_eq!(get(&c, &proxy.url("/")).await.0, 200);
    let (status, _, _) = get(&c, &proxy.url("/status?code=299")).await;
    assert_eq!(status, 403, "the rule guards /status");

    let smuggled = "GET /status?code=299 HTTP/1.1\r\nHost: a\r\n\r\n";
    let by_length = |connection: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        )
    };
    let attacks = [
        ("Connection: Content-Length", by_length("Content-Length")),
        ("Connection: close, content-length", by_length("close, content-length")),
        (
            "Connection: Transfer-Encoding",
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
                smuggled.len()
            ),
        ),
        (
            "Connection: Host",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Host\r\n\r\n".to_string(),
        ),
    ];
    for (case, bytes) in &attacks {
        let (answer, closed) = exchange(proxy.addr, bytes.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{case}: {answer:?}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{case}: {answer:?}");
        assert!(closed, "{case}: connection left open");
    }

    // The next client on the pooled connection gets its own answer, from the one connection.
    let (status, who, body) = get(&c, &proxy.url("/")).await;
    assert_eq!((status, who.as_str(), &body[..]), (200, "b", &b"b"[..]));
    assert_eq!(
        backend.paths(),
        ["/", "/"],
        "only the clean requests arrived"
    );
    assert_eq!(backend.connections(), 1);
}

/// RFC 9112 §7.1's grammar after a chunk size is `;` extensions (token names, token or
/// quoted-string values, whitespace only where it has BWS) and CRLF; a trailer line is a field.
/// Parsers disagree exactly where the grammar is left, so anything else is refused.
#[tokio::test]
async fn chunk_lines_and_trailers_outside_the_grammar() {
    let post = |body: &str| {
        format!("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
    };
    let cases = [
        (
            "control byte after the size",
            post("3\x00\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "vertical tab in an extension",
            post("3;a\x0bb\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "bare CR in an extension",
            post("3;a\rb\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "bare LF ending the size line",
            post("3;a\nabc\r\n0\r\n\r\n"),
        ),
        (
            "whitespace without an extension",
            post("3 \r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "junk instead of an extension",
            post("3 x\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "an extension without a name",
            post("3;=b\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "an unterminated quoted value",
            post("3;a=\"b\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "a request as trailer lines",
            post("3\r\nabc\r\n0\r\nGET /status HTTP/1.1\r\nHost: a\r\n\r\n"),
        ),
        ("a folded trailer", post("0\r\nX-T: 1\r\n 2\r\n\r\n")),
        ("a framing trailer", post("0\r\nContent-Length: 44\r\n\r\n")),
        ("a NUL in a trailer", post("0\r\nX-T: a\x00b\r\n\r\n")),
    ];
    for (case, bytes) in &cases {
        refused_with(case, bytes.as_bytes(), "400").await;
    }
}

/// Extensions and trailers as the grammar has them still pass (and reach the target).
#[tokio::test]
async fn chunk_extensions_and_trailers_within_the_grammar_pass() {
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let (answer, _) = exchange(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          3 ; a = b ;c=\"q;\\\"\"\r\nabc\r\n0;z\r\nX-Checksum: 1\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("abc"), "{answer:?}");
    assert_eq!(backend.requests(), 1);
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host` is refused; so is an authority with
/// userinfo (`http://evil@good/` routes as one host and reaches another; the HTTP/2 side refuses
/// it in `:authority` too) or a `Host` that is not an authority.
#[tokio::test]
async fn requests_without_a_host_or_with_userinfo() {
    let cases: [(&str, &[u8]); 5] = [
        ("no Host", b"GET / HTTP/1.1\r\n\r\n"),
        (
            "absolute-form without Host",
            b"GET http://a/ HTTP/1.1\r\n\r\n",
        ),
        (
            "userinfo in absolute-form",
            b"GET http://evil@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "user and password in absolute-form",
            b"GET http://u:p@a:80/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "userinfo in Host",
            b"GET / HTTP/1.1\r\nHost: evil@a\r\n\r\n",
        ),
    ];
    for (case, bytes) in cases {
        refused_with(case, bytes, "400").await;
    }
    // HTTP/1.0 needs no Host.
    let backend = TestBackend::start("b").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let (answer, _) = exchange(proxy.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

/// A raw non-ASCII byte in the path (found by fuzzing against httparse) is refused with 400
/// and reaches no target: the rules had read such a path as empty text (no path rule could
/// match it), while a target may decode the byte its own way.
#[tokio::test]
async fn a_raw_byte_above_ascii_in_the_target_cannot_reach_past_the_rules() {
    let (backend, proxy) = guarded().await;
    let mut req = b"GET /status".to_vec();
    req.push(0x8c);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let (answer, closed) = exchange(proxy.addr, &req).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(closed, "connection left open");
    assert_eq!(backend.requests(), 0, "reached the target");
}
