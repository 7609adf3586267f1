//! Binding listening sockets: the one way the start and a reload both do it.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{BoundListener, ListenerSet};

/// How many connections a listener's kernel queue holds before `accept` takes them (Linux caps
/// it at `net.core.somaxconn`). tokio's and the standard library's `bind` use 128, which a
/// burst of new connections overflows: the kernel then drops SYNs, and each dropped client
/// waits a second for its retransmission.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds a load balancer's listening socket, the one way the start and a reload both do it:
/// `SO_REUSEADDR` (like tokio's `TcpListener::bind`, so a port a listener released a moment
/// ago, with connections in TIME_WAIT, can be bound again) and a backlog of
/// [`LISTEN_BACKLOG`].
pub(crate) fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds the listeners of `config` that are not running yet, with their certificates and
/// access logs, before anything changes (a taken port fails the start or refuses the reload).
/// A socket inherited from systemd or a hot upgrade's predecessor at `l.bind` is taken instead
/// of binding one.
pub(crate) fn bind_new(
    set: &ListenerSet,
    config: &flotilla_config::Config,
    inherited: &mut crate::upgrade::Inherited,
) -> Result<Vec<BoundListener>, crate::RuntimeError> {
    let mut bound = Vec::new();
    for (lb_name, lb) in &config.load_balancers {
        // One access log per load balancer, shared by its listeners.
        let access_log = match &lb.access_log {
            Some(path) => Some(flotilla_proxy::AccessLog::open(path, lb_name).map_err(
                |source| crate::RuntimeError::AccessLog {
                    path: path.clone(),
                    source,
                },
            )?),
            None => None,
        };
        for l in &lb.listeners {
            if set.has_configured(l.bind) {
                continue;
            }
            let socket = match inherited.take(l.bind) {
                Some(socket) => socket,
                None => bind_listener(l.bind),
            }
            .map_err(|source| crate::RuntimeError::Bind {
                addr: l.bind,
                source,
            })?;
            // TLS certificates are loaded now, so a bad one fails at once, naming the file.
            let options = crate::protocols::listener_options(lb, l)?;
            bound.push(BoundListener {
                lb_name: lb_name.clone(),
                lb: lb.clone(),
                listener: l.clone(),
                socket,
                access_log: access_log.clone(),
                options,
            });
        }
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of new connections waits in the kernel's queue instead of having its SYNs
    /// dropped: 300 clients connect while nothing accepts, and every one gets in. With
    /// tokio's backlog of 128 the rest could never connect (nothing drains the full queue, so
    /// their retransmitted SYNs are dropped too), whatever the machine's speed.
    #[tokio::test]
    async fn a_listener_queues_a_burst_of_connections() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..300 {
            clients.spawn(async move {
                // A hang guard only: a dropped SYN would still connect after its retransmit.
                tokio::time::timeout(
                    std::time::Duration::from_secs(20),
                    tokio::net::TcpStream::connect(addr),
                )
                .await
            });
        }
        let mut connected = Vec::new();
        while let Some(res) = clients.join_next().await {
            if let Ok(Ok(Ok(stream))) = res {
                connected.push(stream);
            }
        }
        assert_eq!(connected.len(), 300);
        drop(listener);
    }
}
