//! Listening sockets that come from elsewhere: passed by a hot upgrade's predecessor over a
//! unix socket (`SCM_RIGHTS`, with nix: the field's safe wrapper of `sendmsg`/`recvmsg` and
//! their control messages) or by systemd's socket activation (`LISTEN_FDS`). The only module
//! of the runtime with `unsafe`: a received descriptor number becomes an `OwnedFd` here, once.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The kernel's limit of descriptors in one message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// Sends one frame (4-byte big-endian length, then `payload`) with `fds` attached to it.
pub(crate) fn send_with_fds(
    sock: &UnixStream,
    payload: &[u8],
    fds: &[OwnedFd],
) -> std::io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other(format!(
            "{} sockets to hand over; at most {MAX_FDS} fit in one message",
            fds.len()
        )));
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let len = u32::try_from(payload.len())
        .map_err(|_| std::io::Error::other("frame too large"))?
        .to_be_bytes();
    let iov = [IoSlice::new(&len), IoSlice::new(payload)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)?;
    // The descriptors went with the first byte; whatever did not fit follows as plain bytes.
    let mut whole = Vec::with_capacity(4 + payload.len());
    whole.extend_from_slice(&len);
    whole.extend_from_slice(payload);
    if sent < whole.len() {
        (&*sock).write_all(&whole[sent..])?;
    }
    Ok(())
}

/// Receives one frame sent by [`send_with_fds`]: its payload and the descriptors attached.
pub(crate) fn recv_with_fds(sock: &UnixStream) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut head = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (got, fds) = {
        let mut iov = [IoSliceMut::new(&mut head)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(std::io::Error::other("handed-over sockets were truncated"));
        }
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: the kernel just installed `fd` in this process for this message
                    // (SCM_RIGHTS); nothing else owns it, so it is ours to own and close.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        (msg.bytes, fds)
    };
    if got == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    (&*sock).read_exact(&mut head[got..])?;
    let mut payload = vec![0; u32::from_be_bytes(head) as usize];
    (&*sock).read_exact(&mut payload)?;
    Ok((payload, fds))
}

/// Listening sockets given to this process, by the address they serve (the configured
/// address from a predecessor; the bound one from systemd), taken as the config asks for them.
#[derive(Default)]
pub(crate) struct Inherited {
    sockets: HashMap<SocketAddr, std::net::TcpListener>,
    from: &'static str,
}

impl Inherited {
    /// Sockets from a hot upgrade's predecessor: (configured address, socket).
    pub(crate) fn from_predecessor(sockets: Vec<(SocketAddr, OwnedFd)>) -> Self {
        Inherited {
            sockets: sockets
                .into_iter()
                .map(|(addr, fd)| (addr, std::net::TcpListener::from(fd)))
                .collect(),
            from: "the previous flotilla process",
        }
    }

    /// Sockets systemd passed (`LISTEN_PID` is this process, `LISTEN_FDS` counts them from
    /// fd 3), keyed by their bound address; none otherwise. The variables are consumed, so
    /// nothing this process starts takes them for its own.
    pub(crate) fn from_systemd() -> Self {
        let mut out = Inherited {
            sockets: HashMap::new(),
            from: "systemd",
        };
        let ours = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            == Some(std::process::id());
        let count = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<RawFd>().ok())
            .unwrap_or(0);
        if !ours || count <= 0 {
            return out;
        }
        for fd in 3..3 + count {
            // SAFETY: under the socket activation protocol systemd passes exactly these
            // descriptors (LISTEN_PID names this process) and nothing else in it owns them.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // They arrive inheritable; nothing this process starts may keep them open.
            let _ = nix::fcntl::fcntl(
                &owned,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            let listener = std::net::TcpListener::from(owned);
            match listener.local_addr() {
                Ok(addr) => {
                    out.sockets.insert(addr, listener);
                }
                Err(e) => {
                    tracing::warn!(fd, error = %e, "a socket from systemd is not a TCP listener; ignored")
                }
            }
        }
        tracing::info!(count, "listening sockets from systemd (socket activation)");
        out
    }

    /// The socket for `addr`, ready for tokio, if one was given.
    pub(crate) fn take(
        &mut self,
        addr: SocketAddr,
    ) -> Option<std::io::Result<tokio::net::TcpListener>> {
        let socket = self.sockets.remove(&addr)?;
        tracing::info!(%addr, from = self.from, "listening socket taken over, not bound anew");
        Some(
            socket
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(socket)),
        )
    }

    /// Logs and closes what the config did not ask for.
    pub(crate) fn close_unused(&mut self) {
        for addr in self.sockets.keys() {
            tracing::warn!(%addr, from = self.from, "an inherited socket is not in the config; closed");
        }
        self.sockets.clear();
    }
}
