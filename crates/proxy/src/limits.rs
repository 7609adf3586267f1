//! Per-listener limits on what clients may send, enforced by the HTTP/1 engine
//! ([`crate::http1`]) and the HTTP/2 server ([`crate::http2`]).

use std::time::Duration;

/// Per-listener limits on what clients may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole request head (request line and headers) must arrive within this time once its
    /// first byte did; otherwise the client gets 408 and the connection is closed (slowloris).
    pub header_read_timeout: Duration,
    /// Largest request head in bytes; a larger one is answered 431 (AWS: 64 KiB total).
    pub max_header_bytes: usize,
    /// Largest request body in bytes, `None` for no limit (as ALB); a larger one is answered
    /// 413.
    pub max_request_body: Option<u64>,
}

impl Default for Limits {
    /// 10 s header read timeout, 64 KiB of headers, unlimited bodies.
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_request_body: None,
        }
    }
}
