//! Active health checks (HTTP and TCP), as the ELB health checker performs them: the one place
//! where probes live.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Version};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a health check got no status code. The runtime maps these to the AWS reason codes
/// (`Target.Timeout`, `Target.FailedHealthChecks`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No complete response headers within the health check timeout.
    #[error("health check timed out")]
    Timeout,
    /// The target could not be reached (refused, reset, unreachable).
    #[error("health check connection failed: {0}")]
    Connect(String),
    /// The target answered, but not with a valid HTTP response (or closed before one).
    #[error("malformed health check response: {0}")]
    Malformed(String),
}

/// Active HTTP health check of one target: `GET path` with `User-Agent: ELB-HealthChecker/2.0`,
/// `Host: <addr>` and `Connection: close`, as ALB sends it. Returns the status code; the caller
/// applies the matcher. The whole exchange (connect included) is bounded by `timeout`; the body
/// is not read.
pub async fn probe_http(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<u16, ProbeError> {
    match tokio::time::timeout(timeout, probe(addr, path)).await {
        Ok(res) => res,
        Err(_) => Err(ProbeError::Timeout),
    }
}

async fn probe(addr: SocketAddr, path: &str) -> Result<u16, ProbeError> {
    let path = if path.starts_with('/') { path } else { "/" };
    let uri: http::Uri = path
        .parse()
        .map_err(|e| ProbeError::Malformed(format!("invalid health check path {path:?}: {e}")))?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ProbeError::Connect(e.to_string()))?;
    // Small requests: do not let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeError::Connect(e.to_string()))?;
    let conn_task = tokio::spawn(conn);

    let mut req = Request::new(Empty::new());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    let h = req.headers_mut();
    h.insert(
        header::HOST,
        HeaderValue::from_str(&addr.to_string())
            .map_err(|e| ProbeError::Malformed(e.to_string()))?,
    );
    h.insert(
        header::USER_AGENT,
        HeaderValue::from_static("ELB-HealthChecker/2.0"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));

    let res = sender.send_request(req).await;
    // The connection is not reused: closing it now also abandons any body.
    conn_task.abort();
    match res {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) if e.is_parse() || e.is_incomplete_message() => {
            Err(ProbeError::Malformed(e.to_string()))
        }
        Err(e) => Err(ProbeError::Connect(e.to_string())),
    }
}

/// Active TCP health check of one target (NLB's default): healthy when a connection is accepted
/// within `timeout`. The connection is closed at once.
pub async fn probe_tcp(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(ProbeError::Connect(e.to_string())),
        Err(_) => Err(ProbeError::Timeout),
    }
}
