//! Header rewriting between client and target (AWS ALB §3.1): hop-by-hop headers are dropped in
//! both directions, `X-Forwarded-*` headers are added toward the target.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Uri;
use std::net::IpAddr;

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The `X-Forwarded-*` values of one client connection's requests: its client's address
/// (written as text where a head is written; no connection keeps it as text) and its
/// listener's port and protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded<'a> {
    /// The client's IP address.
    pub(crate) client: IpAddr,
    /// The listener port the client connected to.
    pub(crate) port: &'a HeaderValue,
    /// `http` or `https`: the listener's protocol, for `X-Forwarded-Proto`.
    pub(crate) proto: &'a HeaderValue,
}

impl Forwarded<'static> {
    /// A client at `client` on a plain-HTTP listener on port 8080 (tests and fuzzing).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn for_tests(client: &str) -> Forwarded<'static> {
        static PORT: HeaderValue = HeaderValue::from_static("8080");
        static PROTO: HeaderValue = HeaderValue::from_static("http");
        Forwarded {
            client: client.parse().unwrap_or(IpAddr::from([192, 0, 2, 1])),
            port: &PORT,
            proto: &PROTO,
        }
    }
}

/// A client's IP address as an `X-Forwarded-For` value (the paths that edit a header map;
/// heads written as bytes take [`push_ip`]).
fn client_ip_value(ip: IpAddr) -> HeaderValue {
    let mut text = Vec::with_capacity(16);
    push_ip(&mut text, ip);
    // Digits, dots, colons and hex letters are always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Write `ip` as text. IPv4 addresses are written digit by digit: this runs for every request
/// written to a target, and `fmt` costs many times as much.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing into a vector cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// Remove hop-by-hop headers, including every header named by `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Named headers are collected first: the map cannot be edited while it is read.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && !t.eq_ignore_ascii_case("close")
                    && !t.eq_ignore_ascii_case("keep-alive")
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            // Never let a client make us drop the target-visible Host.
            .filter(|n| *n != header::HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Rewrite a client's request head for the target.
pub(crate) fn prepare_request(uri: &mut Uri, headers: &mut HeaderMap, fwd: &Forwarded<'_>) {
    strip_hop_by_hop(headers);
    // The listener already answered any `Expect: 100-continue`; the target must not wait for it.
    headers.remove(header::EXPECT);

    // Targets get origin-form; an absolute-form request's authority becomes the Host.
    if uri.scheme().is_some() || uri.authority().is_some() {
        if let Some(authority) = uri.authority() {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(header::HOST, host);
            }
        }
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
        *uri = path;
    }

    append_forwarded_for(headers, fwd.client);
    headers.insert(X_FORWARDED_PROTO.clone(), fwd.proto.clone());
    headers.insert(X_FORWARDED_PORT.clone(), fwd.port.clone());
}

/// The header lines of `headers` as [`prepare_request`] would leave them (with `skip` left
/// out too), written straight into an HTTP/1 head in one pass instead of editing the map: the
/// path of HTTP/2 clients to HTTP/1 targets, whose map is dropped right after. Returns `false`,
/// having written nothing, when a `Connection` field may name further headers to drop; the
/// caller then edits the map with [`prepare_request`].
pub(crate) fn push_forwarded_fields(
    out: &mut Vec<u8>,
    uri: &Uri,
    headers: &HeaderMap,
    fwd: &Forwarded<'_>,
    skip: &[HeaderName],
) -> bool {
    if headers.contains_key(header::CONNECTION) {
        return false;
    }
    // An absolute-form request's authority becomes the Host.
    let authority = uri.authority();
    if let Some(authority) = authority {
        push_line(out, b"host", authority.as_str().as_bytes());
    }
    let mut forwarded_for = false;
    for (name, value) in headers {
        if *name == X_FORWARDED_FOR {
            forwarded_for = true;
            continue;
        }
        let dropped = HOP_BY_HOP.contains(name)
            || *name == header::EXPECT
            || *name == X_FORWARDED_PROTO
            || *name == X_FORWARDED_PORT
            || (authority.is_some() && *name == header::HOST)
            || skip.contains(name);
        if !dropped {
            push_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    // The map is searched for the client's list only when the loop saw one.
    let existing = forwarded_for.then(|| headers.get_all(&X_FORWARDED_FOR));
    let values = existing.iter().flat_map(|all| all.iter());
    push_forwarded_lines(out, values.map(HeaderValue::as_bytes), fwd);
    true
}

/// The `X-Forwarded-*` lines of an HTTP/1 head toward a target: `X-Forwarded-For` in ALB's
/// `append` mode (the client's non-empty values, then the client's own address) and the
/// listener's protocol and port. Both HTTP/1 heads written without a map use it: the engine's
/// and those of HTTP/2 clients.
pub(crate) fn push_forwarded_lines<'a>(
    out: &mut Vec<u8>,
    existing: impl Iterator<Item = &'a [u8]>,
    fwd: &Forwarded<'_>,
) {
    out.extend_from_slice(b"X-Forwarded-For: ");
    push_forwarded_for(out, existing, fwd.client);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(fwd.proto.as_bytes());
    out.extend_from_slice(b"\r\nX-Forwarded-Port: ");
    out.extend_from_slice(fwd.port.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An `X-Forwarded-For` value in `append` mode: `existing`'s non-empty entries, then `client`.
fn push_forwarded_for<'a>(
    out: &mut Vec<u8>,
    existing: impl Iterator<Item = &'a [u8]>,
    client: IpAddr,
) {
    for v in existing {
        let v = v.trim_ascii();
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    push_ip(out, client);
}

/// One `name: value\r\n` line of an HTTP/1 head.
pub(crate) fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `append` mode of ALB: add the client IP to the end of any existing list, or create it.
fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let mut existing = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if existing.peek().is_none() {
        headers.insert(X_FORWARDED_FOR.clone(), client_ip_value(client));
        return;
    }
    let mut list: Vec<u8> = Vec::with_capacity(64);
    push_forwarded_for(&mut list, existing.map(HeaderValue::as_bytes), client);
    let value = HeaderValue::from_bytes(&list)
        // Cannot happen (built from valid values), but never fail a request over it.
        .unwrap_or_else(|_| client_ip_value(client));
    headers.insert(X_FORWARDED_FOR.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd() -> Forwarded<'static> {
        Forwarded::for_tests("127.0.0.1")
    }

    #[test]
    fn strips_connection_named_and_fixed_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-foo").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::TE).is_none());
        assert_eq!(h.get("x-keep").unwrap(), "yes");
    }

    #[test]
    fn client_ips_are_written_as_text() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.1.100",
        ] {
            let v = client_ip_value(ip.parse().expect("an address"));
            assert_eq!(v.to_str().expect("ascii"), ip);
        }
        let v = client_ip_value("::1".parse().expect("an address"));
        assert_eq!(v.to_str().expect("ascii"), "::1");
        let mut out = Vec::new();
        push_ip(&mut out, "2001:db8::7".parse().expect("an address"));
        assert_eq!(out, b"2001:db8::7");
    }

    #[test]
    fn appends_to_existing_xff() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        let mut uri = Uri::from_static("/a?b=c");
        prepare_request(&mut uri, &mut h, &fwd());
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "1.1.1.1, 2.2.2.2, 127.0.0.1"
        );
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "8080");
        assert_eq!(uri, "/a?b=c");
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let mut h = HeaderMap::new();
        let mut uri: Uri = "http://example.com:81/x?y".parse().unwrap();
        prepare_request(&mut uri, &mut h, &fwd());
        assert_eq!(uri, "/x?y");
        assert_eq!(h.get(header::HOST).unwrap(), "example.com:81");
    }
}
