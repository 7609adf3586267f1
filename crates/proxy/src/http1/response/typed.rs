//! A target's response head for clients that are not HTTP/1: the status as `http` types, the
//! passing fields kept raw for the HTTP/2 writer ([`RawFields`]).

use std::mem::MaybeUninit;

use super::{framing, parse_head, passes, Fields, Invalid, RawHead, RespBody, MAX_FIELDS};

/// A response head as `http` types, for clients that are not HTTP/1 (the body is handed over
/// without its framing, so no framing header but a `Content-Length` passes).
#[derive(Debug)]
pub(crate) struct Typed {
    pub(crate) len: usize,
    /// The status; the header map is left empty for what the proxy adds (the fields the
    /// target sent are in `fields`).
    pub(crate) parts: http::response::Parts,
    pub(crate) fields: RawFields,
    pub(crate) body: RespBody,
    pub(crate) reusable: bool,
}

/// A target's response fields that pass to the client, kept as the head bytes they arrived in:
/// an HTTP/2 client's writer encodes them straight into HPACK. Building an `http::HeaderMap`
/// of them only to read it once cost more than the rest of the exchange's parsing.
#[derive(Debug)]
pub(crate) struct RawFields {
    /// The whole response head.
    head: bytes::Bytes,
    /// Bit `i` set: the head's field `i` passes.
    pass: u128,
    /// Where the passing fields' names and values are in `head` (start and end of each), when
    /// they are few enough to keep here; otherwise the head is parsed again to find them.
    spans: Option<[[u16; 4]; INLINE_FIELDS]>,
    count: u8,
}

/// Passing fields whose places a [`RawFields`] keeps (more are found by parsing again).
const INLINE_FIELDS: usize = 12;

impl RawFields {
    /// The fields of the head `headers` were parsed from, which `head` copies.
    fn new(head: &[u8], headers: &[httparse::Header<'_>], pass: u128) -> RawFields {
        let mut spans = [[0u16; 4]; INLINE_FIELDS];
        let mut count = 0;
        let base = head.as_ptr() as usize;
        let mut fits = pass.count_ones() as usize <= INLINE_FIELDS;
        for (i, h) in headers.iter().enumerate() {
            if !fits || pass & (1 << i) == 0 {
                continue;
            }
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            let span = [name, name + h.name.len(), value, value + h.value.len()];
            match span.map(u16::try_from) {
                [Ok(a), Ok(b), Ok(c), Ok(d)] => {
                    spans[count] = [a, b, c, d];
                    count += 1;
                }
                _ => fits = false,
            }
        }
        RawFields {
            head: bytes::Bytes::copy_from_slice(head),
            pass,
            spans: fits.then_some(spans),
            count: count as u8,
        }
    }

    /// Each passing field in order, its name lowercased as HTTP/2 wants it.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let mut lower = [0u8; 64];
        let mut emit = |name: &[u8], value: &[u8]| match lower.get_mut(..name.len()) {
            Some(buf) => {
                buf.copy_from_slice(name);
                buf.make_ascii_lowercase();
                f(buf, value);
            }
            None => f(&name.to_ascii_lowercase(), value),
        };
        if let Some(spans) = &self.spans {
            for &[a, b, c, d] in &spans[..usize::from(self.count)] {
                let at = |x: u16, y: u16| &self.head[usize::from(x)..usize::from(y)];
                emit(at(a, b), at(c, d));
            }
            return;
        }
        let mut fields: Fields<'_> = [const { MaybeUninit::uninit() }; MAX_FIELDS];
        // The head parsed as complete when it arrived; parsing the same bytes again cannot fail.
        let Ok(Some(raw)) = parse_head(&self.head, &mut fields) else {
            return;
        };
        for (i, h) in raw.headers.iter().enumerate() {
            if self.pass & (1 << i) != 0 {
                emit(h.name.as_bytes(), h.value);
            }
        }
    }
}

/// Parse the response head at the start of `buf` into `http` types. `Ok(None)`: more bytes
/// are needed.
pub(crate) fn parse_typed(buf: &[u8], is_head: bool) -> Result<Option<Typed>, Invalid> {
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
    if status == 101 {
        // These clients cannot switch protocols: what follows a 101 is not HTTP.
        return Err(Invalid);
    }
    let f = framing(status, http11, headers, is_head)?;
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = http::StatusCode::from_u16(status).map_err(|_| Invalid)?;
    let mut pass = 0u128;
    for (i, h) in headers.iter().enumerate() {
        // httparse checked the name is a token and the value: only HTAB, visible ASCII and
        // obs-text (it refuses other control characters and DEL, and obs-fold, as
        // configured), which is what a `HeaderValue` accepts.
        if passes(h.name.as_bytes(), headers, &f, false, false) {
            pass |= 1 << i;
        }
    }
    Ok(Some(Typed {
        len,
        parts,
        fields: RawFields::new(&buf[..len], headers, pass),
        body: f.body,
        reusable: f.reusable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_fields(head: &str) -> Vec<(String, String)> {
        let typed = parse_typed(head.as_bytes(), false)
            .expect("valid head")
            .expect("complete head");
        let mut out = Vec::new();
        typed.fields.for_each(|n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        out
    }

    #[test]
    fn typed_heads_keep_passing_fields_raw_and_lowercased() {
        let long = "X-".to_string() + &"Long".repeat(20);
        let head = format!(
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
             Content-Length: 2\r\n{long}: v\r\n\r\nok"
        );
        let fields = typed_fields(&head);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "server",
                "content-length",
                long.to_ascii_lowercase().as_str()
            ]
        );
        assert_eq!(fields[0].1, "nginx");

        // More passing fields than are kept in place: found by parsing the head again.
        let mut many = String::from("HTTP/1.1 204 No Content\r\nConnection: close\r\n");
        for i in 0..(INLINE_FIELDS + 5) {
            many.push_str(&format!("X-Field-{i}: value {i}\r\n"));
        }
        many.push_str("\r\n");
        let fields = typed_fields(&many);
        assert_eq!(fields.len(), INLINE_FIELDS + 5);
        assert_eq!(
            fields[INLINE_FIELDS + 4],
            ("x-field-16".into(), "value 16".into())
        );

        // httparse refuses these (parse_typed relies on it): control bytes, DEL, obs-fold.
        for bad in ["a\x00b", "a\x01b", "a\x1fb", "a\x7fb", "a\r\n b"] {
            let head = format!("HTTP/1.1 200 OK\r\nX-Bad: {bad}\r\nContent-Length: 0\r\n\r\n");
            assert!(
                parse_typed(head.as_bytes(), false).is_err(),
                "{bad:?} is no header value"
            );
        }
        let ok = "HTTP/1.1 200 OK\r\nX-Ok: a\tb \u{e9}\r\nContent-Length: 0\r\n\r\n";
        assert!(
            matches!(parse_typed(ok.as_bytes(), false), Ok(Some(_))),
            "HTAB and obs-text pass"
        );
    }
}
