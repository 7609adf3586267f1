//! The read buffer of one connection (client or target): bytes read but not yet used, kept
//! between requests so that a pipelined request or a body's first bytes are never lost, and
//! allocated once per connection.

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

impl InBuf {
    pub(crate) fn new() -> InBuf {
        InBuf {
            data: vec![0; INITIAL],
            start: 0,
            end: 0,
        }
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
