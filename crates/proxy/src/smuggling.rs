//! Request-smuggling defence, the byte-level half: where an HTTP/1 request head ends, read
//! strictly (CRLF only, bounded size), and the chunked framing of bodies, followed exactly; the
//! head itself is checked field by field by [`crate::h1`]'s parser.
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

/// Position inside a chunked body (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size { digits: u8, size: u64 },
    Extension { size: u64 },
    SizeLf { size: u64 },
    Data { left: u64 },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

pub(crate) enum ChunkFed {
    /// The body continues past these bytes.
    More,
    /// The body ended after this many bytes.
    Done(usize),
    /// Not valid chunked framing.
    Invalid,
}

impl Chunk {
    /// The start of a chunked body.
    pub(crate) fn start() -> Chunk {
        Chunk::Size { digits: 0, size: 0 }
    }

    /// [`Chunk::feed`], telling `data` where chunk data lies in `bytes` (`start..end`), for
    /// counting a body's size or taking the framing off.
    pub(crate) fn feed_with(
        &mut self,
        bytes: &[u8],
        data: &mut dyn FnMut(usize, usize),
    ) -> ChunkFed {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            *self = match *self {
                Chunk::Size { digits, size } => match (b as char).to_digit(16) {
                    Some(d) if digits < 16 => Chunk::Size {
                        digits: digits + 1,
                        size: size * 16 + u64::from(d),
                    },
                    None if digits > 0 && (b == b';' || b == b' ' || b == b'\t') => {
                        Chunk::Extension { size }
                    }
                    None if digits > 0 && b == b'\r' => Chunk::SizeLf { size },
                    _ => return ChunkFed::Invalid,
                },
                Chunk::Extension { size } => match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return ChunkFed::Invalid,
                    _ => Chunk::Extension { size },
                },
                Chunk::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => Chunk::TrailerLineStart,
                    (b'\n', left) => Chunk::Data { left },
                    _ => return ChunkFed::Invalid,
                },
                Chunk::Data { left } => {
                    let take = left.min((bytes.len() - i) as u64);
                    // `take` is at most the bytes left in this read.
                    data(i, i + take as usize);
                    i += take as usize;
                    *self = if left == take {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left: left - take }
                    };
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { digits: 0, size: 0 },
                Chunk::TrailerLineStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerLineStart | Chunk::TrailerLine if b == b'\r' => Chunk::TrailerLf,
                Chunk::TrailerLineStart | Chunk::TrailerLine if b != b'\n' => Chunk::TrailerLine,
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerLineStart,
                Chunk::EndLf if b == b'\n' => return ChunkFed::Done(i + 1),
                _ => return ChunkFed::Invalid,
            };
            i += 1;
        }
        ChunkFed::More
    }
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

    fn chunked(parts: &[&[u8]]) -> (Vec<ChunkFed>, Vec<u8>) {
        let mut c = Chunk::start();
        let mut data = Vec::new();
        let fed = parts
            .iter()
            .map(|p| c.feed_with(p, &mut |a, b| data.extend_from_slice(&p[a..b])))
            .collect();
        (fed, data)
    }

    #[test]
    fn chunked_bodies_are_followed_byte_by_byte_with_extensions_and_trailers() {
        let body = b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n";
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let (fed, data) = chunked(&bytes);
        assert_eq!(data, b"abc0123456789abcdef");
        assert!(matches!(fed.last(), Some(ChunkFed::Done(1))));
        assert!(fed[..fed.len() - 1]
            .iter()
            .all(|f| matches!(f, ChunkFed::More)));
    }

    #[test]
    fn bad_chunk_sizes_and_framing_are_invalid() {
        for bad in [
            &b"zz\r\nhello\r\n"[..],
            b"fffffffffffffffff1\r\n",
            b"3\nabc\r\n",
            b"3\r\nabcX\r\n",
            b"\r\n",
        ] {
            let (fed, _) = chunked(&[bad]);
            assert!(matches!(fed[0], ChunkFed::Invalid), "{bad:?}");
        }
    }
}
