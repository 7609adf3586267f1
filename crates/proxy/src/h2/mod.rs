//! Pieces of the HTTP/2 server: header compression ([`hpack`]) so far.

pub(crate) mod hpack;
