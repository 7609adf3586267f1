//! The request head as the target sees it (AWS ALB §3.1): the client's request line and headers
//! copied byte for byte, less the hop-by-hop ones, in origin-form, with `X-Forwarded-For`
//! (appended to), `X-Forwarded-Proto` and `X-Forwarded-Port` (set) — written straight into the
//! bytes sent to the target.

use super::head::{Known, RequestHead};
use crate::headers::{push_forwarded_lines, push_line, Forwarded};

/// Write the head of `head` (whose bytes are `bytes`) for the target into `out`. `upgrade`
/// keeps `Upgrade` and asks for it with `Connection: upgrade` (WebSocket handshakes).
pub(crate) fn request_head(
    out: &mut Vec<u8>,
    head: &RequestHead,
    bytes: &[u8],
    fwd: &Forwarded<'_>,
    upgrade: bool,
) {
    out.clear();
    out.extend_from_slice(head.method.of(bytes));
    out.push(b' ');
    if head.authority.is_some() {
        // Absolute-form becomes origin-form; the authority becomes the Host.
        let path = head.path.of(bytes);
        if !path.starts_with(b"/") {
            out.push(b'/');
        }
        let target = head.target.of(bytes);
        let path_at = path.as_ptr() as usize - target.as_ptr() as usize;
        out.extend_from_slice(&target[path_at..]);
    } else {
        out.extend_from_slice(head.target.of(bytes));
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for f in &head.fields {
        let keep = match f.known {
            _ if f.named_by_connection => false,
            Known::Host => head.authority.is_none(),
            Known::Upgrade => upgrade,
            Known::XForwardedFor => false,
            k => !k.is_hop_by_hop(),
        };
        if keep {
            push_line(out, f.name.of(bytes), f.value.of(bytes));
        }
    }
    if let Some(authority) = head.authority {
        push_line(out, b"Host", authority.of(bytes));
    }
    // ALB's `append` mode: the client's list, then the client's own address.
    let existing = head
        .fields
        .iter()
        .filter(|f| f.known == Known::XForwardedFor)
        .map(|f| f.value.of(bytes));
    push_forwarded_lines(out, existing, fwd);
    if upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::head;
    use super::*;

    fn fwd() -> Forwarded<'static> {
        Forwarded::for_tests("10.0.0.9")
    }

    fn rewritten(req: &str, upgrade: bool) -> String {
        let mut h = head::RequestHead::default();
        head::parse(req.as_bytes(), &mut h).unwrap();
        let mut out = Vec::new();
        request_head(&mut out, &h, req.as_bytes(), &fwd(), upgrade);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hop_by_hop_headers_go_and_forwarded_headers_come() {
        let out = rewritten(
            "GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nExpect: 100-continue\r\nContent-Length: 0\r\nAccept:  */*\r\n\r\n",
            false,
        );
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nAccept: */*\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 8080\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_the_authority_as_host() {
        let out = rewritten(
            "GET http://example.com:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n",
            false,
        );
        assert!(
            out.starts_with("GET /x?y HTTP/1.1\r\nHost: example.com:81\r\n"),
            "{out}"
        );
        let out = rewritten(
            "GET http://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
            false,
        );
        assert!(out.starts_with("GET /?q HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn upgrades_keep_upgrade_and_ask_for_it() {
        let out = rewritten(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n",
            true,
        );
        assert!(out.contains("\r\nUpgrade: websocket\r\n"), "{out}");
        assert!(out.ends_with("Connection: upgrade\r\n\r\n"), "{out}");
        assert!(!out.contains("Connection: Upgrade"), "{out}");
    }
}
