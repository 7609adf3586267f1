//! The read buffer of one connection (client or target): bytes read but not yet used, kept
//! between requests so that a pipelined request or a body's first bytes are never lost.
//!
//! Buffers are recycled through a small per-thread store, so a short connection (one request,
//! `Connection: close`) neither allocates nor zeroes its buffers.

use std::cell::RefCell;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Initial size of a read buffer: a request or response head and small bodies fit in one read.
pub(crate) const INITIAL: usize = 16 * 1024;

/// Bytes read from a connection; `data[start..end]` are not consumed yet.
#[derive(Debug)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

/// Most spare buffers kept per thread (of each kind).
const SPARE_MAX: usize = 256;

thread_local! {
    /// Read buffers of [`INITIAL`] bytes, initialised.
    static SPARE_READ: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// Empty write buffers with their capacity.
    static SPARE_WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_from(spare: &'static std::thread::LocalKey<RefCell<Vec<Vec<u8>>>>) -> Option<Vec<u8>> {
    spare.with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
}

fn give_to(spare: &'static std::thread::LocalKey<RefCell<Vec<Vec<u8>>>>, buf: Vec<u8>) {
    // During thread teardown the store may be gone: then the buffer is simply freed.
    let _ = spare.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.len() < SPARE_MAX {
                s.push(buf);
            }
        }
    });
}

/// Bytes being assembled for one write (a head and the first body bytes); its allocation is
/// recycled when the connection ends (oversized ones are freed).
#[derive(Debug)]
pub(crate) struct OutBuf(Vec<u8>);

impl OutBuf {
    pub(crate) fn new() -> OutBuf {
        OutBuf(take_from(&SPARE_WRITE).unwrap_or_else(|| Vec::with_capacity(4096)))
    }
}

impl std::ops::Deref for OutBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for OutBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for OutBuf {
    fn drop(&mut self) {
        if self.0.capacity() <= 2 * INITIAL {
            let mut buf = std::mem::take(&mut self.0);
            buf.clear();
            give_to(&SPARE_WRITE, buf);
        }
    }
}

impl Drop for InBuf {
    fn drop(&mut self) {
        if self.data.len() == INITIAL {
            give_to(&SPARE_READ, std::mem::take(&mut self.data));
        }
    }
}

impl InBuf {
    pub(crate) fn new() -> InBuf {
        let data = take_from(&SPARE_READ).unwrap_or_else(|| vec![0; INITIAL]);
        InBuf {
            data,
            start: 0,
            end: 0,
        }
    }

    /// Append bytes read elsewhere (the start of a connection handed over from HTTP/1).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
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

    /// [`InBuf::read_from`] for poll-based callers (bodies handed to hyper).
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
            std::task::Poll::Pending => std::task::Poll::Pending,
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
        if !self.make_room(max) {
            return Ok(0);
        }
        let n = io.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
