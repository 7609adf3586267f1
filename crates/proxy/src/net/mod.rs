//! The network edge of HTTP listeners: accepting client connections ([`accept`]), TLS
//! ([`tls`]), the end-of-pass write batching ([`pass`]), graceful shutdown ([`drain`]) and the
//! listener loop that hands each connection to an engine ([`listener`]).

pub(crate) mod accept;
pub(crate) mod drain;
pub(crate) mod listener;
pub(crate) mod pass;
pub mod tls;
