//! A stored object's body: small ones as shared bytes on the heap, large ones (from
//! [`FILE_THRESHOLD`] bytes) in an anonymous memory file (`memfd_create`), which plain-HTTP/1
//! viewers get by `sendfile(2)` — the kernel hands the file's pages to the socket without the
//! copy a `write` of heap bytes costs ([`crate::sendfile`]).
//!
//! A memfd lives in the page cache (shmem), never on a disk: reading or sending it cannot
//! block the reactor on I/O, and its bytes are memory, so they count in the store's
//! `cache_size` exactly as heap bodies do. Dropping the last reference closes the file, which
//! frees its pages: eviction and invalidation remove it with the object.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// Bodies from this size up go into a memory file (sendfile pays off above a few pages; a
/// memfd costs a file descriptor, so small objects stay on the heap).
pub const FILE_THRESHOLD: usize = 64 * 1024;

/// A stored body.
#[derive(Debug, Clone)]
pub enum StoredBody {
    /// On the heap, shared with every viewer it is served to.
    Memory(Bytes),
    /// In a memory file.
    File(Arc<FileBody>),
}

/// A body in a memory file; the file closes (and its pages go) when the last holder drops it.
#[derive(Debug)]
pub struct FileBody {
    file: File,
    len: u64,
    tally: Arc<FileTally>,
}

/// How many memory files a store's bodies hold, and their bytes (already inside the store's
/// weight; kept apart to show where the bytes are and to prove files go with their objects).
#[derive(Debug, Default)]
pub struct FileTally {
    files: AtomicU64,
    bytes: AtomicU64,
    sent: AtomicU64,
}

impl FileTally {
    /// Files open and their bytes.
    pub fn get(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Bytes sent from the files by `sendfile`.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl StoredBody {
    /// `bytes` as stored: in a memory file from [`FILE_THRESHOLD`] up (on the heap if the
    /// file cannot be made, e.g. out of descriptors).
    pub fn keep(bytes: Bytes, tally: &Arc<FileTally>) -> StoredBody {
        if bytes.len() < FILE_THRESHOLD {
            return StoredBody::Memory(bytes);
        }
        match FileBody::write(&bytes, tally) {
            Ok(f) => StoredBody::File(Arc::new(f)),
            Err(e) => {
                tracing::debug!(error = %e, len = bytes.len(), "memory file failed: body kept on the heap");
                StoredBody::Memory(bytes)
            }
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            StoredBody::Memory(b) => b.len() as u64,
            StoredBody::File(f) => f.len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole body as bytes (a read for a file; for tests and tools, not the hit path).
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            StoredBody::Memory(b) => Ok(b.clone()),
            StoredBody::File(f) => f.read(0, f.len as usize),
        }
    }
}

impl FileBody {
    fn write(bytes: &[u8], tally: &Arc<FileTally>) -> std::io::Result<FileBody> {
        let fd = memfd_create(c"flotilla-edge", MFdFlags::MFD_CLOEXEC)?;
        let mut file = File::from(fd);
        file.write_all(bytes)?;
        let len = bytes.len() as u64;
        tally.files.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(FileBody {
            file,
            len,
            tally: Arc::clone(tally),
        })
    }

    /// The file (for `sendfile`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counts `n` bytes sent from it by `sendfile`.
    pub(crate) fn sent(&self, n: u64) {
        self.tally.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// `len` bytes from `offset` (a memory file's read copies from the page cache and never
    /// waits on a disk).
    pub fn read(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(len);
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf.freeze())
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        self.tally.files.fetch_sub(1, Ordering::Relaxed);
        self.tally.bytes.fetch_sub(self.len, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_go_to_a_memory_file_and_read_back_the_same() {
        let tally = Arc::new(FileTally::default());
        let small = StoredBody::keep(Bytes::from(vec![7u8; 100]), &tally);
        assert!(matches!(small, StoredBody::Memory(_)));
        let data: Vec<u8> = (0..FILE_THRESHOLD * 3).map(|i| (i % 251) as u8).collect();
        let large = StoredBody::keep(Bytes::from(data.clone()), &tally);
        let StoredBody::File(f) = &large else {
            panic!("a large body is in a file")
        };
        assert_eq!(tally.get(), (1, data.len() as u64));
        assert_eq!(large.to_bytes().unwrap(), data);
        assert_eq!(f.read(10, 5).unwrap(), data[10..15]);
        drop(large);
        assert_eq!(tally.get(), (0, 0), "the file went with the last holder");
    }
}
