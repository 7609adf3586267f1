//! A target's response head, read leniently (as every proxy must, targets being what they are)
//! but never ambiguously, and written back out for the client: hop-by-hop headers dropped, the
//! framing the client will see, stickiness cookie and connection handling added.

use std::mem::MaybeUninit;

mod typed;

pub(crate) use typed::{parse_typed, RawFields, Typed};

/// Most header fields accepted in a target's response (502 beyond).
const MAX_FIELDS: usize = 128;
// `RawFields` marks the passing fields in a `u128`.
const _: () = assert!(MAX_FIELDS <= 128);

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespBody {
    None,
    Length(u64),
    Chunked,
    /// Until the target closes the connection.
    Close,
}

/// What the client side needs to know to write the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientSide<'a> {
    /// The request was `HEAD`: no body whatever the headers say.
    pub(crate) is_head: bool,
    /// The client speaks HTTP/1.0: no chunked encoding, keep-alive only when asked for.
    pub(crate) http10: bool,
    /// The connection closes after this response (the client asked, or the listener stops).
    pub(crate) close: bool,
    /// The request asked to switch protocols (a WebSocket upgrade): only then may the answer
    /// be a 101. To any other request a 101 is invalid: the bytes after it are no longer HTTP,
    /// and passing it on would have the client read them as the answer.
    pub(crate) upgrade: bool,
    /// A `Set-Cookie` value to add (load-balancer stickiness).
    pub(crate) cookie: Option<&'a [u8]>,
}

/// The parsed head and what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Bytes of the head in the buffer.
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) body: RespBody,
    /// The target connection can carry another request once the body was read.
    pub(crate) reusable: bool,
    /// The client connection must close after this response.
    pub(crate) close_client: bool,
    /// The body is chunked but the client is HTTP/1.0: send the data without the framing.
    pub(crate) dechunk: bool,
}

/// The response was not valid HTTP/1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// What a response head says about its body and its connection (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy)]
struct Framing {
    body: RespBody,
    /// The target connection can carry another request.
    reusable: bool,
    /// A `Transfer-Encoding` was sent (it overrides any `Content-Length`).
    coded: bool,
    /// `Connection` names other headers, which are hop-by-hop for this message.
    conn_names: bool,
    /// A 1xx or 204: it has no body and must not say how long one is (RFC 9110 §8.6).
    no_length: bool,
}

fn framing(
    status: u16,
    http11: bool,
    headers: &[httparse::Header<'_>],
    is_head: bool,
) -> Result<Framing, Invalid> {
    let mut length: Option<u64> = None;
    let mut te_chunked: Option<bool> = None;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_names = false;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            for v in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let n = parse_length(v).ok_or(Invalid)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Invalid);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = h
                .value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|t| !t.is_empty());
            te_chunked = Some(last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                } else if !t.is_empty() && !t.eq_ignore_ascii_case(b"upgrade") {
                    conn_names = true;
                }
            }
        }
    }
    let body = if is_head || status < 200 || status == 204 || status == 304 {
        RespBody::None
    } else {
        match (te_chunked, length) {
            (Some(true), _) => RespBody::Chunked,
            (Some(false), _) => RespBody::Close,
            (None, Some(n)) => RespBody::Length(n),
            (None, None) => RespBody::Close,
        }
    };
    let no_length = status < 200 || status == 204;
    let reusable = (if http11 { !conn_close } else { conn_keep_alive })
        && body != RespBody::Close
        // Both framings: RFC 9112 §6.3 lets the coding win, but the connection must close.
        && !(te_chunked.is_some() && length.is_some())
        // Transfer-Encoding in HTTP/1.0: the framing is faulty, close after it (§6.1).
        && (http11 || te_chunked.is_none())
        // A 1xx or 204 that declares a body: none is read (as nginx), and what the target
        // meant to send may follow on the connection.
        && !(no_length && (te_chunked.is_some() || length.is_some_and(|n| n > 0)));
    Ok(Framing {
        body,
        reusable,
        coded: te_chunked.is_some(),
        conn_names,
        no_length,
    })
}

/// Whether a target's header goes on to the client: hop-by-hop headers do not (`Connection`
/// and `Upgrade` only on a 101), framing headers only as the client's framing needs
/// (`keep_chunked`: the chunked coding is passed through).
fn passes(
    name: &[u8],
    headers: &[httparse::Header<'_>],
    f: &Framing,
    switching: bool,
    keep_chunked: bool,
) -> bool {
    if is_one_of(name, &[b"connection", b"upgrade"]) {
        switching
    } else if is_one_of(
        name,
        &[b"keep-alive", b"proxy-connection", b"te", b"trailer"],
    ) {
        false
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        keep_chunked
    } else if name.eq_ignore_ascii_case(b"content-length") {
        !f.coded && !f.no_length
    } else {
        !(f.conn_names
            && headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .flat_map(|h| h.value.split(|&b| b == b','))
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(name)))
    }
}

/// A response head as httparse saw it.
struct RawHead<'h, 'b> {
    len: usize,
    status: u16,
    http11: bool,
    reason: Option<&'b str>,
    headers: &'h [httparse::Header<'b>],
}

/// Room for a head's fields, left uninitialised: httparse writes only the ones it finds, and
/// initialising all of them would write 4 KiB per response.
type Fields<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_FIELDS];

/// Run httparse over `buf`; `Ok(None)` while the head is incomplete.
fn parse_head<'h, 'b>(
    buf: &'b [u8],
    fields: &'h mut Fields<'b>,
) -> Result<Option<RawHead<'h, 'b>>, Invalid> {
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response_with_uninit_headers(&mut resp, buf, fields)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Invalid),
    };
    Ok(Some(RawHead {
        len,
        status: resp.code.ok_or(Invalid)?,
        http11: resp.version == Some(1),
        reason: resp.reason,
        headers: resp.headers,
    }))
}

/// The framing of a response head nobody will read (see [`parse_framing`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Skipped {
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) body: RespBody,
    pub(crate) reusable: bool,
}

/// What the response head at the start of `buf` says about its body and connection, for an
/// answer that is read only to keep its connection. `Ok(None)`: more bytes are needed.
pub(crate) fn parse_framing(buf: &[u8], is_head: bool) -> Result<Option<Skipped>, Invalid> {
    let mut fields: Fields<'_> = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let Some(RawHead {
        len,
        status,
        http11,
        headers,
        ..
    }) = parse_head(buf, &mut fields)?
    else {
        return Ok(None);
    };
    let f = framing(status, http11, headers, is_head)?;
    Ok(Some(Skipped {
        len,
        status,
        body: f.body,
        reusable: f.reusable,
    }))
}

/// Parse the response head at the start of `buf` and, when complete, write the client's head
/// into `out` (cleared first). `Ok(None)`: more bytes are needed. Interim (1xx other than 101)
/// responses are parsed like any other; the caller skips them. A 101 is invalid unless the
/// client asked for an upgrade.
pub(crate) fn parse(
    buf: &[u8],
    side: &ClientSide<'_>,
    out: &mut Vec<u8>,
) -> Result<Option<Parsed>, Invalid> {
    let mut fields: Fields<'_> = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let Some(RawHead {
        len,
        status,
        http11,
        reason,
        headers,
    }) = parse_head(buf, &mut fields)?
    else {
        return Ok(None);
    };
    if status == 101 && !side.upgrade {
        return Err(Invalid);
    }
    let f = framing(status, http11, headers, side.is_head)?;
    let dechunk = f.body == RespBody::Chunked && side.http10;
    let close_client = side.close || f.body == RespBody::Close || dechunk;
    let switching = status == 101;
    let keep_chunked = f.body == RespBody::Chunked && !dechunk;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, status);
    out.push(b' ');
    out.extend_from_slice(reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        let name = h.name.as_bytes();
        if passes(name, headers, &f, switching, keep_chunked) {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(cookie) = side.cookie {
        out.extend_from_slice(b"Set-Cookie: ");
        out.extend_from_slice(cookie);
        out.extend_from_slice(b"\r\n");
    }
    if !switching {
        if close_client {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if side.http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Parsed {
        len,
        status,
        body: f.body,
        reusable: f.reusable,
        close_client,
        dechunk,
    }))
}

fn is_one_of(name: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// A `Content-Length` value: digits only, no overflow.
pub(crate) fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Largest response head accepted from a target (502 beyond).
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Every field of `headers` but those named in `skip`, as `name: value\r\n` lines.
pub(crate) fn push_fields(
    out: &mut Vec<u8>,
    headers: &http::HeaderMap,
    skip: &[http::header::HeaderName],
) {
    for (name, value) in headers {
        if !skip.contains(name) {
            crate::headers::push_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

/// One chunk of a chunked body: its size in hex, written in place (no formatting buffer).
pub(crate) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let mut digits = [0u8; 16];
    let mut n = data.len();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body, with its trailers.
pub(crate) fn push_last_chunk(out: &mut Vec<u8>, trailers: Option<&http::HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(t) = trailers {
        push_fields(out, t, &[]);
    }
    out.extend_from_slice(b"\r\n");
}

/// A status code as three digits (httparse guarantees 100..=999).
pub(crate) fn push_status(out: &mut Vec<u8>, status: u16) {
    let s = status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_their_size_in_hex() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"abc");
        push_chunk(&mut out, &[b'x'; 255]);
        push_last_chunk(&mut out, None);
        let mut want = b"3\r\nabc\r\nff\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 255]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, want);
        let mut big = Vec::new();
        push_chunk(&mut big, &vec![0; 0x1_0000]);
        assert!(big.starts_with(b"10000\r\n"));
    }

    const PLAIN: ClientSide<'static> = ClientSide {
        is_head: false,
        http10: false,
        close: false,
        upgrade: false,
        cookie: None,
    };

    fn run(resp: &str, side: &ClientSide<'_>) -> (Parsed, String) {
        let mut out = Vec::new();
        let p = parse(resp.as_bytes(), side, &mut out).unwrap().unwrap();
        (p, String::from_utf8(out).unwrap())
    }

    #[test]
    fn keep_alive_response_passes_through_without_hop_by_hop_headers() {
        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\nabc";
        let (p, out) = run(resp, &PLAIN);
        assert_eq!(p.body, RespBody::Length(3));
        assert!(p.reusable && !p.close_client && !p.dechunk);
        assert_eq!(p.len, resp.len() - 3);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Keep: 2\r\n\r\n"
        );
    }

    #[test]
    fn framing_rules() {
        let (p, out) = run(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            &PLAIN,
        );
        assert_eq!(p.body, RespBody::Chunked);
        assert!(!p.reusable, "both framings: the target connection closes");
        assert!(out.contains("Transfer-Encoding: chunked") && !out.contains("Content-Length"));
        let (p, out) = run("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", &PLAIN);
        assert_eq!(p.body, RespBody::Close);
        assert!(!p.reusable && p.close_client);
        assert!(out.ends_with("Connection: close\r\n\r\n"));
        let head = ClientSide {
            is_head: true,
            ..PLAIN
        };
        let (p, _) = run("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &head);
        assert_eq!(p.body, RespBody::None);
        let (p, _) = run(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            &PLAIN,
        );
        assert_eq!(p.body, RespBody::None);
        let (p, _) = run("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &PLAIN);
        assert!(!p.reusable, "HTTP/1.0 without keep-alive");
        let (p, _) = run(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            &PLAIN,
        );
        assert!(
            !p.reusable,
            "HTTP/1.0 with Transfer-Encoding: faulty framing, close"
        );
        let (p, out) = run(
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            &PLAIN,
        );
        assert_eq!(p.body, RespBody::None);
        assert!(!p.reusable, "a 204 that declares a body");
        assert!(!out.contains("Content-Length"), "{out}");
        let (p, _) = run(
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            &PLAIN,
        );
        assert!(p.reusable);
        let (p, out) = run(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            &PLAIN,
        );
        assert!(p.reusable && p.body == RespBody::None);
        assert!(out.contains("Content-Length: 5"), "a 304 keeps it: {out}");
        let mut out = Vec::new();
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &PLAIN,
                &mut out
            ),
            Err(Invalid)
        );
        assert_eq!(parse(b"garbage\r\n\r\n", &PLAIN, &mut out), Err(Invalid));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nX: a", &PLAIN, &mut out)
                .unwrap()
                .map(|p| p.len),
            None
        );
    }

    #[test]
    fn http10_clients_get_chunked_bodies_unframed_and_keep_alive_when_asked() {
        let old = ClientSide {
            http10: true,
            ..PLAIN
        };
        let (p, out) = run(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &old,
        );
        assert!(p.dechunk && p.close_client);
        assert!(!out.contains("Transfer-Encoding"), "{out}");
        let (p, out) = run("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", &old);
        assert!(!p.close_client);
        assert!(out.ends_with("Connection: keep-alive\r\n\r\n"), "{out}");
    }

    #[test]
    fn cookie_and_switching_protocols() {
        let side = ClientSide {
            cookie: Some(b"AWSALB=x; Path=/"),
            ..PLAIN
        };
        let (_, out) = run("HTTP/1.1 204 No Content\r\n\r\n", &side);
        assert!(out.contains("Set-Cookie: AWSALB=x; Path=/\r\n"), "{out}");
        let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n";
        let upgrade = ClientSide {
            upgrade: true,
            ..PLAIN
        };
        let (p, out) = run(switching, &upgrade);
        assert_eq!(p.status, 101);
        assert!(out.contains("Upgrade: websocket") && out.contains("Connection: Upgrade"));
        let mut out = Vec::new();
        assert_eq!(
            parse(switching.as_bytes(), &PLAIN, &mut out),
            Err(Invalid),
            "a 101 to a request that asked for no upgrade"
        );
    }
}
