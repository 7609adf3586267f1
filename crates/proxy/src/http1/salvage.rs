//! Target connections whose exchange was abandoned half-way — an HTTP/2 client reset its
//! stream, or went away — are kept when that is cheap: the rest of the answer is read and
//! dropped in the background, and the connection goes back to the pool.
//!
//! Closing them instead made every cancelled request cost the target a new connection: a client
//! opening a stream and resetting it soon after, reconnecting to start each time with a fresh
//! reset budget (a "slow rapid reset"), had the proxy open one target connection per request.
//! A connection is kept only if its request went out whole (the target expects nothing more of
//! it), its answer's framing lets it carry another request, at most [`MAX_LEFT`] bytes of that
//! answer are left to read, and all of it comes within the idle timeout; and at most
//! [`MAX_DRAINING`] connections per target are being drained at once. Anything else closes it,
//! as before.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buf::INITIAL;
use super::cursor::Cursor;
use super::response::{self, MAX_RESPONSE_HEAD};
use super::upstream::UpConn;
use crate::lb::target_group::Backend;

/// Most bytes of an abandoned answer read to keep its connection (beyond, it is closed).
const MAX_LEFT: usize = 64 * 1024;

/// Connections per target being drained at once (beyond, an abandoned one is closed).
const MAX_DRAINING: usize = 64;

/// Where the abandoned exchange stood.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Left {
    /// The answer's head had not come (`is_head`: the request was a `HEAD`).
    Head { is_head: bool },
    /// The answer's body was being read.
    Body(Cursor),
}

/// Keep `conn` to `backend` if the rest of its answer (`left`) is cheap to read: a task reads
/// and drops it, then pools the connection. Called when the exchange is dropped, so it must
/// not block: it spawns, or lets the connection close.
pub(crate) fn salvage(conn: UpConn, left: Left, backend: &Arc<Backend>, idle: Duration) {
    if let Left::Body(Cursor::Length(n)) = left {
        if n > MAX_LEFT as u64 {
            return;
        }
    }
    if matches!(left, Left::Body(Cursor::UntilClose)) {
        return;
    }
    let draining = &backend.pool.draining;
    if draining.fetch_add(1, Ordering::AcqRel) >= MAX_DRAINING {
        draining.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let guard = Draining(Arc::clone(backend));
    // Dropped outside a runtime (at shutdown): the connection simply closes.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let mut conn = conn;
            let read = tokio::time::timeout(idle, read_to_end(&mut conn, left)).await;
            if read == Ok(true) {
                guard.0.pool.h1.put(conn, idle, Instant::now());
            }
            drop(guard);
        });
    }
}

/// Counts a connection as being drained for its backend while it lives.
struct Draining(Arc<Backend>);

impl Drop for Draining {
    fn drop(&mut self) {
        self.0.pool.draining.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Read the rest of the answer on `conn` (from `left`) and drop it; `true` when it ended where
/// its framing says, the connection can carry another request and nothing follows it.
async fn read_to_end(conn: &mut UpConn, mut left: Left) -> bool {
    let mut budget = MAX_LEFT;
    loop {
        match &mut left {
            Left::Head { is_head } => {
                if !conn.buf.is_empty() {
                    match response::parse_framing(conn.buf.filled(), *is_head) {
                        Ok(Some(f)) if (100..200).contains(&f.status) && f.status != 101 => {
                            conn.buf.consume(f.len);
                            continue;
                        }
                        Ok(Some(f)) if f.reusable && f.status != 101 => {
                            conn.buf.consume(f.len);
                            left = Left::Body(Cursor::response(f.body));
                            continue;
                        }
                        Ok(None) if conn.buf.len() < MAX_RESPONSE_HEAD => {}
                        _ => return false,
                    }
                }
            }
            Left::Body(cursor) => {
                let Ok(used) = cursor.advance(conn.buf.filled(), &mut |_, _| {}) else {
                    return false;
                };
                conn.buf.consume(used);
                if cursor.is_done() {
                    return conn.buf.is_empty();
                }
                if matches!(cursor, Cursor::UntilClose) {
                    return false;
                }
            }
        }
        match conn.buf.read_from(&mut conn.stream, INITIAL).await {
            Ok(n) if n > 0 && n <= budget => budget -= n,
            _ => return false,
        }
    }
}
