//! Route 53's probes, carried out: TCP connect; HTTP(S) `GET` whose status must be 2xx or 3xx
//! and whose first 5,120 body bytes must hold the search string. HTTPS does not validate
//! the certificate (as Route 53).

use std::sync::Arc;

use flotilla_config::dns::DnsHealthCheckKind;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::health::Probe;

/// Route 53 searches this much of the body for the search string.
const SEARCH_WINDOW: usize = 5120;
/// Room for the status line and headers before the body.
const HEAD_MAX: usize = 16 * 1024;

/// Carries out `probe`: `Ok(detail)` when it passed, `Err(detail)` when it failed.
pub async fn run(probe: &Probe) -> Result<String, String> {
    match tokio::time::timeout(probe.timeout, attempt(probe)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", probe.timeout)),
    }
}

async fn attempt(probe: &Probe) -> Result<String, String> {
    let tcp = TcpStream::connect(probe.target)
        .await
        .map_err(|e| format!("connect to {}: {e}", probe.target))?;
    match probe.kind {
        DnsHealthCheckKind::Tcp | DnsHealthCheckKind::Calculated => {
            Ok(format!("connected to {}", probe.target))
        }
        DnsHealthCheckKind::Http => http(tcp, probe).await,
        DnsHealthCheckKind::Https => {
            let connector = tokio_rustls::TlsConnector::from(tls_config());
            let server = ServerName::try_from(
                probe
                    .host
                    .split(':')
                    .next()
                    .unwrap_or("localhost")
                    .to_string(),
            )
            .unwrap_or_else(|_| {
                ServerName::try_from("localhost").expect("a valid name (invariant)")
            });
            let tls = connector
                .connect(server, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            http(tls, probe).await
        }
    }
}

async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    probe: &Probe,
) -> Result<String, String> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Flotilla-DNS-HealthCheck/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        probe.path, probe.host
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let body_len = head_end(&buf).map(|h| buf.len() - h);
        if body_len.is_some_and(|b| b >= SEARCH_WINDOW) || buf.len() > HEAD_MAX + SEARCH_WINDOW {
            break;
        }
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("read: {e}")),
            Err(_) => break,
        }
    }
    judge(&buf, probe.search_string.as_deref())
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The verdict on an answer's bytes: status 2xx/3xx, and the search string in the body.
pub fn judge(buf: &[u8], search: Option<&str>) -> Result<String, String> {
    let line_end = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("no status line")?;
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed status line `{line}`"))?;
    if !(200..400).contains(&code) {
        return Err(format!("HTTP status {code}"));
    }
    if let Some(needle) = search {
        let start = head_end(buf).ok_or("no end of headers")?;
        let body = &buf[start..buf.len().min(start + SEARCH_WINDOW)];
        if !body
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
        {
            return Err(format!(
                "HTTP status {code}, `{needle}` not in the first {SEARCH_WINDOW} bytes"
            ));
        }
    }
    Ok(format!("HTTP status {code}"))
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A true invariant: ring's default provider supports rustls' default protocol versions
    // (the process has two providers compiled in, so there is no process default to fall
    // back on).
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Accepts any certificate, as Route 53's HTTPS checks do; signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn status_and_search_string_decide() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert!(judge(ok, None).is_ok());
        assert!(judge(ok, Some("ell")).is_ok());
        assert!(judge(ok, Some("bye")).is_err());
        assert!(judge(b"HTTP/1.1 302 Found\r\n\r\n", None).is_ok());
        assert!(judge(b"HTTP/1.1 503 Unavailable\r\n\r\n", None).is_err());
        assert!(judge(b"garbage", None).is_err());
        assert!(judge(b"HTTP/1.1 abc\r\n\r\n", None).is_err());
    }
}
