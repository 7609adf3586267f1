//! HTTPS end to end with the real binary: an `https` listener with two certificates (PEM files
//! generated into the test's directory) in front of the demo app, chosen by SNI; and
//! certificate problems reported before anything starts.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};

/// A CA and leaf certificates it signs, written as PEM files.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; returns the certificate.
    fn leaf(&self, dir: &Path, stem: &str, name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap();
        std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
        cert.der().clone()
    }
}

fn https_config(ports: &Ports, dir: &Path, certs: &[(&str, &str)]) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|(c, k)| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                dir.join(c).display(),
                dir.join(k).display()
            )
        })
        .collect();
    let bind = format!("bind = \"127.0.0.1:{}\"\n", ports.listener);
    demo_config(ports, 1, 2, 1, "").replacen(
        &bind,
        &format!(
            "{bind}protocol = \"https\"\ncertificates = [{}]\n",
            list.join(", ")
        ),
        1,
    )
}

async fn tls_get(
    port: u16,
    ca: &CertificateDer<'static>,
    sni: &str,
) -> (CertificateDer<'static>, u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", sni)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (served, status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_serves_the_demo_app_with_sni_certificates() {
    let ports = Ports::new();
    let dir = temp_dir("https-certs");
    let pki = Pki::new();
    let www = pki.leaf(&dir, "www", "www.example.test");
    let api = pki.leaf(&dir, "api", "*.api.test");
    let config = https_config(
        &ports,
        &dir,
        &[("www.crt", "www.key"), ("api.crt", "api.key")],
    );
    let f = Flotilla::start("https", ports, &config);
    let port = f.ports.listener;
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;

    let ca = pki.ca.der().clone();
    let (served, status, body) = tls_get(port, &ca, "www.example.test").await;
    assert_eq!(served, www);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("It is "), "{body}");
    let (served, status, body) = tls_get(port, &ca, "v1.api.test").await;
    assert_eq!(served, api);
    assert_eq!(status, 200, "{body}");
    drop(f);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validate_names_a_missing_certificate_file() {
    let ports = Ports::new();
    let dir = temp_dir("https-missing");
    let pki = Pki::new();
    pki.leaf(&dir, "www", "www.example.test");
    let config = https_config(&ports, &dir, &[("www.crt", "nope.key")]);
    let path = dir.join("flotilla.toml");
    std::fs::write(&path, &config).unwrap();
    let out = Command::new(flotilla_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = config
        .lines()
        .position(|l| l.starts_with("certificates"))
        .unwrap()
        + 1;
    let at = format!("{}:{line}:", path.display());
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&at) && l.contains("nope.key") && l.contains("does not exist")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn up_fails_on_a_key_that_does_not_match_its_certificate() {
    let ports = Ports::new();
    let dir = temp_dir("https-mismatch");
    let pki = Pki::new();
    pki.leaf(&dir, "www", "www.example.test");
    pki.leaf(&dir, "other", "other.test");
    let config = https_config(&ports, &dir, &[("www.crt", "other.key")]);
    let path = dir.join("flotilla.toml");
    std::fs::write(&path, &config).unwrap();
    let mut child = Command::new(flotilla_bin())
        .arg("up")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flotilla up kept running with a mismatched key");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("other.key"), "{stderr}");
    assert!(stderr.contains("www.crt"), "{stderr}");
    // Nothing was left listening.
    assert!(std::net::TcpStream::connect(addr(ports.listener)).is_err());
    let _ = std::fs::remove_dir_all(dir);
}
