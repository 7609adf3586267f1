//! Choosing a free loopback port per instance.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Ports handed to live (or launching) instances of every provider in this process: ports are
/// the machine's, so a process and a container launched at the same moment must not be given
/// the same one while neither has bound it yet.
static HELD: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn with_held<R>(f: impl FnOnce(&mut HashSet<u16>) -> R) -> R {
    // A panic while holding the lock leaves a valid set behind.
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    f(held.get_or_insert_with(HashSet::new))
}

/// A free loopback port no live instance holds, held from now on until [`release`].
pub(crate) fn reserve(host: IpAddr) -> io::Result<u16> {
    with_held(|held| {
        let port = pick_port(held, || ephemeral_port(host))?;
        held.insert(port);
        Ok(port)
    })
}

/// Holds `port` for an instance that already listens on it (an adopted one).
pub(crate) fn hold(port: u16) {
    with_held(|held| held.insert(port));
}

/// Gives `port` back once its instance is gone.
pub(crate) fn release(port: u16) {
    with_held(|held| held.remove(&port));
}

/// How many candidates to try before giving up (bounded: collisions are rare).
const MAX_ATTEMPTS: usize = 64;

/// Asks the kernel for a free port on 127.0.0.1 by binding port 0 and releasing it at once.
pub(crate) fn ephemeral_port(host: IpAddr) -> io::Result<u16> {
    let listener = TcpListener::bind((host, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Picks a port from `candidate` that no live instance holds.
///
/// The kernel may hand back a port that a live instance was given but has not bound yet (it is
/// still starting), so candidates are checked against `held`. `candidate` is a parameter so the
/// skip logic can be tested deterministically.
pub(crate) fn pick_port(
    held: &HashSet<u16>,
    mut candidate: impl FnMut() -> io::Result<u16>,
) -> io::Result<u16> {
    let mut last_error = None;
    for _ in 0..MAX_ATTEMPTS {
        match candidate() {
            Ok(port) if !held.contains(&port) => return Ok(port),
            Ok(_) => {}
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            "every candidate port is held by a live instance",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_ports_held_by_live_instances() {
        let held: HashSet<u16> = [5000, 5001].into_iter().collect();
        let mut seq = [5000, 5001, 5000, 5002].into_iter();
        let port = pick_port(&held, || Ok(seq.next().unwrap_or(0))).unwrap();
        assert_eq!(port, 5002);
    }

    #[test]
    fn gives_up_after_bounded_attempts() {
        let held: HashSet<u16> = [5000].into_iter().collect();
        let mut calls = 0;
        let result = pick_port(&held, || {
            calls += 1;
            Ok(5000)
        });
        assert!(result.is_err());
        assert_eq!(calls, MAX_ATTEMPTS);
    }

    #[test]
    fn ephemeral_port_is_nonzero() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert_ne!(ephemeral_port(loopback).unwrap(), 0);
    }
}
