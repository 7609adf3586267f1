//! systemd's readiness protocol (`sd_notify`): one datagram to `$NOTIFY_SOCKET`. Written
//! out rather than taken from a crate: it is one `sendto` on a unix datagram socket, which the
//! standard library does (abstract socket names included); without `NOTIFY_SOCKET` (not under
//! systemd) it does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`, `MAINPID=123\nREADY=1`, `STOPPING=1`) to systemd, if this
/// process runs under it. Failures are logged, never fatal.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.as_bytes(), &addr)
    });
    match sent {
        Ok(_) => tracing::debug!(state, "told systemd"),
        Err(e) => tracing::warn!(state, error = %e, "cannot notify systemd"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_the_socket_named_in_the_environment() {
        let dir = std::env::temp_dir().join(format!("flotilla-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        // The only test in this binary that sets NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("MAINPID=7\nREADY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MAINPID=7\nREADY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
