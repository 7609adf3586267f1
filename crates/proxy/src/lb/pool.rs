//! The connections the proxy keeps to one backend: idle HTTP/1.1 keep-alive connections (see
//! [`crate::http1::Pool`]) and, for target groups that speak HTTP/2 or gRPC, one multiplexed
//! HTTP/2 connection.

use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use crate::body::ReqBody;

/// Connections to one backend, shared by every listener that forwards to it.
#[derive(Default)]
pub(crate) struct Pool {
    /// Idle HTTP/1.1 connections, reused by both the HTTP/1 engine and HTTP/2 clients' requests.
    pub(crate) h1: crate::http1::Pool,
    /// The one multiplexed HTTP/2 connection used for target groups that speak HTTP/2 or gRPC.
    pub(crate) h2: Mutex<Option<hyper::client::conn::http2::SendRequest<ReqBody>>>,
    /// HTTP/1.1 connections whose abandoned answer is being read to keep them
    /// ([`crate::http1::salvage`]).
    pub(crate) draining: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("h1", &self.h1).finish()
    }
}
