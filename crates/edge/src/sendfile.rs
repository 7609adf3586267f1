//! Zero-copy hits for plain HTTP/1 viewers: a body kept in a memory file goes to the socket
//! by `sendfile(2)` while hyper still frames the answer (head, `Content-Length`, keep-alive,
//! pipelining).
//!
//! The seam: hyper writes a body by handing its frames' bytes to the connection's stream in
//! order. For a viewer on a [`Lane`], a file body yields frames that point into
//! [`PLACEHOLDER`] (never read) and queues on the lane where their bytes really are (file,
//! offset, length). [`SendfileStream`], the connection's stream, writes ordinary bytes with
//! `writev` and, when the next slice to write lies in the placeholder, `sendfile`s that many
//! bytes of the lane's first segment instead. hyper only ever sees byte counts, so a partial
//! `sendfile` advances both sides alike. A placeholder slice with nothing queued fails the
//! connection rather than sending zeros.
//!
//! Only HTTP/1 answers on plain TCP take the lane (the listener sets it per request):
//! hyper's HTTP/1 writer queues body frames for `writev` as they are (the builder forces
//! that strategy) where TLS and HTTP/2 copy them into records or frames, so those get the
//! file's bytes read into memory instead.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::store::FileBody;

/// The largest frame a file body yields on a lane (and the size of the placeholder, which
/// is never written, so it stays untouched virtual memory): one frame, one `sendfile` call
/// for as much as the socket takes, for most objects.
pub const LANE_CHUNK: usize = 4 * 1024 * 1024;

/// Stands in for file bytes in hyper's write queue; only its address is ever used.
static PLACEHOLDER: [u8; LANE_CHUNK] = [0; LANE_CHUNK];

/// `len` (≤ [`LANE_CHUNK`]) placeholder bytes.
pub(crate) fn placeholder(len: usize) -> bytes::Bytes {
    bytes::Bytes::from_static(&PLACEHOLDER[..len.min(LANE_CHUNK)])
}

fn is_placeholder(b: &[u8]) -> bool {
    !b.is_empty() && PLACEHOLDER.as_ptr_range().contains(&b.as_ptr())
}

/// File bytes queued to follow, in write order.
struct Segment {
    file: Arc<FileBody>,
    offset: u64,
    len: u64,
}

/// One viewer connection's queue of file segments, shared by its answers' bodies (which
/// push) and its stream (which sends).
#[derive(Clone, Default)]
pub struct Lane(Arc<Mutex<VecDeque<Segment>>>);

impl Lane {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Segment>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `len` bytes of `file` from `offset`; the caller yields [`placeholder`] bytes
    /// of the same length as the body frame.
    pub(crate) fn push(&self, file: &Arc<FileBody>, offset: u64, len: u64) {
        self.queue().push_back(Segment {
            file: Arc::clone(file),
            offset,
            len,
        });
    }
}

/// A viewer's TCP stream that sends placeholder slices from the [`Lane`]'s files.
pub struct SendfileStream {
    tcp: TcpStream,
    lane: Lane,
}

impl SendfileStream {
    /// Wraps `tcp`; answers on `lane` may carry file bodies.
    pub fn new(tcp: TcpStream, lane: Lane) -> SendfileStream {
        SendfileStream { tcp, lane }
    }

    /// Sends up to `max` bytes of the lane's first segment.
    fn poll_sendfile(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        loop {
            let (file, mut offset, n) = {
                let q = self.lane.queue();
                let Some(s) = q.front() else {
                    return Poll::Ready(Err(io::Error::other(
                        "file body out of step with its lane",
                    )));
                };
                (
                    Arc::clone(&s.file),
                    s.offset as i64,
                    s.len.min(max as u64) as usize,
                )
            };
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                nix::sys::sendfile::sendfile(&self.tcp, file.file(), Some(&mut offset), n)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(k) => {
                    file.sent(k as u64);
                    let mut q = self.lane.queue();
                    if let Some(s) = q.front_mut() {
                        s.offset += k as u64;
                        s.len -= k as u64;
                        if s.len == 0 {
                            q.pop_front();
                        }
                    }
                    return Poll::Ready(Ok(k));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl SendfileStream {
    /// `writev` with `MSG_MORE`: the kernel waits for the `sendfile` that follows.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use nix::sys::socket::{sendmsg, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                sendmsg::<SockaddrStorage>(
                    self.tcp.as_raw_fd(),
                    bufs,
                    &[],
                    MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if is_placeholder(buf) {
            return self.poll_sendfile(cx, buf.len());
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs.iter().position(|b| is_placeholder(b)) {
            Some(0) => self.poll_sendfile(cx, bufs[0].len()),
            // The bytes in front (a head) first, held back (MSG_MORE) to leave in one
            // segment with the file's first bytes, which follow on the next call.
            Some(i) => self.poll_send_more(cx, &bufs[..i]),
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
