//! The HTTP/1 engine of application load balancer listeners.
//!
//! HTTP/1.x clients, nearly all of the traffic a load balancer sees, are served here (HTTP/2
//! ones by [`crate::http2`]), because a proxy needs less than a general HTTP library and can
//! do it with fewer system calls and copies: the head is parsed in place (strictly, see
//! [`smuggling`]) and routed without building a `HeaderMap`; the request head for the target
//! is written from the client's bytes; bodies are relayed as they are framed instead of
//! being decoded and re-encoded; target connections are plain sockets owned by the client
//! connection's task for one exchange, so no connection task, channel or wake-up sits between
//! the client and the target. Which target, and whether to try another, is the forwarding
//! path's choice ([`crate::lb::forwarding`]). This module also holds the HTTP/1 client side
//! used for HTTP/2 clients' requests ([`client`], [`forward`]) and the target connection pool
//! ([`upstream`]).

pub(crate) mod buf;
mod chunked;
pub(crate) mod client;
mod conn;
pub(crate) mod cursor;
mod deadline;
pub(crate) mod forward;
pub(crate) mod head;
pub(crate) mod response;
pub(crate) mod rewrite;
pub(crate) mod salvage;
mod slot;
pub(crate) mod smuggling;
pub(crate) mod spare;
mod upstream;

pub(crate) use buf::{InBuf, OutBuf};
pub(crate) use conn::serve;
pub(crate) use deadline::Deadline;
pub(crate) use head::Request;
pub(crate) use response::{parse_length, RawFields, Typed};
pub(crate) use upstream::{checkout, ConnectError, Pool, UpConn, MAX_STALE};
