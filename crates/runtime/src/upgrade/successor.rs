//! The new process's side of a hot upgrade: it connects to its predecessor before anything
//! else (so even a config that no longer parses is reported there), takes the sockets,
//! prepares, takes the state, and says `Ready` once it serves.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_control::Cluster;

use super::wire::{self, State, ToNew, ToOld};
use super::{Inherited, UPGRADE_ENV};
use crate::RuntimeError;

/// How long the successor waits for each of its predecessor's frames.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the predecessor of a hot upgrade; present only in a process started by
/// one (`FLOTILLA_UPGRADE_FROM` names the socket).
pub struct Successor {
    stream: UnixStream,
}

fn upgrade_error(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Upgrade(what.to_string())
}

impl Successor {
    /// Connects to the predecessor named by the environment, if any, and says hello. Call
    /// first thing, before the config is loaded.
    pub fn from_env() -> Result<Option<Successor>, RuntimeError> {
        let Some(path) = std::env::var_os(UPGRADE_ENV) else {
            return Ok(None);
        };
        // Not for anything this process starts.
        std::env::remove_var(UPGRADE_ENV);
        let stream = UnixStream::connect(&path).map_err(|e| {
            upgrade_error(format!(
                "cannot reach the running flotilla at {path:?}: {e}"
            ))
        })?;
        stream
            .set_read_timeout(Some(FRAME_TIMEOUT))
            .map_err(upgrade_error)?;
        let s = Successor { stream };
        s.say(&ToOld::Hello {
            pid: std::process::id(),
        })?;
        Ok(Some(s))
    }

    fn say(&self, m: &ToOld) -> Result<(), RuntimeError> {
        wire::send(&self.stream, m)
            .map_err(|e| upgrade_error(format!("talking to the running flotilla: {e}")))
    }

    /// Tells the predecessor why this process gives up (it keeps serving).
    pub fn fail(&self, error: &str) {
        let _ = self.say(&ToOld::Failed {
            error: error.to_string(),
        });
    }

    /// The predecessor's listening sockets: the load balancers' keyed by configured address,
    /// the admin API's, the AWS API's and the edge's.
    pub(crate) fn sockets(&self) -> Result<Sockets, RuntimeError> {
        let (body, fds) = super::fds::recv_with_fds(&self.stream)
            .map_err(|e| upgrade_error(format!("receiving the listening sockets: {e}")))?;
        let frame: wire::Sockets = wire::decode(&body).map_err(upgrade_error)?;
        if fds.len() != frame.count() {
            return Err(upgrade_error(format!(
                "{} sockets received, {} announced",
                fds.len(),
                frame.count()
            )));
        }
        // In the frame's order; the count was checked, so every `next` has a descriptor.
        let mut fds = fds.into_iter();
        let listeners = frame
            .listeners
            .iter()
            .map(|(configured, _)| *configured)
            .zip(fds.by_ref())
            .collect();
        let admin = next_for(frame.admin, &mut fds);
        let aws = next_for(frame.aws, &mut fds);
        let dns =
            next_for(frame.dns, &mut fds).and_then(|(addr, udp)| Some((addr, udp, fds.next()?)));
        let distributions = frame.distributions.into_iter().zip(fds).collect();
        Ok(Sockets {
            listeners: Inherited::from_predecessor(listeners),
            admin,
            aws,
            edge: crate::edge::Sockets { dns, distributions },
        })
    }

    /// Says it is prepared and takes the state (the predecessor retires its cluster now).
    pub(crate) fn state(&self) -> Result<Handed, RuntimeError> {
        self.say(&ToOld::Prepared)?;
        let ToNew::State(state) = wire::recv::<ToNew>(&self.stream)
            .map_err(|e| upgrade_error(format!("receiving the state: {e}")))?;
        let State {
            format,
            cluster,
            elapsed_ns,
            epoch_wall_ns,
            run_id,
            compute,
            pids,
            limits,
            history,
        } = *state;
        if format != flotilla_control::SNAPSHOT_FORMAT {
            return Err(upgrade_error(format!(
                "the running flotilla's state is in snapshot format {format}; this binary reads \
                 format {} (restart instead of upgrading)",
                flotilla_control::SNAPSHOT_FORMAT
            )));
        }
        let cluster: Cluster = wire::decode(&cluster).map_err(|e| {
            upgrade_error(format!(
                "the running flotilla's state cannot be read by this binary: {e}"
            ))
        })?;
        Ok(Handed {
            cluster,
            elapsed: Duration::from_nanos(elapsed_ns),
            epoch_wall: UNIX_EPOCH + Duration::from_nanos(epoch_wall_ns),
            run_id,
            compute,
            pids,
            limits,
            history,
        })
    }

    /// Says it serves: the predecessor stops accepting and exits.
    pub(crate) fn ready(&self) -> Result<(), RuntimeError> {
        self.say(&ToOld::Ready)
    }
}

/// The next descriptor, for `addr` when the frame announced one.
fn next_for(
    addr: Option<SocketAddr>,
    fds: &mut impl Iterator<Item = OwnedFd>,
) -> Option<(SocketAddr, OwnedFd)> {
    Some((addr?, fds.next()?))
}

/// The predecessor's sockets.
pub(crate) struct Sockets {
    /// The load balancers' listeners, by configured address.
    pub(crate) listeners: Inherited,
    /// The admin API's: configured address and socket.
    pub(crate) admin: Option<(SocketAddr, OwnedFd)>,
    /// The AWS API's.
    pub(crate) aws: Option<(SocketAddr, OwnedFd)>,
    /// The DNS server's and the distributions'.
    pub(crate) edge: crate::edge::Sockets,
}

/// The state, decoded.
pub(crate) struct Handed {
    pub(crate) cluster: Cluster,
    pub(crate) elapsed: Duration,
    pub(crate) epoch_wall: SystemTime,
    pub(crate) run_id: String,
    pub(crate) compute: flotilla_compute::Handed,
    pub(crate) pids: Vec<(String, u32, Option<u64>)>,
    pub(crate) limits: Vec<(String, flotilla_compute::InstanceLimits)>,
    pub(crate) history: std::collections::BTreeMap<String, Vec<flotilla_admin::api::ActivityInfo>>,
}
