//! The data plane's tracing spans: one per client connection (`conn`), per request (`request`,
//! HTTP/1 and each HTTP/2 stream) and per TCP flow (`flow`), so that a log line inside says
//! which client and request it belongs to.
//!
//! They are `debug` spans with their own target, [`TARGET`]: at the default `info` level a
//! span costs the request one check of its call site's cached interest, and its fields are
//! not even evaluated. `RUST_LOG=info,flotilla::span=debug` turns them on (and only them);
//! every log line in a connection or request then carries its fields. Fields are values, not
//! formatted messages: a subscriber formats them only if it keeps the span.

use std::net::SocketAddr;

use tracing::Span;

/// The target of every data-plane span.
pub(crate) const TARGET: &str = "flotilla::span";

/// A client connection of an HTTP listener.
pub(crate) fn conn(client: SocketAddr, listener: SocketAddr, tls: bool) -> Span {
    tracing::debug_span!(target: TARGET, "conn", %client, %listener, tls)
}

/// One HTTP/1 request.
pub(crate) fn request(method: &str, path: &str) -> Span {
    tracing::debug_span!(target: TARGET, "request", method, path)
}

/// One request on HTTP/2 stream `stream`.
pub(crate) fn stream(stream: u32, method: &str, path: &str) -> Span {
    tracing::debug_span!(target: TARGET, "request", stream, method, path)
}

/// A TCP flow of a network load balancer listener.
pub(crate) fn flow(client: SocketAddr, listener: SocketAddr) -> Span {
    tracing::debug_span!(target: TARGET, "flow", %client, %listener)
}
