//! The hand-over conversation between the old and the new Flotilla process, over the unix
//! socket `<state_dir>/upgrade.sock`: length-prefixed CBOR frames (CBOR, not JSON: the metrics
//! store holds `f64` infinities, and the snapshot is mostly numbers).
//!
//! ```text
//! new → old  Hello { pid }
//! old → new  Sockets { listeners, admin, aws, dns, distributions }
//!                                               + every listening socket (SCM_RIGHTS)
//! new → old  Prepared                            (config loaded, sockets taken, state db open)
//! old → new  State { cluster, clock, processes, … }   (the old cluster is retired from here)
//! new → old  Ready                               (attached to the keeper, serving)
//! ```
//! Either side may answer `Failed { error }` (the new one) or hang up instead; the old process
//! then takes its cluster back and keeps serving.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;

use flotilla_admin::api::ActivityInfo;
use flotilla_compute::Handed;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// From the new process to the old.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToOld {
    Hello { pid: u32 },
    Prepared,
    Ready,
    Failed { error: String },
}

/// The sockets frame: what each attached descriptor is, in this order: listeners, the admin
/// API's, the AWS API's, the DNS server's UDP and TCP sockets, the distributions' listeners.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Sockets {
    /// (configured address, bound address) of each load balancer listener.
    pub(crate) listeners: Vec<(SocketAddr, SocketAddr)>,
    /// The admin API's configured address, when its socket is attached.
    pub(crate) admin: Option<SocketAddr>,
    /// The AWS API's configured address, when its socket is attached.
    #[serde(default)]
    pub(crate) aws: Option<SocketAddr>,
    /// The DNS server's `[dns] bind`, when its UDP and TCP sockets are attached.
    #[serde(default)]
    pub(crate) dns: Option<SocketAddr>,
    /// The configured address of each distribution listener attached.
    #[serde(default)]
    pub(crate) distributions: Vec<SocketAddr>,
}

impl Sockets {
    /// How many descriptors the frame announces.
    pub(crate) fn count(&self) -> usize {
        self.listeners.len()
            + usize::from(self.admin.is_some())
            + usize::from(self.aws.is_some())
            + 2 * usize::from(self.dns.is_some())
            + self.distributions.len()
    }
}

/// Everything the successor takes over besides the sockets.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct State {
    /// [`flotilla_control::SNAPSHOT_FORMAT`] of `cluster`.
    pub(crate) format: u32,
    /// The `Cluster`, CBOR.
    pub(crate) cluster: Vec<u8>,
    /// How long the old process's clock had run (its `Time` now), in nanoseconds.
    pub(crate) elapsed_ns: u64,
    /// Its clock's epoch as wall time, nanoseconds since the Unix epoch.
    pub(crate) epoch_wall_ns: u64,
    /// The run id its activities are stored under (the successor continues the run).
    pub(crate) run_id: String,
    /// Every live instance, as the compute providers hand it over.
    pub(crate) compute: Handed,
    /// The pid (and start time) the runtime knows of each instance, by id.
    pub(crate) pids: Vec<(String, u32, Option<u64>)>,
    /// What the cgroups enforce of image instances' limits, by id (read at their launch).
    #[serde(default)]
    pub(crate) limits: Vec<(String, flotilla_compute::InstanceLimits)>,
    /// Activities of earlier runs, per group (this run's are in the cluster).
    pub(crate) history: BTreeMap<String, Vec<ActivityInfo>>,
}

/// From the old process to the new (after the sockets frame).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToNew {
    State(Box<State>),
}

/// CBOR of `value`.
pub(crate) fn encode<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(out)
}

/// `T` from CBOR.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    ciborium::from_reader(bytes).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Writes one frame.
pub(crate) fn send<T: Serialize>(mut sock: &UnixStream, value: &T) -> std::io::Result<()> {
    let body = encode(value)?;
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::other("frame too large"))?
        .to_be_bytes();
    sock.write_all(&len)?;
    sock.write_all(&body)
}

/// Reads one frame.
pub(crate) fn recv<T: DeserializeOwned>(mut sock: &UnixStream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len)?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    sock.read_exact(&mut body)?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn frames_and_sockets_cross_a_unix_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        send(&a, &ToOld::Hello { pid: 42 }).unwrap();
        assert!(matches!(
            recv::<ToOld>(&b).unwrap(),
            ToOld::Hello { pid: 42 }
        ));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sockets = Sockets {
            listeners: vec![(addr, addr)],
            ..Sockets::default()
        };
        let fd = listener.as_fd().try_clone_to_owned().unwrap();
        super::super::fds::send_with_fds(&a, &encode(&sockets).unwrap(), &[fd]).unwrap();
        let (payload, fds) = super::super::fds::recv_with_fds(&b).unwrap();
        let got: Sockets = decode(&payload).unwrap();
        assert_eq!(got.listeners, vec![(addr, addr)]);
        assert_eq!(fds.len(), 1);
        // The received descriptor is the same listening socket: a client connecting to the
        // address is accepted through it.
        let received = std::net::TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(received.local_addr().unwrap(), addr);
        drop(listener);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        assert!(received.accept().is_ok());
    }
}
