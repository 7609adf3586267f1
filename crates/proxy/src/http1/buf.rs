//! The read buffer of one connection (client or target): bytes read but not yet used, kept
//! between requests so that a pipelined request or a body's first bytes are never lost.
//!
//! Buffers are held only while there are bytes in them, as nginx does: an idle connection
//! (a keep-alive client between requests, a pooled target connection, an HTTP/2 connection
//! with nothing to read) holds none. A read takes a buffer when it starts and gives it back if
//! it would block with nothing unconsumed; write buffers are given back when their connection
//! goes idle. So memory grows with the connections doing something, not with those open
//! (`bench/idle-memory.sh`, docs/benchmarks.md).
//!
//! Taking and giving back go through a small per-thread store, so neither allocates nor zeroes
//! anything on the hot path (a `Vec` pop and push).

use std::cell::RefCell;
use std::io;

use tokio::io::AsyncRead;

use super::spare::{give_to, take_from, trim_store, Spare, Store};

/// Initial size of a read buffer: a request or response head and small bodies fit in one read.
pub(crate) const INITIAL: usize = 16 * 1024;

/// Bytes read from a connection; `data[start..end]` are not consumed yet. `data` is empty
/// while no buffer is held.
#[derive(Debug)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

thread_local! {
    /// Read buffers of [`INITIAL`] bytes, initialised.
    static SPARE_READ: RefCell<Store<Vec<u8>>> = const { RefCell::new(Store::new()) };
    /// Empty write buffers with their capacity.
    static SPARE_WRITE: RefCell<Store<Vec<u8>>> = const { RefCell::new(Store::new()) };
}

/// Spare read buffers on this thread now (tests).
#[cfg(test)]
pub(crate) fn spare_reads() -> usize {
    SPARE_READ.with(|s| s.borrow().len())
}

/// Trim this thread's buffer stores ([`super::spare`]).
pub(super) fn trim() -> usize {
    trim_store(&SPARE_READ) + trim_store(&SPARE_WRITE)
}

// Buffers (read, write, field lists) taken and not given back on this thread: what the
// idle-connection tests check is zero. Counted in tests only.
#[cfg(test)]
thread_local! {
    static HELD: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

/// Count a buffer taken (`1`) or given back (`-1`); nothing outside tests.
#[inline]
pub(crate) fn note_held(_delta: isize) {
    #[cfg(test)]
    HELD.with(|h| h.set(h.get() + _delta));
}

/// Buffers held on this thread now (tests).
#[cfg(test)]
pub(crate) fn held() -> isize {
    HELD.with(std::cell::Cell::get)
}

/// Let a connection's task run until it waits for its next request (it needs no I/O event
/// to get there, only turns: a bounded number of them); the buffers held on this thread then.
#[cfg(test)]
pub(crate) async fn held_once_waiting() -> isize {
    for _ in 0..1000 {
        if held() == 0 {
            return 0;
        }
        tokio::task::yield_now().await;
    }
    held()
}

/// Give a held vector back to `spare`, emptied (freed instead when it grew past
/// `max_capacity`); nothing when it holds no allocation.
pub(crate) fn give_back_vec<T>(spare: &'static Spare<T>, mut v: Vec<T>, max_capacity: usize) {
    if v.capacity() == 0 {
        return;
    }
    note_held(-1);
    if v.capacity() <= max_capacity {
        v.clear();
        give_to(spare, v);
    }
}

/// Bytes being assembled for one write (a head and the first body bytes). It takes its
/// allocation from the per-thread store at its first mutable use and gives it back on
/// [`OutBuf::release`] (its connection goes idle) or drop; oversized ones are freed.
#[derive(Debug, Default)]
pub(crate) struct OutBuf(Vec<u8>);

/// Capacity of a new write buffer.
const OUT_INITIAL: usize = 4096;

impl OutBuf {
    /// An empty buffer holding no allocation yet.
    pub(crate) fn new() -> OutBuf {
        OutBuf(Vec::new())
    }

    /// Empty it, keeping its allocation (no store round trip for a buffer in use).
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// Give the allocation back, discarding the contents: the connection is idle.
    pub(crate) fn release(&mut self) {
        give_back_vec(&SPARE_WRITE, std::mem::take(&mut self.0), 2 * INITIAL);
    }
}

impl std::ops::Deref for OutBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for OutBuf {
    /// Writing into it takes an allocation from the store if it holds none.
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        if self.0.capacity() == 0 {
            note_held(1);
            self.0 = take_from(&SPARE_WRITE).unwrap_or_else(|| Vec::with_capacity(OUT_INITIAL));
        }
        &mut self.0
    }
}

impl Drop for OutBuf {
    fn drop(&mut self) {
        self.release();
    }
}

impl Drop for InBuf {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl InBuf {
    /// An empty buffer holding no allocation: the first read takes one.
    pub(crate) fn new() -> InBuf {
        InBuf {
            data: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Take a buffer from the store if none is held.
    fn hold(&mut self) {
        if self.data.is_empty() {
            note_held(1);
            self.data = take_from(&SPARE_READ).unwrap_or_else(|| vec![0; INITIAL]);
        }
    }

    /// Give the buffer back if it holds no unconsumed bytes (a grown one is freed): the
    /// connection waits for bytes that may never come, and will take one when they do.
    pub(crate) fn release(&mut self) {
        if self.start == self.end {
            self.give_back();
        }
    }

    fn give_back(&mut self) {
        self.start = 0;
        self.end = 0;
        let data = std::mem::take(&mut self.data);
        if !data.is_empty() {
            note_held(-1);
        }
        if data.len() == INITIAL {
            give_to(&SPARE_READ, data);
        }
    }

    /// Append bytes read elsewhere (the start of a connection handed over from HTTP/1).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.hold();
        if self.data.len() - self.end < bytes.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.data.len() - self.end < bytes.len() {
                self.data.resize(self.end + bytes.len(), 0);
            }
        }
        self.data[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// The unconsumed bytes.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Mark `n` bytes (at most [`InBuf::len`]) as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space after `end`: unconsumed bytes move to the front, or the buffer grows up to
    /// `max`. `false` when it is full.
    fn make_room(&mut self, max: usize) -> bool {
        self.hold();
        if self.end < self.data.len() {
            return true;
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return true;
        }
        if self.data.len() < max {
            let grown = (self.data.len() * 2).min(max);
            self.data.resize(grown, 0);
            return true;
        }
        false
    }

    /// [`InBuf::read_from`] for poll-based callers (bodies handed to hyper). A read that would
    /// block with nothing unconsumed gives the buffer back until bytes arrive.
    pub(crate) fn poll_read_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        io: &mut R,
        max: usize,
    ) -> std::task::Poll<io::Result<usize>> {
        if !self.make_room(max) {
            return std::task::Poll::Ready(Ok(0));
        }
        let mut rb = tokio::io::ReadBuf::new(&mut self.data[self.end..]);
        match std::pin::Pin::new(io).poll_read(cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.end += n;
                std::task::Poll::Ready(Ok(n))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => {
                self.release();
                std::task::Poll::Pending
            }
        }
    }

    /// Read once from `io` into free space, moving unconsumed bytes to the front or growing the
    /// buffer (up to `max` bytes in all) when needed. `Ok(0)` is end of stream — or a buffer
    /// already holding `max` unconsumed bytes, which callers bound beforehand.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        max: usize,
    ) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_from(cx, io, max)).await
    }
}
