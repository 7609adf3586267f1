//! Accepting connections and shutting down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::routes::{App, MAX_MS};
use crate::{DemoConfig, DemoError};

/// Upper bound on draining in-flight requests at shutdown: the longest request (`MAX_MS`) plus
/// slack. Flotilla's stop timeout normally ends things sooner.
const DRAIN_LIMIT: Duration = Duration::from_millis(MAX_MS + 5_000);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves on `$FLOTILLA_HOST:$PORT` (127.0.0.1 by default) until SIGTERM or SIGINT, then stops accepting, finishes in-flight
/// requests and returns `Ok` (so the process exits 0 — a clean, requested stop).
pub async fn run(config: DemoConfig) -> Result<(), DemoError> {
    // Handlers first: once the port accepts connections, a stop signal must already drain
    // rather than kill (a health check may pass the moment we listen).
    let mut term = signal(SignalKind::terminate()).map_err(DemoError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DemoError::Signal)?;
    let addr = SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    if let Some(hook) = crate::lifecycle::LaunchHook::from_lookup(|k| std::env::var(k).ok()) {
        tokio::spawn(hook.complete());
    }
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
    };
    serve(listener, config, shutdown).await
}

/// Serves on an already-bound `listener` until `shutdown` completes, then stops accepting,
/// finishes in-flight requests and returns.
///
/// Separate from [`run`] so tests (and embedders) can use an ephemeral port and their own
/// shutdown trigger instead of process signals. Connections are HTTP/1.1 with keep-alive, as a
/// load balancer's pooled upstream connections expect.
pub async fn serve(
    listener: TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let app = Arc::new(App::new(config.clone())?);
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    let graceful = GracefulShutdown::new();
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        instance_id = %config.instance_id,
        zone = %config.zone,
        "serving"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let app = Arc::clone(&app);
                    let service = service_fn(move |request| {
                        let app = Arc::clone(&app);
                        async move { app.handle(request).await }
                    });
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!(%peer, error = %err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }

    // Stop accepting first (new connections are refused), then let in-flight requests finish;
    // idle keep-alive connections are closed right away.
    drop(listener);
    if tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(limit = ?DRAIN_LIMIT, "gave up waiting for in-flight requests");
    }
    tracing::info!("stopped");
    Ok(())
}
