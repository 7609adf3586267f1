//! The checks a request's header block passes field by field as HPACK decodes it (RFC 9113
//! §8.2, §8.3): pseudo-header fields, field validity, connection-specific fields, `te`,
//! `content-length`, `host`, cookies and the header list size; and the same for request
//! trailers. A request that fails them is malformed: its stream is reset and nothing reaches a
//! target, so what a target sees is always what the router saw.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};

/// Why a header block was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Invalid {
    /// Malformed (RFC 9113 §8.1.1): the stream is reset.
    Malformed,
    /// Over the header size limit: answered 431 (a request) or reset (trailers).
    TooLarge,
}

/// Fields that describe a connection, which HTTP/2 forbids (RFC 9113 §8.2.2).
fn connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

/// A regular field's name and value as RFC 9113 §8.2.1 allows them: a lowercase token, and a
/// value without NUL, CR or LF that neither starts nor ends with whitespace (`HeaderName` and
/// `HeaderValue` check the rest).
fn valid_field(name: &[u8], value: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    if name.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    if let (Some(first), Some(last)) = (value.first(), value.last()) {
        if matches!(first, b' ' | b'\t') || matches!(last, b' ' | b'\t') {
            return None;
        }
    }
    match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        (Ok(n), Ok(v)) => Some((n, v)),
        _ => None,
    }
}

/// The size a field counts for against SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2).
fn field_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

/// Collects a request's fields as they are decoded.
pub(super) struct RequestBuilder {
    method: Option<Method>,
    scheme: Option<Scheme>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    /// `cookie` fields, joined into one (RFC 9113 §8.2.3) for HTTP/1 targets.
    cookie: Vec<u8>,
    length: Option<u64>,
    /// `host` fields seen: more than one is malformed, as in HTTP/1 (RFC 9112 §3.2).
    hosts: u8,
    size: usize,
    limit: usize,
    invalid: Option<Invalid>,
    regular_seen: bool,
}

impl RequestBuilder {
    /// A request whose fields may take `limit` bytes (counted as HPACK counts them).
    pub(super) fn new(limit: usize) -> RequestBuilder {
        RequestBuilder {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            headers: HeaderMap::new(),
            cookie: Vec::new(),
            length: None,
            hosts: 0,
            size: 0,
            limit,
            invalid: None,
            regular_seen: false,
        }
    }

    fn bad(&mut self, why: Invalid) -> Result<(), ()> {
        if self.invalid != Some(Invalid::TooLarge) {
            self.invalid = Some(why);
        }
        Ok(())
    }

    /// One decoded field. Always `Ok`: decoding must go on to keep the table in step.
    pub(super) fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), ()> {
        self.size += field_size(name, value);
        if self.size > self.limit {
            return self.bad(Invalid::TooLarge);
        }
        if self.invalid.is_some() {
            return Ok(());
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular_seen {
                return self.bad(Invalid::Malformed);
            }
            match pseudo {
                b"method" if self.method.is_none() => match Method::from_bytes(value) {
                    Ok(m) => self.method = Some(m),
                    Err(_) => return self.bad(Invalid::Malformed),
                },
                // `http` and `https` are parsed without allocating.
                b"scheme" if self.scheme.is_none() => match Scheme::try_from(value) {
                    Ok(s) => self.scheme = Some(s),
                    Err(_) => return self.bad(Invalid::Malformed),
                },
                b"authority" if self.authority.is_none() => {
                    self.authority = Some(Bytes::copy_from_slice(value));
                }
                b"path" if self.path.is_none() => self.path = Some(Bytes::copy_from_slice(value)),
                // A repeated, unknown or response pseudo-header field (§8.3).
                _ => return self.bad(Invalid::Malformed),
            }
            return Ok(());
        }
        self.regular_seen = true;
        if connection_specific(name) || (name == b"te" && value != b"trailers") {
            return self.bad(Invalid::Malformed);
        }
        if name == b"cookie" {
            if valid_field(name, value).is_none() {
                return self.bad(Invalid::Malformed);
            }
            if !self.cookie.is_empty() {
                self.cookie.extend_from_slice(b"; ");
            }
            self.cookie.extend_from_slice(value);
            return Ok(());
        }
        if name == b"content-length" {
            match crate::http1::parse_length(value) {
                Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                _ => return self.bad(Invalid::Malformed),
            }
        }
        if name == b"host" {
            self.hosts = self.hosts.saturating_add(1);
            if self.hosts > 1 {
                return self.bad(Invalid::Malformed);
            }
        }
        match valid_field(name, value) {
            Some((n, v)) => {
                self.headers.append(n, v);
                Ok(())
            }
            None => self.bad(Invalid::Malformed),
        }
    }

    /// The request head and its declared length, once the whole block was decoded.
    pub(super) fn finish(mut self) -> Result<(http::request::Parts, Option<u64>), Invalid> {
        if let Some(why) = self.invalid {
            return Err(why);
        }
        let (Some(method), Some(scheme), Some(path)) = (self.method, self.scheme, self.path) else {
            return Err(Invalid::Malformed);
        };
        // CONNECT (tunnels) is not offered over HTTP/2.
        if method == Method::CONNECT {
            return Err(Invalid::Malformed);
        }
        // An origin-form path, or `*` for OPTIONS (§8.3.1): anything else would change the
        // authority or the path once the URI is put back together.
        if path.first() != Some(&b'/') && !(method == Method::OPTIONS && path[..] == b"*"[..]) {
            return Err(Invalid::Malformed);
        }
        let path = PathAndQuery::from_maybe_shared(path).map_err(|_| Invalid::Malformed)?;
        let uri = match self.authority {
            Some(a) => {
                // No userinfo (§8.3.1): `a@b` would route as one host and reach another.
                if a.contains(&b'@') {
                    return Err(Invalid::Malformed);
                }
                let mut p = http::uri::Parts::default();
                p.scheme = Some(scheme);
                p.authority =
                    Some(Authority::from_maybe_shared(a).map_err(|_| Invalid::Malformed)?);
                p.path_and_query = Some(path);
                Uri::from_parts(p).map_err(|_| Invalid::Malformed)?
            }
            None => Uri::from(path),
        };
        if !self.cookie.is_empty() {
            let v = HeaderValue::from_bytes(&self.cookie).map_err(|_| Invalid::Malformed)?;
            self.headers.insert(header::COOKIE, v);
        }
        let mut parts = Request::new(()).into_parts().0;
        parts.method = method;
        parts.uri = uri;
        parts.version = Version::HTTP_2;
        parts.headers = self.headers;
        Ok((parts, self.length))
    }
}

/// Collects a request's trailers: regular fields only, none that frame or route a message
/// (an HTTP/1 target gets them in the chunked trailer section, where they must mean nothing),
/// within the same size limit as the head.
pub(super) struct TrailerBuilder {
    headers: HeaderMap,
    size: usize,
    limit: usize,
    invalid: Option<Invalid>,
}

impl TrailerBuilder {
    pub(super) fn new(limit: usize) -> TrailerBuilder {
        TrailerBuilder {
            headers: HeaderMap::new(),
            size: 0,
            limit,
            invalid: None,
        }
    }

    /// One decoded field. Always `Ok`, as [`RequestBuilder::field`].
    pub(super) fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), ()> {
        self.size += field_size(name, value);
        if self.size > self.limit {
            self.invalid = Some(Invalid::TooLarge);
        }
        if self.invalid.is_some() {
            return Ok(());
        }
        if name.starts_with(b":")
            || connection_specific(name)
            || matches!(name, b"te" | b"content-length" | b"host" | b"trailer")
        {
            self.invalid = Some(Invalid::Malformed);
            return Ok(());
        }
        match valid_field(name, value) {
            Some((n, v)) => {
                self.headers.append(n, v);
            }
            None => self.invalid = Some(Invalid::Malformed),
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<HeaderMap, Invalid> {
        match self.invalid {
            Some(why) => Err(why),
            None => Ok(self.headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(fields: &[(&str, &str)]) -> Result<(http::request::Parts, Option<u64>), Invalid> {
        let mut b = RequestBuilder::new(64 * 1024);
        for (n, v) in fields {
            let _ = b.field(n.as_bytes(), v.as_bytes());
        }
        b.finish()
    }

    const BASE: [(&str, &str); 3] = [(":method", "GET"), (":scheme", "https"), (":path", "/a?b")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn a_well_formed_request_becomes_an_absolute_uri_with_joined_cookies() {
        let (parts, length) = build(&with(&[
            (":authority", "example.com:8443"),
            ("cookie", "a=1"),
            ("x-y", "z"),
            ("cookie", "b=2"),
            ("content-length", "0"),
            ("te", "trailers"),
        ]))
        .unwrap();
        assert_eq!(parts.uri, "https://example.com:8443/a?b");
        assert_eq!(parts.headers["cookie"], "a=1; b=2");
        assert_eq!(parts.headers["x-y"], "z");
        assert_eq!(length, Some(0));
        // Without :authority, the path alone (Host, if any, names the host).
        let (parts, _) = build(&with(&[("host", "h.test")])).unwrap();
        assert_eq!(parts.uri, "/a?b");
        assert_eq!(parts.headers["host"], "h.test");
        let star = [(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")];
        assert!(build(&star).is_ok());
    }

    #[test]
    fn malformed_requests_are_refused() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![(":scheme", "http"), (":path", "/")],
            vec![(":method", "GET"), (":path", "/")],
            vec![(":method", "GET"), (":scheme", "http")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "x/y")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "*")],
            vec![(":method", "CONNECT"), (":authority", "a:443")],
            with(&[(":path", "/again")]),
            with(&[(":method", "POST")]),
            with(&[(":status", "200")]),
            with(&[(":protocol", "websocket")]),
            with(&[("x", "1"), (":authority", "late")]),
            with(&[(":authority", "user@evil.test")]),
            with(&[(":authority", "a/b")]),
            with(&[(":authority", "")]),
            with(&[("X-Upper", "1")]),
            with(&[("connection", "close")]),
            with(&[("keep-alive", "5")]),
            with(&[("proxy-connection", "x")]),
            with(&[("transfer-encoding", "chunked")]),
            with(&[("upgrade", "h2c")]),
            with(&[("te", "gzip")]),
            with(&[("x", " padded")]),
            with(&[("x", "padded\t")]),
            with(&[("x", "a\nb")]),
            with(&[("x", "a\0b")]),
            with(&[("bad name", "1")]),
            with(&[("content-length", "1"), ("content-length", "2")]),
            with(&[("content-length", "1,1")]),
            with(&[("content-length", "-1")]),
            with(&[("host", "a"), ("host", "b")]),
        ];
        for fields in cases {
            assert_eq!(
                build(&fields).err(),
                Some(Invalid::Malformed),
                "{fields:?} must be malformed"
            );
        }
        let (_, length) =
            build(&with(&[("content-length", "7"), ("content-length", "7")])).unwrap();
        assert_eq!(length, Some(7));
    }

    #[test]
    fn the_size_limit_wins_over_malformed_and_bounds_the_fields_kept() {
        let mut b = RequestBuilder::new(1000);
        for (n, v) in BASE {
            let _ = b.field(n.as_bytes(), v.as_bytes());
        }
        let _ = b.field(b"X-Bad", b"1");
        for _ in 0..100_000 {
            let _ = b.field(b"a", b"b");
        }
        assert!(b.headers.len() < 1000 / 32);
        assert_eq!(b.finish().err(), Some(Invalid::TooLarge));
    }

    #[test]
    fn trailers_refuse_pseudo_framing_and_routing_fields_and_are_bounded() {
        for (n, v) in [
            (":path", "/"),
            ("content-length", "5"),
            ("host", "a"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("X-Upper", "1"),
            ("x", " y"),
        ] {
            let mut t = TrailerBuilder::new(1024);
            let _ = t.field(n.as_bytes(), v.as_bytes());
            assert_eq!(t.finish().err(), Some(Invalid::Malformed), "{n}: {v}");
        }
        let mut t = TrailerBuilder::new(1024);
        let _ = t.field(b"grpc-status", b"0");
        assert_eq!(t.finish().unwrap()["grpc-status"], "0");
        let mut t = TrailerBuilder::new(1024);
        for _ in 0..100_000 {
            let _ = t.field(b"a", b"b");
        }
        assert!(t.headers.len() <= 1024 / 32);
        assert_eq!(t.finish().err(), Some(Invalid::TooLarge));
    }
}
