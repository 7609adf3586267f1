//! What routing, stickiness and redirects read of a client request, whichever protocol brought
//! it: the HTTP/1 engine's head, borrowed from its read buffer without building a `HeaderMap`
//! (the hot path), or an HTTP/2 request's `http::request::Parts` (parsed by hyper).

use http::header::HOST;
use http::request::Parts;

/// The parts of a request that listener rules and stickiness look at.
pub(crate) trait RequestView {
    /// The method as sent (`GET`, `POST`, …).
    fn method(&self) -> &str;
    /// The path without the query (`/` for an empty one, `*` for `OPTIONS *`).
    fn path(&self) -> &str;
    /// The query without its `?`, if the target had one.
    fn query(&self) -> Option<&str>;
    /// The host the request is for, with its port if one was given: the authority of an
    /// absolute-form target (which overrides `Host`, RFC 9112 §3.2.2), else the `Host` header.
    fn host_port(&self) -> &str;
    /// The values of every header called `name` (given in lowercase), in order.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

impl RequestView for Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn path(&self) -> &str {
        self.uri.path()
    }

    fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    fn host_port(&self) -> &str {
        self.uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| self.headers.get(HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("")
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(name).iter().map(|v| v.as_bytes())
    }
}
