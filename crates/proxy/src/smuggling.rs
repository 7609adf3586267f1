//! Request-smuggling defence: a strict look at each HTTP/1 request head exactly as the client
//! sent it, before hyper parses it.
//!
//! hyper is lenient where RFC 9112 allows it (bare LF line endings, `Content-Length` dropped in
//! favour of `Transfer-Encoding`, repeated identical lengths). A proxy must not be: a front end
//! and a back end that frame one message differently is how requests are smuggled. Any head
//! that could be read two ways is refused with 400 and a closed connection; a
//! `Transfer-Encoding` other than `chunked` gets 501, as from AWS.

/// Outcome of checking one complete request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The head is complete and unambiguous: it is `len` bytes long and its body is framed
    /// as `body`.
    Ok { len: usize, body: BodyKind },
    /// Refuse with this raw response, then close.
    Refuse(&'static [u8]),
}

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

fn check_head(head: &[u8], len: usize) -> Verdict {
    let lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty());
    match check_lines(lines) {
        Ok(body) => Verdict::Ok { len, body },
        Err(answer) => Verdict::Refuse(answer),
    }
}

/// Where a connection's byte stream is, as far as HTTP/1 message framing goes.
#[derive(Debug)]
enum Stage {
    /// Reading a request head (possibly none begun yet).
    Head,
    /// Inside a body of known length: this many bytes are left.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not HTTP/1 messages any more (upgraded, HTTP/2) or framing lost: no more checks.
    Off,
}

/// Follows the HTTP/1 message boundaries of a client connection so that every request head,
/// pipelined or not, is checked before hyper sees it whole.
#[derive(Debug)]
pub(crate) struct Framing {
    stage: Stage,
    /// The bytes of a head begun in earlier reads.
    head: Vec<u8>,
    /// Lines of `head` before this offset were already looked at.
    scanned: usize,
    max: usize,
}

/// What [`Framing::feed`] found in newly read bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Nothing to refuse.
    Ok,
    /// Refuse with `answer`; the refused head begins at byte `at` of the new bytes (0 when it
    /// began in an earlier read): the bytes before it belong to earlier messages.
    Refuse { answer: &'static [u8], at: usize },
}

impl Framing {
    pub(crate) fn new(max_header_bytes: usize) -> Self {
        Framing {
            stage: Stage::Head,
            head: Vec::new(),
            scanned: 0,
            max: max_header_bytes,
        }
    }

    /// Stop checking: the connection no longer carries HTTP/1 requests.
    pub(crate) fn stop(&mut self) {
        self.stage = Stage::Off;
        self.head = Vec::new();
    }

    /// Whether a request head has begun but is not complete.
    pub(crate) fn in_head(&self) -> bool {
        matches!(self.stage, Stage::Head) && !self.head.is_empty()
    }

    /// Look at bytes just read from the client.
    pub(crate) fn feed(&mut self, new: &[u8]) -> Fed {
        let mut at = 0;
        while at < new.len() {
            let rest = &new[at..];
            match &mut self.stage {
                Stage::Off => return Fed::Ok,
                Stage::Head => {
                    let carried = self.head.len();
                    let head_at = if carried == 0 { at } else { 0 };
                    let found = if carried == 0 {
                        find_end(rest, 0, self.max)
                    } else {
                        self.head.extend_from_slice(rest);
                        find_end(&self.head, self.scanned, self.max)
                    };
                    let end = match found {
                        Err(answer) => {
                            return Fed::Refuse {
                                answer,
                                at: head_at,
                            }
                        }
                        Ok(None) => {
                            if carried == 0 {
                                self.head.extend_from_slice(rest);
                            }
                            self.scanned = resume_point(&self.head);
                            return Fed::Ok;
                        }
                        Ok(Some(end)) => end,
                    };
                    let verdict = if carried == 0 {
                        check_head(&rest[..end], end)
                    } else {
                        check_head(&self.head[..end], end)
                    };
                    let body = match verdict {
                        Verdict::Ok { body, .. } => body,
                        Verdict::Refuse(answer) => {
                            return Fed::Refuse {
                                answer,
                                at: head_at,
                            }
                        }
                    };
                    // The head's bytes in `rest`: all of it, less what earlier reads brought.
                    at += end - carried;
                    self.head.clear();
                    self.scanned = 0;
                    self.stage = match body {
                        BodyKind::None | BodyKind::Length(0) => Stage::Head,
                        BodyKind::Length(n) => Stage::Length(n),
                        BodyKind::Chunked => Stage::Chunked(Chunk::Size { digits: 0, size: 0 }),
                    };
                }
                Stage::Length(left) => {
                    let take = (*left).min(rest.len() as u64);
                    *left -= take;
                    // `take` is at most `rest.len()`, a usize.
                    at += take as usize;
                    if *left == 0 {
                        self.stage = Stage::Head;
                    }
                }
                Stage::Chunked(chunk) => match chunk.feed(rest) {
                    ChunkFed::More => return Fed::Ok,
                    ChunkFed::Done(used) => {
                        at += used;
                        self.stage = Stage::Head;
                    }
                    // hyper's decoder refuses the same body (400 and a closed connection);
                    // stop following a stream whose boundaries are lost.
                    ChunkFed::Invalid => {
                        self.stop();
                        return Fed::Ok;
                    }
                },
            }
        }
        Fed::Ok
    }
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

    /// Follow the framing through `bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> ChunkFed {
        self.feed_with(bytes, &mut |_, _| {})
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

fn check_lines<'a>(mut lines: impl Iterator<Item = &'a [u8]>) -> Result<BodyKind, &'static [u8]> {
    let Some(request_line) = lines.next() else {
        return Err(BAD_REQUEST);
    };
    let headers = lines;
    if request_line.iter().any(|&b| b.is_ascii_control()) {
        return Err(BAD_REQUEST);
    }
    let http10 = request_line.ends_with(b"HTTP/1.0");
    let mut content_length = 0usize;
    let mut length = 0u64;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut te_count = 0usize;
    for line in headers {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // obs-fold: a continuation line some parsers join and others split.
            return Err(BAD_REQUEST);
        }
        if line.iter().any(|&b| b != b'\t' && b.is_ascii_control()) {
            return Err(BAD_REQUEST);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(BAD_REQUEST);
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(BAD_REQUEST);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length += 1;
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(BAD_REQUEST);
            }
            // Digits only, so valid UTF-8; too many digits overflow and are refused.
            length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or(BAD_REQUEST)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_count += 1;
            transfer_encoding = Some(value);
        }
    }
    if content_length > 1 || te_count > 1 {
        return Err(BAD_REQUEST);
    }
    if let Some(te) = transfer_encoding {
        if content_length > 0 || http10 {
            return Err(BAD_REQUEST);
        }
        if !te.eq_ignore_ascii_case(b"chunked") {
            return Err(NOT_IMPLEMENTED);
        }
        return Ok(BodyKind::Chunked);
    }
    Ok(if content_length == 1 {
        BodyKind::Length(length)
    } else {
        BodyKind::None
    })
}

/// RFC 9110 `tchar`.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Fed {
        Framing::new(1024).feed(s.as_bytes())
    }

    fn refused(s: &str) -> &'static [u8] {
        match v(s) {
            Fed::Refuse { answer, .. } => answer,
            Fed::Ok => panic!("accepted: {s:?}"),
        }
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
        assert_eq!(v("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Fed::Ok);
        assert_eq!(
            v("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"),
            Fed::Ok
        );
        assert_eq!(
            v("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
            Fed::Ok
        );
        assert_eq!(v("\r\nGET / HTTP/1.1\r\n\r\n"), Fed::Ok);
    }

    #[test]
    fn partial_heads_wait_until_the_limit() {
        let mut f = Framing::new(1024);
        assert_eq!(f.feed(b"GET / HTTP/1.1\r\nHost: a\r\n"), Fed::Ok);
        assert!(f.in_head());
        assert_eq!(f.feed(b"\r\n"), Fed::Ok);
        assert!(!f.in_head());
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        assert_eq!(refused(&big), HEADERS_TOO_LARGE);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(refused(&big), HEADERS_TOO_LARGE);
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
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
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
            assert_eq!(refused(b), BAD_REQUEST, "{b:?}");
        }
        assert_eq!(
            refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            NOT_IMPLEMENTED
        );
    }

    #[test]
    fn pipelined_heads_are_each_checked_after_their_bodies() {
        let first = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let s = format!("{first}GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n");
        assert_eq!(
            v(&s),
            Fed::Refuse {
                answer: BAD_REQUEST,
                at: first.len()
            }
        );
        // A body that looks like a malformed head is only a body.
        assert_eq!(
            v("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n\n\n\n\n"),
            Fed::Ok
        );
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n\n\n\n\r\n0\r\nT: 1\r\n\r\n";
        let mut f = Framing::new(1024);
        assert_eq!(f.feed(chunked.as_bytes()), Fed::Ok);
        assert_eq!(f.feed(b"GET / HTTP/1.1\r\n\r\n"), Fed::Ok);
        let s = format!("{chunked}GET / HTTP/1.1\nX: 1\r\n\r\n");
        assert_eq!(
            v(&s),
            Fed::Refuse {
                answer: BAD_REQUEST,
                at: chunked.len()
            }
        );
    }

    #[test]
    fn byte_by_byte_gives_the_same_answers() {
        let good = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET / HTTP/1.1\r\n\r\n";
        let mut f = Framing::new(1024);
        for b in good.as_bytes() {
            assert_eq!(f.feed(&[*b]), Fed::Ok);
        }
        assert!(!f.in_head());
        let bad = "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        let mut f = Framing::new(1024);
        let answers: Vec<Fed> = bad.as_bytes().iter().map(|b| f.feed(&[*b])).collect();
        assert_eq!(
            answers.last(),
            Some(&Fed::Refuse {
                answer: BAD_REQUEST,
                at: 0
            })
        );
        assert!(answers[..answers.len() - 1].iter().all(|a| *a == Fed::Ok));
    }
}
