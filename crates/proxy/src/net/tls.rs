//! TLS for `https` listeners: certificates loaded from PEM files, chosen per connection by the
//! client's SNI name, with ALPN offering `h2` and `http/1.1`.
//!
//! Certificate choice follows ALB: each certificate serves the DNS names in its subject
//! alternative names (a `*.example.com` name covers one label), and the first certificate is
//! the default for clients that send no SNI or a name no certificate covers.
//!
//! What a handshake costs is set here (measured in docs/benchmarks.md, "TLS handshakes"): the
//! aws-lc-rs provider (assembly X25519 and SHA-2, random numbers without a system call:
//! ring's cost a resumed handshake a third of its CPU), TLS 1.3 suites in ALB's order with the server's order winning (AES-128-GCM with
//! SHA-256 first, whose hash has CPU instructions), and stateless session tickets, so that
//! any number of clients can resume without a cache or a lock.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a listener's certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("{}: no PEM certificate found ({reason})", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A key file holds no usable PEM private key.
    #[error("{}: no usable PEM private key found ({reason})", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("{} does not match {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// An https listener needs at least one certificate.
    #[error("an https listener needs at least one certificate")]
    NoCertificates,
    /// rustls refused the configuration (protocol versions, provider).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One certificate chain and private key, in PEM.
#[derive(Debug, Clone)]
pub struct PemCertificate {
    /// Where the chain came from (for error messages).
    pub cert_path: PathBuf,
    /// The certificate chain, end-entity first.
    pub cert_pem: Vec<u8>,
    /// Where the key came from (for error messages).
    pub key_path: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl PemCertificate {
    /// Read a certificate/key pair from its two files.
    pub fn read(cert: &Path, key: &Path) -> Result<PemCertificate, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        Ok(PemCertificate {
            cert_pem: read(cert)?,
            cert_path: cert.to_path_buf(),
            key_pem: read(key)?,
            key_path: key.to_path_buf(),
        })
    }
}

/// A certificate with the names it serves.
struct Served {
    key: Arc<CertifiedKey>,
    /// Lower-case DNS names from the SAN; wildcards kept as `*.suffix`.
    names: Vec<String>,
}

/// Picks a certificate by SNI: exact name first, then a wildcard, then the default (first).
struct SniResolver {
    certs: Vec<Served>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&Vec<String>> = self.certs.iter().map(|c| &c.names).collect();
        f.debug_struct("SniResolver")
            .field("names", &names)
            .finish()
    }
}

impl SniResolver {
    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(c) = self.certs.iter().find(|c| c.names.contains(&name)) {
                return Some(Arc::clone(&c.key));
            }
            if let Some((_, parent)) = name.split_once('.') {
                let wildcard = format!("*.{parent}");
                if let Some(c) = self.certs.iter().find(|c| c.names.contains(&wildcard)) {
                    return Some(Arc::clone(&c.key));
                }
            }
        }
        self.certs.first().map(|c| Arc::clone(&c.key))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The crypto provider of https listeners: aws-lc-rs, with the TLS 1.3 suites in the order of
/// ALB's default policy (AES-128-GCM first).
fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        _ => 3,
    });
    provider
}

/// Build the TLS server configuration of an https listener from its certificates (the first
/// is the default). Errors name the file at fault.
pub fn server_config(certs: &[PemCertificate]) -> Result<Arc<ServerConfig>, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    let provider = Arc::new(provider());
    let mut served = Vec::with_capacity(certs.len());
    for c in certs {
        served.push(load(c, &provider)?);
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { certs: served }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's suite order wins: clients such as OpenSSL's put AES-256-GCM first, whose
    // SHA-384 key schedule costs more than AES-128-GCM's SHA-256, for no practical gain.
    config.ignore_client_order = true;
    // Stateless tickets (encrypted with a key rotated every 6 hours): resumption works for
    // any number of clients, where rustls' default session cache holds 256 behind a lock.
    config.ticketer =
        rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

fn load(c: &PemCertificate, provider: &CryptoProvider) -> Result<Served, TlsError> {
    let bad_cert = |reason: String| TlsError::BadCertificate {
        path: c.cert_path.clone(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&c.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad_cert(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(bad_cert("the file has no CERTIFICATE block".into()));
    };
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| bad_cert(format!("not a valid X.509 certificate: {e}")))?
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&c.key_pem).map_err(|e| TlsError::BadKey {
        path: c.key_path.clone(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: c.cert_path.clone(),
            key: c.key_path.clone(),
            reason: e.to_string(),
        },
        other => TlsError::BadKey {
            path: c.key_path.clone(),
            reason: other.to_string(),
        },
    })?;
    Ok(Served {
        key: Arc::new(certified),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        (
            c.cert.pem().into_bytes(),
            c.key_pair.serialize_pem().into_bytes(),
        )
    }

    fn cert(names: &[&str]) -> PemCertificate {
        let (cert_pem, key_pem) = pem(names);
        PemCertificate {
            cert_path: "c.pem".into(),
            cert_pem,
            key_path: "k.pem".into(),
            key_pem,
        }
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let provider = provider();
        let a = load(&cert(&["a.test"]), &provider).unwrap();
        let w = load(&cert(&["*.b.test"]), &provider).unwrap();
        let (ka, kw) = (Arc::clone(&a.key), Arc::clone(&w.key));
        let r = SniResolver { certs: vec![a, w] };
        assert!(Arc::ptr_eq(&r.pick(Some("A.TEST")).unwrap(), &ka));
        assert!(Arc::ptr_eq(&r.pick(Some("x.b.test")).unwrap(), &kw));
        assert!(Arc::ptr_eq(&r.pick(Some("y.x.b.test")).unwrap(), &ka));
        assert!(Arc::ptr_eq(&r.pick(None).unwrap(), &ka));
    }

    /// Moves TLS bytes between a client and a server until neither has any to send.
    fn exchange(c: &mut rustls::ClientConnection, s: &mut rustls::ServerConnection) {
        for _ in 0..10 {
            let mut moved = false;
            while c.wants_write() {
                let mut buf = Vec::new();
                c.write_tls(&mut buf).unwrap();
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets().unwrap();
                moved = true;
            }
            while s.wants_write() {
                let mut buf = Vec::new();
                s.write_tls(&mut buf).unwrap();
                c.read_tls(&mut &buf[..]).unwrap();
                c.process_new_packets().unwrap();
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("handshake did not settle");
    }

    /// A second connection of the same client resumes with the ticket of its first (stateless
    /// tickets), and both negotiate TLS 1.3 with AES-128-GCM although the client prefers
    /// AES-256-GCM (the server's order wins).
    #[test]
    fn a_client_resumes_with_its_ticket_and_the_server_order_picks_aes_128() {
        let (cert_pem, key_pem) = pem(&["a.test"]);
        let server = server_config(&[PemCertificate {
            cert_path: "c.pem".into(),
            cert_pem: cert_pem.clone(),
            key_path: "k.pem".into(),
            key_pem,
        }])
        .unwrap();
        assert!(server.ticketer.enabled());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&cert_pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut client_provider = rustls::crypto::aws_lc_rs::default_provider();
        client_provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let name = "a.test".try_into().unwrap();
            let mut c = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
            let mut s = rustls::ServerConnection::new(Arc::clone(&server)).unwrap();
            exchange(&mut c, &mut s);
            assert!(!c.is_handshaking() && !s.is_handshaking());
            let suite = s.negotiated_cipher_suite().unwrap().suite();
            assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
            kinds.push(c.handshake_kind().unwrap());
        }
        assert_eq!(
            kinds,
            [rustls::HandshakeKind::Full, rustls::HandshakeKind::Resumed]
        );
    }

    #[test]
    fn bad_files_are_named_in_errors() {
        let mut c = cert(&["a.test"]);
        c.cert_pem = b"not pem".to_vec();
        let e = server_config(&[c]).unwrap_err().to_string();
        assert!(e.contains("c.pem"), "{e}");

        let mut c = cert(&["a.test"]);
        c.key_pem = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec();
        let e = server_config(&[c]).unwrap_err().to_string();
        assert!(e.contains("k.pem"), "{e}");

        let mut c = cert(&["a.test"]);
        c.key_pem = pem(&["other.test"]).1;
        let e = server_config(&[c]).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(server_config(&[]).is_err());
    }
}
