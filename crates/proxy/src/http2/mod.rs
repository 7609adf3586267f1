//! The HTTP/2 server of application load balancer listeners (RFC 9113), for clients that
//! negotiate `h2` over TLS or open a plain connection with the h2c preface.
//!
//! One task per connection reads and writes the frames itself and polls every stream's
//! exchange with its target as one of its futures, so a request costs no task, channel or
//! wake-up beyond the exchange's own I/O. Header blocks are (de)compressed by [`hpack`].

mod conn;
mod exchange;
mod frame;
pub(crate) mod hpack;
mod recv;
mod request;
pub(crate) mod upstream;

pub(crate) use conn::serve;
pub(crate) use frame::PREFACE;
pub(crate) use recv::RecvBody;
