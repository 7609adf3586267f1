//! Request-smuggling defence: a strict look at each HTTP/1 request head exactly as the client
//! sent it, before hyper parses it.
//!
//! hyper is lenient where RFC 9112 allows it (bare LF line endings, `Content-Length` dropped in
//! favour of `Transfer-Encoding`, repeated identical lengths). A proxy must not be: a front end
//! and a back end that frame one message differently is how requests are smuggled. Any head
//! that could be read two ways is refused with 400 and a closed connection; a
//! `Transfer-Encoding` other than `chunked` gets 501, as from AWS.

/// Outcome of checking the bytes of a request head read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The head is not complete yet (and not over the size limit).
    Incomplete,
    /// The head is complete and unambiguous.
    Ok,
    /// Refuse with this raw response, then close.
    Refuse(&'static [u8]),
}

/// 400 for a malformed or ambiguous head.
pub(crate) const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 56\r\nConnection: close\r\n\r\n400 Bad Request: malformed or ambiguous request framing\n";
/// 408 for a head that did not arrive within the header read timeout.
pub(crate) const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 58\r\nConnection: close\r\n\r\n408 Request Timeout: request headers not received in time\n";
/// 431 for a head over the size limit.
pub(crate) const HEADERS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 53\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large: headers too big\n";
/// 501 for a transfer coding other than `chunked`.
pub(crate) const NOT_IMPLEMENTED: &[u8] = b"HTTP/1.1 501 Not Implemented\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 57\r\nConnection: close\r\n\r\n501 Not Implemented: unsupported Transfer-Encoding value\n";

/// Check the bytes of one request head read so far (they may run on into the body).
pub(crate) fn check(buf: &[u8], max_header_bytes: usize) -> Verdict {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let mut lines: Vec<&[u8]> = Vec::with_capacity(16);
    let mut pos = start;
    let end = loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() > max_header_bytes {
                return Verdict::Refuse(HEADERS_TOO_LARGE);
            }
            return Verdict::Incomplete;
        };
        let nl = pos + nl;
        if nl == pos || buf[nl - 1] != b'\r' {
            // A bare LF: some servers end a line there, others do not.
            return Verdict::Refuse(BAD_REQUEST);
        }
        let line = &buf[pos..nl - 1];
        pos = nl + 1;
        if line.is_empty() {
            break pos;
        }
        lines.push(line);
    };
    if end > max_header_bytes {
        return Verdict::Refuse(HEADERS_TOO_LARGE);
    }
    check_lines(&lines)
}

fn check_lines(lines: &[&[u8]]) -> Verdict {
    let Some((request_line, headers)) = lines.split_first() else {
        return Verdict::Refuse(BAD_REQUEST);
    };
    if request_line.iter().any(|&b| b.is_ascii_control()) {
        return Verdict::Refuse(BAD_REQUEST);
    }
    let http10 = request_line.ends_with(b"HTTP/1.0");
    let mut content_length = 0usize;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut te_count = 0usize;
    for line in headers {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // obs-fold: a continuation line some parsers join and others split.
            return Verdict::Refuse(BAD_REQUEST);
        }
        if line.iter().any(|&b| b != b'\t' && b.is_ascii_control()) {
            return Verdict::Refuse(BAD_REQUEST);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Verdict::Refuse(BAD_REQUEST);
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Verdict::Refuse(BAD_REQUEST);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length += 1;
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Verdict::Refuse(BAD_REQUEST);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_count += 1;
            transfer_encoding = Some(value);
        }
    }
    if content_length > 1 || te_count > 1 {
        return Verdict::Refuse(BAD_REQUEST);
    }
    if let Some(te) = transfer_encoding {
        if content_length > 0 || http10 {
            return Verdict::Refuse(BAD_REQUEST);
        }
        if !te.eq_ignore_ascii_case(b"chunked") {
            return Verdict::Refuse(NOT_IMPLEMENTED);
        }
    }
    Verdict::Ok
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Verdict {
        check(s.as_bytes(), 1024)
    }

    #[test]
    fn canned_answers_have_the_right_length() {
        for a in [
            BAD_REQUEST,
            REQUEST_TIMEOUT,
            HEADERS_TOO_LARGE,
            NOT_IMPLEMENTED,
        ] {
            let text = std::str::from_utf8(a).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("Content-Length: {}", body.len())),
                "{head}"
            );
        }
    }

    #[test]
    fn plain_requests_pass() {
        assert_eq!(v("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Ok);
        assert_eq!(
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"),
            Verdict::Ok
        );
        assert_eq!(
            v("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
            Verdict::Ok
        );
        assert_eq!(v("\r\nGET / HTTP/1.1\r\n\r\n"), Verdict::Ok);
    }

    #[test]
    fn partial_heads_wait_until_the_limit() {
        assert_eq!(v("GET / HTTP/1.1\r\nHost: a\r\n"), Verdict::Incomplete);
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        assert_eq!(v(&big), Verdict::Refuse(HEADERS_TOO_LARGE));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(v(&big), Verdict::Refuse(HEADERS_TOO_LARGE));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let bad = [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\n\r\n",
            "GET /\0 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            "GET / HTTP/1.1\r\nX : a\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for b in bad {
            assert_eq!(v(b), Verdict::Refuse(BAD_REQUEST), "{b:?}");
        }
        assert_eq!(
            v("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Verdict::Refuse(NOT_IMPLEMENTED)
        );
    }
}
