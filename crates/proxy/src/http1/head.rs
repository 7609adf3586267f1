//! The strict parser of HTTP/1 request heads: one pass over the bytes exactly as the client sent
//! them, refusing every framing that two HTTP implementations could read two ways (see
//! [`crate::http1::smuggling`]), and recording where each part is (spans into the read buffer) so that
//! routing and forwarding borrow the bytes instead of copying them into a `HeaderMap`.

use crate::http1::buf::{give_back_vec, note_held};
use crate::http1::smuggling::{self, BodyKind, BAD_REQUEST, HEADERS_TOO_LARGE, NOT_IMPLEMENTED};
use crate::http1::spare::{take_from, trim_store, Store};
use crate::request::RequestView;

/// Most header fields one request may carry (431 beyond), far above what clients send.
pub(crate) const MAX_FIELDS: usize = 256;

/// A byte range of the head (offsets from its first byte).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Heads are at most `Limits::max_header_bytes`, which the listener caps far below 4 GiB.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The bytes of this span in `head`.
    pub(crate) fn of<'a>(&self, head: &'a [u8]) -> &'a [u8] {
        &head[self.start as usize..self.end as usize]
    }

    /// The span as text; heads are checked to be ASCII-compatible where spans are read as text,
    /// and anything else reads as empty.
    pub(crate) fn str<'a>(&self, head: &'a [u8]) -> &'a str {
        std::str::from_utf8(self.of(head)).unwrap_or("")
    }
}

/// Header names the proxy acts on, recognised once while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedPort,
}

impl Known {
    fn of(name: &[u8]) -> Known {
        const NAMES: [(&[u8], Known); 13] = [
            (b"host", Known::Host),
            (b"content-length", Known::ContentLength),
            (b"transfer-encoding", Known::TransferEncoding),
            (b"connection", Known::Connection),
            (b"keep-alive", Known::KeepAlive),
            (b"proxy-connection", Known::ProxyConnection),
            (b"te", Known::Te),
            (b"trailer", Known::Trailer),
            (b"upgrade", Known::Upgrade),
            (b"expect", Known::Expect),
            (b"x-forwarded-for", Known::XForwardedFor),
            (b"x-forwarded-proto", Known::XForwardedProto),
            (b"x-forwarded-port", Known::XForwardedPort),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.len() == name.len() && n.eq_ignore_ascii_case(name))
            .map_or(Known::Other, |&(_, k)| k)
    }

    /// Fields that frame the message or name its host: what the target must see exactly as the
    /// proxy read it, so a `Connection` header naming one is refused rather than obeyed.
    fn is_end_to_end_framing(self) -> bool {
        matches!(
            self,
            Known::Host | Known::ContentLength | Known::TransferEncoding
        )
    }

    /// Headers that describe the client connection, not the request (RFC 9110 §7.6.1), plus
    /// those the load balancer answers or sets itself: never copied to the target as sent.
    pub(crate) fn is_hop_by_hop(self) -> bool {
        !matches!(
            self,
            Known::Other | Known::Host | Known::ContentLength | Known::TransferEncoding
        )
    }
}

/// One header field of the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: Span,
    /// The value without surrounding whitespace.
    pub(crate) value: Span,
    pub(crate) known: Known,
    /// Named by the `Connection` header: hop-by-hop for this message only.
    pub(crate) named_by_connection: bool,
}

/// The HTTP version of a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// A parsed request head, made for one request (its field list comes from a per-thread store
/// and goes back to it when the head is dropped); every span points into the head bytes it
/// was parsed from.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: Span,
    /// The request target as sent.
    pub(crate) target: Span,
    /// The path of the target, without the query.
    pub(crate) path: Span,
    pub(crate) query: Option<Span>,
    /// The authority of an absolute-form target (`http://host:port/path`).
    pub(crate) authority: Option<Span>,
    pub(crate) host: Option<Span>,
    pub(crate) version: Version,
    pub(crate) fields: Vec<Field>,
    pub(crate) body: BodyKind,
    /// The client asked to close the connection after this exchange (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub(crate) close: bool,
    /// A WebSocket upgrade (`Upgrade: websocket` with `Connection: upgrade`, HTTP/1.1).
    pub(crate) upgrade: bool,
    /// `Expect: 100-continue`: the client waits for a 100 before sending its body.
    pub(crate) expect_continue: bool,
    pub(crate) is_head: bool,
}

// Field lists spare on this thread: a connection holds one only while it parses or serves a
// request (`RequestHead::release`).
thread_local! {
    static SPARE_FIELDS: std::cell::RefCell<Store<Vec<Field>>> =
        const { std::cell::RefCell::new(Store::new()) };
}

/// Trim this thread's store of field lists ([`super::spare`]).
pub(super) fn trim() -> usize {
    trim_store(&SPARE_FIELDS)
}

/// Room for the fields of a usual request in a new list.
const FIELDS_INITIAL: usize = 16;

impl RequestHead {
    /// Give the field list back: the connection is idle (the head's spans mean nothing now).
    pub(crate) fn release(&mut self) {
        let fields = std::mem::take(&mut self.fields);
        give_back_vec(&SPARE_FIELDS, fields, 4 * FIELDS_INITIAL);
    }
}

impl Drop for RequestHead {
    fn drop(&mut self) {
        self.release();
    }
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Span::default(),
            target: Span::default(),
            path: Span::default(),
            query: None,
            authority: None,
            host: None,
            version: Version::Http11,
            fields: Vec::new(),
            body: BodyKind::None,
            close: false,
            upgrade: false,
            expect_continue: false,
            is_head: false,
        }
    }
}

/// A parsed head together with its bytes: what routing reads.
pub(crate) struct Request<'a> {
    pub(crate) head: &'a RequestHead,
    pub(crate) bytes: &'a [u8],
}

impl RequestView for Request<'_> {
    fn method(&self) -> &str {
        self.head.method.str(self.bytes)
    }

    fn path(&self) -> &str {
        self.head.path.str(self.bytes)
    }

    fn query(&self) -> Option<&str> {
        self.head.query.map(|q| q.str(self.bytes))
    }

    fn host_port(&self) -> &str {
        self.head
            .authority
            .or(self.head.host)
            .map_or("", |s| s.str(self.bytes))
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        self.head
            .fields
            .iter()
            .filter(move |f| f.name.of(bytes).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |f| f.value.of(bytes))
    }
}

/// Whitespace and comma separated tokens of a list header value (`Connection`, `Upgrade`).
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Parse the complete head `bytes` (as delimited by [`smuggling::find_end`]: it ends with its
/// empty line and uses CRLF line endings throughout) into `head`. `Err` is the answer to
/// refuse it with, after which the connection is closed.
pub(crate) fn parse(bytes: &[u8], head: &mut RequestHead) -> Result<(), &'static [u8]> {
    if head.fields.capacity() == 0 {
        note_held(1);
        head.fields =
            take_from(&SPARE_FIELDS).unwrap_or_else(|| Vec::with_capacity(FIELDS_INITIAL));
    }
    head.fields.clear();
    head.query = None;
    head.authority = None;
    head.host = None;
    head.upgrade = false;
    head.expect_continue = false;

    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let mut pos = 0;
    while bytes[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let first_end = line_end(bytes, pos)?;
    request_line(bytes, pos, first_end, head)?;
    pos = first_end + 2;

    let mut seen = Seen::default();
    loop {
        let end = line_end(bytes, pos)?;
        if end == pos {
            break;
        }
        let field = field_line(bytes, pos, end)?;
        seen.note(&field, field.value.of(bytes), head)?;
        if head.fields.len() == MAX_FIELDS {
            return Err(HEADERS_TOO_LARGE);
        }
        head.fields.push(field);
        pos = end + 2;
    }
    seen.finish(bytes, head)
}

/// One field line (`pos..end` of `bytes`, without its CRLF): a token name, a colon, and a
/// value without control characters but HTAB; no obs-fold.
fn field_line(bytes: &[u8], pos: usize, end: usize) -> Result<Field, &'static [u8]> {
    let line = &bytes[pos..end];
    if matches!(line[0], b' ' | b'\t') {
        // obs-fold: a continuation line some parsers join and others split.
        return Err(BAD_REQUEST);
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(BAD_REQUEST);
    };
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| smuggling::is_token(b)) {
        return Err(BAD_REQUEST);
    }
    let raw = &line[colon + 1..];
    if raw.iter().any(|&b| b != b'\t' && b.is_ascii_control()) {
        return Err(BAD_REQUEST);
    }
    let value = raw.trim_ascii();
    let value_start = pos + colon + 1 + (raw.len() - raw.trim_ascii_start().len());
    Ok(Field {
        name: Span::new(pos, pos + colon),
        value: Span::new(value_start, value_start + value.len()),
        known: Known::of(name),
        named_by_connection: false,
    })
}

/// What the fields of a head said about framing and the connection, as they are read.
#[derive(Default)]
struct Seen {
    lengths: usize,
    length: u64,
    te: Option<Span>,
    te_count: usize,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    /// `Connection` names other fields.
    conn_names: bool,
    upgrade_websocket: bool,
}

impl Seen {
    /// Take note of `field`, whose value is `value`.
    fn note(
        &mut self,
        field: &Field,
        value: &[u8],
        head: &mut RequestHead,
    ) -> Result<(), &'static [u8]> {
        match field.known {
            Known::ContentLength => {
                self.lengths += 1;
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return Err(BAD_REQUEST);
                }
                // Digits only; too many of them overflow and are refused.
                self.length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or(BAD_REQUEST)?;
            }
            Known::TransferEncoding => {
                self.te_count += 1;
                self.te = Some(field.value);
            }
            Known::Host => {
                if head.host.is_some() || !is_authority(value) {
                    // Two hosts: the target and the rules could each pick another; so could
                    // they read one with userinfo or a delimiter in it.
                    return Err(BAD_REQUEST);
                }
                head.host = Some(field.value);
            }
            Known::Connection => {
                for t in tokens(value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        self.conn_close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        self.conn_keep_alive = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        self.conn_upgrade = true;
                    } else if Known::of(t).is_end_to_end_framing() {
                        // Naming them hop-by-hop asks for the framing (or the Host the rules
                        // saw) to be removed while the body is relayed by it.
                        return Err(BAD_REQUEST);
                    } else {
                        self.conn_names = true;
                    }
                }
            }
            Known::Upgrade => {
                self.upgrade_websocket |=
                    tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
            }
            Known::Expect => {
                head.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        Ok(())
    }

    /// The head's framing and connection handling, once every field was seen.
    fn finish(self, bytes: &[u8], head: &mut RequestHead) -> Result<(), &'static [u8]> {
        let http10 = head.version == Version::Http10;
        if self.lengths > 1 || self.te_count > 1 {
            return Err(BAD_REQUEST);
        }
        if !http10 && head.host.is_none() {
            // RFC 9112 §3.2: an HTTP/1.1 request without Host gets 400 (whatever its target).
            return Err(BAD_REQUEST);
        }
        head.body = match self.te {
            Some(te) => {
                if self.lengths > 0 || http10 {
                    return Err(BAD_REQUEST);
                }
                if !te.of(bytes).eq_ignore_ascii_case(b"chunked") {
                    return Err(NOT_IMPLEMENTED);
                }
                BodyKind::Chunked
            }
            None if self.lengths == 1 && self.length > 0 => BodyKind::Length(self.length),
            None => BodyKind::None,
        };
        head.close = self.conn_close || (http10 && !self.conn_keep_alive);
        head.upgrade = !http10 && self.conn_upgrade && self.upgrade_websocket;
        if self.conn_names {
            mark_connection_named(bytes, head);
        }
        Ok(())
    }
}

/// Where the line starting at `from` ends (the index of its CR). The head was delimited by
/// [`smuggling::find_end`], so every LF is preceded by CR.
fn line_end(bytes: &[u8], from: usize) -> Result<usize, &'static [u8]> {
    match bytes[from..].iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && bytes[from + i - 1] == b'\r' => Ok(from + i - 1),
        _ => Err(BAD_REQUEST),
    }
}

/// `method SP request-target SP HTTP-version`, exactly one space each.
fn request_line(
    bytes: &[u8],
    start: usize,
    end: usize,
    head: &mut RequestHead,
) -> Result<(), &'static [u8]> {
    let line = &bytes[start..end];
    if line.iter().any(|&b| b.is_ascii_control()) {
        return Err(BAD_REQUEST);
    }
    let sp1 = line.iter().position(|&b| b == b' ').ok_or(BAD_REQUEST)?;
    let sp2 = line.iter().rposition(|&b| b == b' ').ok_or(BAD_REQUEST)?;
    if sp1 == 0 || sp2 <= sp1 + 1 {
        return Err(BAD_REQUEST);
    }
    let method = &line[..sp1];
    let target = &line[sp1 + 1..sp2];
    let version = &line[sp2 + 1..];
    // The target is visible ASCII (RFC 9112 §3.2, RFC 3986): a raw byte above 0x7e is
    // refused, not relayed. Rules read the path as text, and one that is not (`/admin\x8c`)
    // would read as empty and match no path rule, while the target decodes it its own way.
    if !method.iter().all(|&b| smuggling::is_token(b)) || !target.iter().all(u8::is_ascii_graphic) {
        return Err(BAD_REQUEST);
    }
    head.version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        v if v.len() == 8 && v.starts_with(b"HTTP/") => return Err(VERSION_NOT_SUPPORTED),
        _ => return Err(BAD_REQUEST),
    };
    head.method = Span::new(start, start + sp1);
    head.is_head = method == b"HEAD";
    if method == b"CONNECT" {
        // Application load balancers do not tunnel.
        return Err(METHOD_NOT_ALLOWED);
    }
    let t0 = start + sp1 + 1;
    head.target = Span::new(t0, t0 + target.len());
    // Absolute-form: `scheme://authority/path?query`; the authority names the host.
    let mut path_from = 0;
    if target.first() != Some(&b'/') && target != b"*" {
        let scheme_end = target
            .windows(3)
            .position(|w| w == b"://")
            .ok_or(BAD_REQUEST)?;
        let scheme = &target[..scheme_end];
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return Err(BAD_REQUEST);
        }
        let auth_start = scheme_end + 3;
        let auth_end = target[auth_start..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .map_or(target.len(), |i| auth_start + i);
        let authority = &target[auth_start..auth_end];
        if authority.is_empty() || !is_authority(authority) {
            // No userinfo (`http://a@b/` routes as one host and reaches another).
            return Err(BAD_REQUEST);
        }
        head.authority = Some(Span::new(t0 + auth_start, t0 + auth_end));
        path_from = auth_end;
    }
    let rest = &target[path_from..];
    let q = rest.iter().position(|&b| b == b'?');
    let path_end = q.map_or(target.len(), |i| path_from + i);
    head.path = Span::new(t0 + path_from, t0 + path_end);
    if let Some(i) = q {
        head.query = Some(Span::new(t0 + path_from + i + 1, t0 + target.len()));
    }
    Ok(())
}

/// Whether `v` can be an authority as a request names its host (RFC 3986 `host [":" port]`,
/// RFC 9110 §4.2.3): unreserved and sub-delims characters, percent escapes, `:` and the
/// brackets of IP literals, and nothing else — no userinfo (`@`), no path, query or fragment
/// delimiters, no whitespace: a value another parser could split elsewhere.
fn is_authority(v: &[u8]) -> bool {
    v.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b))
}

/// Mark the fields named by `Connection` (other than `close`, `keep-alive`, `upgrade`) as
/// hop-by-hop. `Host` and the framing fields never are: [`parse`] refuses a `Connection` that
/// names them, and this keeps them even so.
fn mark_connection_named(bytes: &[u8], head: &mut RequestHead) {
    let mut names: Vec<Span> = Vec::new();
    for f in head.fields.iter().filter(|f| f.known == Known::Connection) {
        let value = f.value.of(bytes);
        let base = f.value.start as usize;
        for t in value.split(|&b| b == b',') {
            let trimmed = t.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let offset = trimmed.as_ptr() as usize - value.as_ptr() as usize;
            names.push(Span::new(base + offset, base + offset + trimmed.len()));
        }
    }
    for f in head.fields.iter_mut() {
        if f.known.is_end_to_end_framing() {
            continue;
        }
        let name = f.name.of(bytes);
        if names.iter().any(|n| n.of(bytes).eq_ignore_ascii_case(name)) {
            f.named_by_connection = true;
        }
    }
}

/// 505 for an HTTP version other than 1.0 and 1.1 on an HTTP/1 connection.
pub(crate) const VERSION_NOT_SUPPORTED: &[u8] = b"HTTP/1.1 505 HTTP Version Not Supported\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 50\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported: use HTTP/1.1 or 2\n";
/// 405 for `CONNECT`, which a load balancer does not tunnel.
pub(crate) const METHOD_NOT_ALLOWED: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: flotilla\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 46\r\nConnection: close\r\n\r\n405 Method Not Allowed: CONNECT is not served\n";

#[cfg(test)]
mod tests;
