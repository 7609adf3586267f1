//! Request-smuggling defence, the byte-level half: where an HTTP/1 request head ends, read
//! strictly (CRLF only, bounded size); the head itself is checked field by field by
//! [`crate::http1`]'s parser, and chunked bodies are followed exactly by its chunked decoder.
//!
//! Lenient parsers accept what RFC 9112 merely allows (bare LF line endings, `Content-Length`
//! dropped in favour of `Transfer-Encoding`, repeated identical lengths). A proxy must not: a
//! front end and a back end that frame one message differently is how requests are smuggled.
//! Any head that could be read two ways is refused with 400 and a closed connection; a
//! `Transfer-Encoding` other than `chunked` gets 501, as from AWS.

/// How a request's body is delimited (RFC 9112 §6.3; a request without either header has
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// 400 for a malformed or ambiguous head.
pub(crate) const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 56\r\nConnection: close\r\n\r\n400 Bad Request: malformed or ambiguous request framing\n";
/// 408 for a head that did not arrive within the header read timeout.
pub(crate) const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 58\r\nConnection: close\r\n\r\n408 Request Timeout: request headers not received in time\n";
/// 431 for a head over the size limit.
pub(crate) const HEADERS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 53\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large: headers too big\n";
/// 501 for a transfer coding other than `chunked`.
pub(crate) const NOT_IMPLEMENTED: &[u8] = b"HTTP/1.1 501 Not Implemented\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 57\r\nConnection: close\r\n\r\n501 Not Implemented: unsupported Transfer-Encoding value\n";

/// Where the head in `buf` ends (just past its empty line), looking at lines from `from` on
/// (the start of a line: earlier lines were already looked at). `Err` for a bare LF or a head
/// over the limit.
pub(crate) fn find_end(
    buf: &[u8],
    from: usize,
    max: usize,
) -> Result<Option<usize>, &'static [u8]> {
    let mut pos = from;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        let nl = pos + nl;
        if nl == pos || buf[nl - 1] != b'\r' {
            // A bare LF: some servers end a line there, others do not.
            return Err(BAD_REQUEST);
        }
        let empty = nl == pos + 1;
        pos = nl + 1;
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        if empty && buf[..pos].iter().any(|&b| b != b'\r' && b != b'\n') {
            return if pos > max {
                Err(HEADERS_TOO_LARGE)
            } else {
                Ok(Some(pos))
            };
        }
    }
    if buf.len() > max {
        return Err(HEADERS_TOO_LARGE);
    }
    Ok(None)
}

/// Where the last complete line of a partial head ends (to resume [`find_end`] there).
pub(crate) fn resume_point(buf: &[u8]) -> usize {
    buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// RFC 9110 `tchar`.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn heads_end_at_their_empty_line_after_leading_empty_lines() {
        let h = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
        assert_eq!(find_end(h, 0, 1024), Ok(Some(h.len() - 3)));
        assert_eq!(
            find_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, 1024),
            Ok(Some(22))
        );
        assert_eq!(
            find_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0, 1024),
            Ok(None)
        );
    }

    #[test]
    fn bare_lf_and_oversized_heads_are_refused() {
        assert_eq!(
            find_end(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 0, 1024),
            Err(BAD_REQUEST)
        );
        assert_eq!(
            find_end(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 0, 1024),
            Err(BAD_REQUEST)
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        assert_eq!(find_end(big.as_bytes(), 0, 1024), Err(HEADERS_TOO_LARGE));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(find_end(big.as_bytes(), 0, 1024), Err(HEADERS_TOO_LARGE));
    }

    #[test]
    fn a_partial_head_resumes_where_its_complete_lines_end() {
        let part = b"GET / HTTP/1.1\r\nHost: a\r\nX-";
        assert_eq!(find_end(part, 0, 1024), Ok(None));
        let resume = resume_point(part);
        assert_eq!(resume, 25);
        let whole = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n";
        assert_eq!(find_end(whole, resume, 1024), Ok(Some(whole.len())));
    }
}
