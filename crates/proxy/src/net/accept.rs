//! Accepting client connections without registering them with the reactor until they would
//! block.
//!
//! A short connection (one request, `Connection: close`) usually has its request waiting by
//! the time it is accepted and takes its answer without blocking; registering its socket with
//! epoll and removing it again would be two system calls of the dozen it costs. So accepted
//! sockets start unregistered ([`Sock::Raw`]): reads and writes are tried directly, and only a
//! `WouldBlock` registers the socket with tokio, once, for the rest of its life (HAProxy calls
//! this speculative I/O).
//!
//! For that to be the usual case, HTTP listeners ask the kernel to defer the accept until the
//! client's first bytes are in (`TCP_DEFER_ACCEPT`, [`defer_accept`]): without it, a client
//! on a fast path is accepted between its handshake and its request, so nearly every short
//! connection would block on its first read and be registered and deregistered after all.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A listening socket whose connections are accepted unregistered.
pub(crate) struct Acceptor {
    inner: AsyncFd<mio::net::TcpListener>,
    /// Whether accepted sockets come with `TCP_NODELAY` from the listener ([`NODELAY_UNKNOWN`]
    /// until the first one is looked at).
    nodelay: AtomicU8,
}

/// The first accepted socket has not been looked at yet.
const NODELAY_UNKNOWN: u8 = 0;
/// Accepted sockets inherit `TCP_NODELAY` from the listener (Linux): nothing to set.
const NODELAY_INHERITED: u8 = 1;
/// Each accepted socket needs its own `setsockopt`.
const NODELAY_PER_SOCKET: u8 = 2;

impl Acceptor {
    /// Take over a tokio listener. Its protocol must be one whose client speaks first (HTTP,
    /// TLS): accepts are deferred until the client's first bytes are in.
    // One of the crate's two `unsafe` blocks (the other is `defer_accept`): tokio's
    // `AsyncFd::register` asks the caller to vouch that the descriptor stays open while
    // registered.
    #[allow(unsafe_code)]
    pub(crate) fn new(listener: tokio::net::TcpListener) -> io::Result<Acceptor> {
        let std = listener.into_std()?;
        if let Err(e) = defer_accept(&std) {
            tracing::debug!(error = %e, "TCP_DEFER_ACCEPT on the listening socket");
        }
        // Linux copies `TCP_NODELAY` into every accepted socket: one `setsockopt` here saves
        // one per connection (checked on the first connection, see `set_nodelay`).
        if let Err(e) = socket2::SockRef::from(&std).set_tcp_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on the listening socket");
        }
        let mio = mio::net::TcpListener::from_std(std);
        // SAFETY: the listener is moved into the `AsyncFd`, which owns it until it is dropped
        // (deregistering first); nothing else holds or closes its descriptor.
        let inner = unsafe { AsyncFd::register(mio)? };
        Ok(Acceptor {
            inner,
            nodelay: AtomicU8::new(NODELAY_UNKNOWN),
        })
    }

    /// Make sure an accepted socket has `TCP_NODELAY`: a response must not wait for the
    /// client's ACK of the one before. Costs no system call once the first connection showed
    /// that the listener's setting is inherited.
    pub(crate) fn set_nodelay(&self, sock: &Sock) -> io::Result<()> {
        match self.nodelay.load(Ordering::Relaxed) {
            NODELAY_INHERITED => Ok(()),
            NODELAY_PER_SOCKET => sock.set_nodelay(true),
            _ => {
                let inherited = sock.nodelay().unwrap_or(false);
                let seen = if inherited {
                    NODELAY_INHERITED
                } else {
                    NODELAY_PER_SOCKET
                };
                self.nodelay.store(seen, Ordering::Relaxed);
                if inherited {
                    Ok(())
                } else {
                    sock.set_nodelay(true)
                }
            }
        }
    }

    /// The next connection (non-blocking, not yet known to the reactor).
    pub(crate) async fn accept(&self) -> io::Result<(Sock, SocketAddr)> {
        loop {
            let mut ready = self.inner.readable().await?;
            match ready.try_io(|l| l.get_ref().accept()) {
                Ok(Ok((stream, peer))) => return Ok((Sock::Raw(Some(stream)), peer)),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// How long the kernel holds a connection whose client has sent nothing before handing it to
/// `accept` anyway, in seconds. Linux rounds it to SYN-ACK retransmissions: with 1, a silent
/// client is accepted about a second after its handshake, and then meets the header read
/// timeout like any other.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Ask the kernel to hand connections to `accept` only once the client's first bytes have
/// arrived (`TCP_DEFER_ACCEPT`), so that the speculative first read finds the request. Only
/// for protocols whose client speaks first (HTTP, TLS): a server-first protocol behind a TCP
/// listener would wait for the deferral to run out. Elsewhere than Linux, nothing is done.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn defer_accept(listener: &std::net::TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs: libc::c_int = DEFER_ACCEPT_SECS;
    // SAFETY: the descriptor is the listener's own and open for the whole call (borrowed);
    // the option value is a live `c_int` whose size is the length passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn defer_accept(_listener: &std::net::TcpListener) -> io::Result<()> {
    Ok(())
}

/// An accepted client connection: raw until it first would block, then registered.
#[derive(Debug)]
pub(crate) enum Sock {
    /// Not registered with the reactor (`None` only while being converted).
    Raw(Option<mio::net::TcpStream>),
    Registered(tokio::net::TcpStream),
}

impl Sock {
    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Sock::Raw(Some(s)) => s.set_nodelay(on),
            Sock::Registered(s) => s.set_nodelay(on),
            Sock::Raw(None) => Ok(()),
        }
    }

    fn nodelay(&self) -> io::Result<bool> {
        match self {
            Sock::Raw(Some(s)) => s.nodelay(),
            Sock::Registered(s) => s.nodelay(),
            Sock::Raw(None) => Ok(false),
        }
    }

    /// Register the socket (it would block): from now on tokio drives it.
    fn register(&mut self) -> io::Result<&mut tokio::net::TcpStream> {
        if let Sock::Raw(raw) = self {
            let Some(mio) = raw.take() else {
                return Err(io::Error::other("socket lost while registering"));
            };
            let std: std::net::TcpStream = mio.into();
            *self = Sock::Registered(tokio::net::TcpStream::from_std(std)?);
        }
        match self {
            Sock::Registered(s) => Ok(s),
            Sock::Raw(_) => Err(io::Error::other("socket not registered")),
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl AsyncRead for Sock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Sock::Raw(Some(s)) = this {
            match s.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this.register() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Sock {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Sock::Raw(Some(s)) = this {
            match s.write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this.register() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// One `writev` for all the buffers: rustls hands over a TLS flight as one buffer per
    /// record (ServerHello, encrypted handshake, each session ticket), and without this each
    /// would cost its own `sendto`.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Sock::Raw(Some(s)) = this {
            match s.write_vectored(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this.register() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A socket buffers nothing itself.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sock::Raw(Some(s)) => Poll::Ready(s.shutdown(std::net::Shutdown::Write)),
            Sock::Raw(None) => Poll::Ready(Ok(())),
            Sock::Registered(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay_and_linux_needs_no_call_per_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(listener).unwrap();
        for _ in 0..2 {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            // The client speaks first, as the listener's deferred accept expects.
            tokio::io::AsyncWriteExt::write_all(&mut client, b"G")
                .await
                .unwrap();
            let (sock, _) = acceptor.accept().await.unwrap();
            acceptor.set_nodelay(&sock).unwrap();
            assert!(sock.nodelay().unwrap());
        }
        let expected = if cfg!(target_os = "linux") {
            NODELAY_INHERITED
        } else {
            acceptor.nodelay.load(Ordering::Relaxed)
        };
        assert_eq!(acceptor.nodelay.load(Ordering::Relaxed), expected);
    }

    /// A request's first bytes are readable, unregistered, on the socket `accept` hands out:
    /// the deferral is what lets a short connection skip the reactor.
    #[tokio::test]
    async fn the_request_is_in_when_the_connection_is_accepted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(listener).unwrap();
        #[cfg(target_os = "linux")]
        assert!(
            deferral_secs(acceptor.inner.get_ref()) > 0,
            "accepts not deferred"
        );
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let (sock, _) = acceptor.accept().await.unwrap();
        let Sock::Raw(Some(mut raw)) = sock else {
            panic!("accepted socket already registered");
        };
        let mut buf = [0u8; 64];
        let n = raw.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
    }

    /// Several buffers (a TLS flight, one per record) go out in one vectored write on a
    /// socket not yet registered, and arrive in order.
    #[tokio::test]
    async fn a_vectored_write_sends_every_buffer_in_order() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(listener).unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"G").await.unwrap();
        let (mut sock, _) = acceptor.accept().await.unwrap();
        assert!(sock.is_write_vectored());
        let parts: [&[u8]; 3] = [b"server hello;", b"handshake;", b"ticket"];
        let slices = parts.map(io::IoSlice::new);
        let n = sock.write_vectored(&slices).await.unwrap();
        assert_eq!(n, 29, "a short flight is written whole");
        assert!(matches!(sock, Sock::Raw(Some(_))), "no registration needed");
        let mut got = vec![0u8; n];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"server hello;handshake;ticket");
    }

    /// The listener's `TCP_DEFER_ACCEPT`, as the kernel reports it back.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn deferral_secs(listener: &mio::net::TcpListener) -> libc::c_int {
        use std::os::fd::AsRawFd;
        let mut secs: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a borrowed, open descriptor; the value and length point at live locals.
        let rc = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&mut secs as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        secs
    }

    /// A client that connects and says nothing is still accepted once the deferral runs out
    /// (about a second), so the header read timeout can answer it; it is not held forever.
    #[tokio::test]
    async fn a_silent_client_is_accepted_after_the_deferral() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(listener).unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted =
            tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept()).await;
        assert!(matches!(accepted, Ok(Ok(_))), "silent client not accepted");
    }
}
