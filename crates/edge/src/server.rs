//! The viewer side: each distribution listener accepts connections and serves HTTP/1.1 and
//! HTTP/2 (h2c, or ALPN over TLS) with hyper, every request answered by its [`Edge`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_config::edge::EdgeListener;
use flotilla_config::ListenerProtocol;
use http::{Request, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::dist::Edge;
use crate::sendfile::{Lane, SendfileStream};

/// How long stopping waits for viewers' requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is taken or not ours.
    #[error("cannot bind distribution listener {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates could not be read or used.
    #[error("distribution listener {addr}: {reason}")]
    Tls {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A bound listener, not yet serving.
pub struct BoundListener {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl BoundListener {
    /// Binds `l` — or serves on `inherited`, the socket a hot upgrade's predecessor handed
    /// over for it — and loads its certificates.
    pub async fn bind(
        l: &EdgeListener,
        inherited: Option<std::net::TcpListener>,
    ) -> Result<BoundListener, ListenError> {
        let tls = match l.protocol {
            ListenerProtocol::Https => Some(acceptor(l)?),
            _ => None,
        };
        let bound = match inherited {
            Some(socket) => socket
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(socket)),
            None => TcpListener::bind(l.bind).await,
        };
        let listener = bound.map_err(|source| ListenError::Bind {
            addr: l.bind,
            source,
        })?;
        Ok(BoundListener { listener, tls })
    }

    /// A duplicate of the listening socket, kept to hand over in a hot upgrade.
    pub fn duplicate(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.listener.as_fd().try_clone_to_owned()
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Whether it is an HTTPS listener.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `edge` until `stop` turns true, then lets requests in flight finish.
    pub async fn serve(self, edge: Arc<Edge>, mut stop: watch::Receiver<bool>) {
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Body frames go to the stream as they are (the sendfile lane relies on it).
        builder.http1().writev(true);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut stopped => break,
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "distribution accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let https = self.tls.is_some();
            // Plain connections send large cached bodies by sendfile on HTTP/1 (`sendfile`).
            let lane = (!https).then(Lane::default);
            let edge = Arc::clone(&edge);
            let conn_lane = lane.clone();
            let svc = service_fn(move |mut req: Request<Incoming>| {
                let edge = Arc::clone(&edge);
                if let Some(l) = &conn_lane {
                    if req.version() <= Version::HTTP_11 {
                        req.extensions_mut().insert(l.clone());
                    }
                }
                async move { Ok::<_, std::convert::Infallible>(edge.handle(req, https, peer).await) }
            });
            match (&self.tls, lane) {
                (None, lane) => {
                    let io = SendfileStream::new(tcp, lane.unwrap_or_default());
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), svc)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                (Some(acceptor), _) => {
                    let acceptor = acceptor.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let Ok(Ok(tls)) = tokio::time::timeout(DRAIN, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    });
                }
            }
        }
        drop(self.listener);
        let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    }
}

fn acceptor(l: &EdgeListener) -> Result<tokio_rustls::TlsAcceptor, ListenError> {
    let tls = |reason: String| ListenError::Tls {
        addr: l.bind,
        reason,
    };
    let certs = l
        .certificates
        .iter()
        .map(|c| flotilla_proxy::tls::PemCertificate::read(&c.cert, &c.key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(e.to_string()))?;
    let config = flotilla_proxy::tls::server_config(&certs).map_err(|e| tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(config))
}
