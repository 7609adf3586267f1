//! Entry points for the coverage-guided fuzz targets in `fuzz/` (built only with
//! `--cfg fuzzing`, which `bench/fuzz.sh` sets): each takes arbitrary bytes, must never panic,
//! and checks what must hold whatever the bytes — against `httparse` where a second parser
//! can judge (a head Flotilla accepts must be one httparse reads the same way, and what
//! Flotilla writes for the other side must parse back with the same framing), and against
//! itself where input can be fed in pieces (the chunked decoder must not care where reads
//! split the bytes).

use http::header::HeaderValue;

use crate::headers::Forwarded;
use crate::http1::cursor::Cursor;
use crate::http1::head::{self, RequestHead};
use crate::http1::response::{self, ClientSide};
use crate::http1::smuggling::{self, BodyKind};

/// HTTP/1 request heads: the end-of-head scan and the strict parser; what they accept,
/// httparse must read with the same method, target, version and fields; the head rewritten
/// for the target must parse back with the framing the parser decided.
pub fn http1_request(data: &[u8]) {
    let Ok(Some(len)) = smuggling::find_end(data, 0, 64 * 1024) else {
        return;
    };
    let bytes = &data[..len];
    let mut h = RequestHead::default();
    if head::parse(bytes, &mut h).is_err() {
        return;
    }
    let mut fields = [httparse::EMPTY_HEADER; head::MAX_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let status = req.parse(bytes);
    assert!(
        matches!(status, Ok(httparse::Status::Complete(n)) if n == len),
        "accepted by Flotilla, not by httparse: {status:?}"
    );
    assert_eq!(req.method.map(str::as_bytes), Some(h.method.of(bytes)));
    assert_eq!(req.path.map(str::as_bytes), Some(h.target.of(bytes)));
    assert_eq!(req.headers.len(), h.fields.len());
    for (theirs, ours) in req.headers.iter().zip(&h.fields) {
        assert_eq!(theirs.name.as_bytes(), ours.name.of(bytes));
        assert_eq!(theirs.value.trim_ascii(), ours.value.of(bytes));
    }
    let fwd = Forwarded::for_tests("192.0.2.1");
    let mut out = Vec::new();
    crate::http1::rewrite::request_head(&mut out, &h, bytes, &fwd, h.upgrade);
    let mut fields = [httparse::EMPTY_HEADER; head::MAX_FIELDS + 8];
    let mut sent = httparse::Request::new(&mut fields);
    let parsed = sent.parse(&out);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == out.len()),
        "rewritten head does not parse: {parsed:?}"
    );
    assert_eq!(framing_of(sent.headers), framing_kind(h.body));
}

/// The framing a head's fields declare, as a target would read it: chunked, a length, or none
/// (`None` for a contradiction, which must never be written).
fn framing_of(headers: &[httparse::Header<'_>]) -> Option<BodyKind> {
    let mut length = None;
    let mut chunked = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
            if length.replace(n).is_some_and(|m| m != n) {
                return None;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    match (chunked, length) {
        (true, Some(_)) => None,
        (true, None) => Some(BodyKind::Chunked),
        (false, Some(0) | None) => Some(BodyKind::None),
        (false, Some(n)) => Some(BodyKind::Length(n)),
    }
}

fn framing_kind(b: BodyKind) -> Option<BodyKind> {
    Some(match b {
        BodyKind::Length(0) => BodyKind::None,
        other => other,
    })
}

/// Chunked bodies: decoded whole, or in two reads split at a point the first byte picks, the
/// decoder reaches the same verdict and, unless it refuses, consumes the same bytes and
/// yields the same payload.
pub fn chunked(data: &[u8]) {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = decode(body, &[body.len()]);
    let at = usize::from(split) % (body.len() + 1);
    let pieces = decode(body, &[at, body.len()]);
    match (&whole.2, &pieces.2) {
        // Refused either way: where in the bytes it noticed may differ (a split size line is
        // taken in part before its bad byte comes), and nothing is relayed after a refusal.
        (Err(()), Err(())) => {}
        _ => assert_eq!(whole, pieces, "split at {at}"),
    }
}

/// (payload bytes, bytes consumed, done or failed) of a chunked body fed in pieces ending at
/// `ends`.
fn decode(body: &[u8], ends: &[usize]) -> (Vec<u8>, usize, Result<bool, ()>) {
    let mut cursor = Cursor::request(BodyKind::Chunked);
    let mut payload = Vec::new();
    let mut used = 0;
    for &end in ends {
        loop {
            let avail = &body[used..end];
            let mut copy = |a: usize, b: usize| payload.extend_from_slice(&avail[a..b]);
            match cursor.advance(avail, &mut copy) {
                Err(_) => return (payload, used, Err(())),
                Ok(0) => break,
                Ok(n) => used += n,
            }
            if cursor.is_done() {
                return (payload, used, Ok(true));
            }
        }
    }
    (payload, used, Ok(cursor.is_done()))
}

/// Target response heads: what Flotilla accepts and rewrites for the client must parse back
/// (httparse) as one complete head, with the status it read and never both a length and
/// chunked framing.
pub fn http1_response(data: &[u8]) {
    let Some((&flags, head)) = data.split_first() else {
        return;
    };
    let side = ClientSide {
        is_head: flags & 1 != 0,
        http10: flags & 2 != 0,
        close: flags & 4 != 0,
        upgrade: flags & 8 != 0,
        cookie: (flags & 16 != 0).then_some(&b"AWSALB=x; Path=/"[..]),
    };
    let _ = response::parse_framing(head, side.is_head);
    let mut out = Vec::new();
    let Ok(Some(parsed)) = response::parse(head, &side, &mut out) else {
        return;
    };
    assert!(parsed.len <= head.len());
    let mut fields = [httparse::EMPTY_HEADER; head::MAX_FIELDS + 8];
    let mut resp = httparse::Response::new(&mut fields);
    let status = resp.parse(&out);
    assert!(
        matches!(status, Ok(httparse::Status::Complete(n)) if n == out.len()),
        "rewritten answer head does not parse: {status:?}"
    );
    assert_eq!(resp.code, Some(parsed.status));
    assert!(
        framing_of(resp.headers).is_some(),
        "ambiguous framing written"
    );
}

/// HPACK: arbitrary header blocks through the decoder (with a small table, so evictions and
/// size updates happen); and fields the bytes spell, encoded and decoded back unchanged.
pub fn hpack(data: &[u8]) {
    let mut decoder = crate::http2::hpack::Decoder::new(256);
    for block in data.split(|&b| b == 0xff) {
        let mut n = 0usize;
        let _ = decoder.decode(block, &mut |name: &[u8], value: &[u8]| {
            n += name.len() + value.len();
            if n > 1 << 20 {
                return Err(());
            }
            Ok(())
        });
    }
    crate::http2::hpack::round_trip(data);
}

/// HTTP/2: the connection's frame reader (frame heads, padding, SETTINGS, WINDOW_UPDATE,
/// header blocks with CONTINUATION, HPACK, request validation, flow control) on arbitrary
/// bytes after the client preface.
pub fn http2_frames(data: &[u8]) {
    crate::http2::fuzz_frames(data);
}
