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

/// A request as either engine holds it, for code that takes both without being generic (the
/// [`crate::lb::Routing`] trait object): a view that dispatches to the one it wraps.
#[derive(Clone, Copy)]
pub(crate) enum Req<'a> {
    /// The HTTP/1 engine's head, borrowed from its read buffer.
    Head(&'a crate::http1::Request<'a>),
    /// An HTTP/2 request's parts.
    Parts(&'a Parts),
}

impl RequestView for Req<'_> {
    fn method(&self) -> &str {
        match self {
            Req::Head(r) => r.method(),
            Req::Parts(r) => RequestView::method(*r),
        }
    }

    fn path(&self) -> &str {
        match self {
            Req::Head(r) => r.path(),
            Req::Parts(r) => r.path(),
        }
    }

    fn query(&self) -> Option<&str> {
        match self {
            Req::Head(r) => r.query(),
            Req::Parts(r) => r.query(),
        }
    }

    fn host_port(&self) -> &str {
        match self {
            Req::Head(r) => r.host_port(),
            Req::Parts(r) => r.host_port(),
        }
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        match self {
            Req::Head(r) => Either::A(r.header_values(name)),
            Req::Parts(r) => Either::B(r.header_values(name)),
        }
    }
}

/// One of two iterators of the same items.
enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}
