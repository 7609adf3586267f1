//! Protocols and limits on the client side: HTTP/2 (h2c prior knowledge and ALPN over TLS),
//! TLS certificates chosen by SNI, WebSocket upgrades, gRPC-style trailers, and the header,
//! body, idle and header-read limits.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use common::*;
use flotilla_proxy::tls::{server_config, PemCertificate};
use flotilla_proxy::RouteState::Healthy;
use flotilla_proxy::{
    serve_listener, Limits, ListenerConfig, ListenerOptions, ListenerStats, RouteAction, Router,
    TargetGroup,
};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy listener with explicit options; stops when dropped.
struct Lb {
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn start(group: &Arc<TargetGroup>, config: ListenerConfig, options: ListenerOptions) -> Lb {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Arc::new(ArcSwap::from_pointee(Router::new(RouteAction::Forward(
        group.clone(),
    ))));
    let (stop, rx) = watch::channel(false);
    let stats = Arc::new(ListenerStats::default());
    tokio::spawn(serve_listener(listener, router, config, options, stats, rx));
    Lb { addr, _stop: stop }
}

async fn plain(group: &Arc<TargetGroup>) -> Lb {
    start(group, test_config(), ListenerOptions::default()).await
}

#[tokio::test]
async fn http2_prior_knowledge_on_a_plain_listener() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let lb = plain(&group).await;
    let stream = TcpStream::connect(lb.addr).await.unwrap();
    let (status, version, body) = h2_get(stream, &format!("http://{}/", lb.addr)).await;
    assert_eq!(status, 200);
    assert_eq!(version, http::Version::HTTP_2);
    // The target (an HTTP/1.1-only server) was reached over HTTP/1.1.
    assert_eq!(body, "b1");
    assert_eq!(backend.requests(), 1);
    // HTTP/1.1 still works on the same port.
    let (status, name, _) = get(&client(), &format!("http://{}/", lb.addr)).await;
    assert_eq!((status, name.as_str()), (200, "b1"));
}

#[tokio::test]
async fn http2_uploads_stream_to_http1_targets_and_connections_are_reused() {
    use http_body_util::StreamBody;
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let lb = plain(&group).await;
    let stream = TcpStream::connect(lb.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A body of unknown length (chunked to the target), echoed back, twice over.
    let payload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..2 {
        let frames: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> = payload
            .chunks(64 * 1024)
            .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let req = Request::post(format!("http://{}/echo", lb.addr))
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        send.ready().await.unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body == payload, "echoed {} bytes", body.len());
    }
    // Bodiless requests afterwards ride the pooled connection.
    for _ in 0..5 {
        let req = Request::get(format!("http://{}/", lb.addr))
            .body(StreamBody::new(futures_util::stream::iter(Vec::<
                Result<hyper::body::Frame<Bytes>, std::io::Error>,
            >::new(
            ))))
            .unwrap();
        send.ready().await.unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "b1");
    }
    assert_eq!(backend.requests(), 7);
    assert!(
        backend.connections() <= 2,
        "{} target connections for 7 requests",
        backend.connections()
    );
    assert_eq!(group.in_flight(backend.addr), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_are_multiplexed_and_large_answers_respect_flow_control() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let lb = plain(&group).await;
    let stream = TcpStream::connect(lb.addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // Slow and fast answers at once on one connection: the fast ones are not held up. The
    // slow ones wait at the target until the test lets them go, after every fast one is in.
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let call = |path: &'static str| {
        let mut send = send.clone();
        let uri = format!("http://{}{path}", lb.addr);
        let done = done.clone();
        tokio::spawn(async move {
            let req = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
            send.ready().await.unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            resp.into_body().collect().await.unwrap();
            (
                status,
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            )
        })
    };
    let slow: Vec<_> = (0..4).map(|_| call("/held")).collect();
    wait_for("the slow requests at the target", || {
        backend.requests() == 4
    })
    .await;
    let fast: Vec<_> = (0..16).map(|_| call("/")).collect();
    let mut fast_order = Vec::new();
    for f in fast {
        let (status, order) = tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("a fast answer behind held slow ones (hang guard)")
            .unwrap();
        assert_eq!(status, 200);
        fast_order.push(order);
    }
    assert!(
        slow.iter().all(|s| !s.is_finished()),
        "the slow ones are still held"
    );
    backend.gate.add_permits(4);
    let mut slow_order = Vec::new();
    for s in slow {
        let (status, order) = s.await.unwrap();
        assert_eq!(status, 200);
        slow_order.push(order);
    }
    // Every fast answer completed before any slow one.
    assert_eq!(fast_order.len(), 16);
    assert!(
        fast_order.iter().max() < slow_order.iter().min(),
        "{fast_order:?} {slow_order:?}"
    );
    assert_eq!(backend.requests(), 20);
    // 5 MiB: far beyond the initial 64 KiB windows, so it needs the client's WINDOW_UPDATEs.
    let n = 5 * 1024 * 1024 + 17;
    let mut send = send.clone();
    let req = Request::get(format!("http://{}/big?n={n}", lb.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    send.ready().await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), n);
    assert!(body.iter().all(|&b| b == b'x'));
    assert_eq!(group.in_flight(backend.addr), Some(0));
}

#[tokio::test]
async fn http2_body_longer_than_its_content_length_is_reset_and_never_reaches_the_target() {
    use common::raw_h2::{field, frame, PREFACE};
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let lb = plain(&group).await;
    let mut s = TcpStream::connect(lb.addr).await.unwrap();
    let mut block = Vec::new();
    field(&mut block, ":method", "POST");
    field(&mut block, ":scheme", "http");
    field(&mut block, ":authority", "a");
    field(&mut block, ":path", "/echo");
    field(&mut block, "content-length", "3");
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
                                            // Three declared, eight sent: to an HTTP/1.1 target the rest would be a second request.
    out.extend(frame(0x0, 0x1, 1, b"abcGET /")); // DATA, END_STREAM
    s.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reset = None;
    while reset.is_none() && Instant::now() < deadline {
        let n = match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => break,
            Err(_) => continue,
        };
        got.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while got.len() >= at + 9 {
            let len = (usize::from(got[at]) << 16)
                | (usize::from(got[at + 1]) << 8)
                | usize::from(got[at + 2]);
            if got.len() < at + 9 + len {
                break;
            }
            let (kind, stream) = (
                got[at + 3],
                u32::from_be_bytes([got[at + 5], got[at + 6], got[at + 7], got[at + 8]]),
            );
            if kind == 0x3 && stream == 1 {
                reset = Some(u32::from_be_bytes([
                    got[at + 9],
                    got[at + 10],
                    got[at + 11],
                    got[at + 12],
                ]));
            }
            at += 9 + len;
        }
    }
    assert_eq!(reset, Some(0x1), "RST_STREAM(PROTOCOL_ERROR) on stream 1");
    // Whatever reached the target, no second request did.
    assert!(backend.requests() <= 1);
}

/// A test CA and two leaf certificates it signed, in PEM, for `alpha.test` and `*.beta.test`.
struct Pki {
    ca: CertificateDer<'static>,
    alpha: PemCertificate,
    alpha_der: CertificateDer<'static>,
    beta: PemCertificate,
    beta_der: CertificateDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let pem = PemCertificate {
            cert_path: format!("{name}.crt").into(),
            cert_pem: cert.pem().into_bytes(),
            key_path: format!("{name}.key").into(),
            key_pem: key.serialize_pem().into_bytes(),
        };
        (pem, cert.der().clone())
    };
    let (alpha, alpha_der) = leaf("alpha.test");
    let (beta, beta_der) = leaf("*.beta.test");
    Pki {
        ca: ca.der().clone(),
        alpha,
        alpha_der,
        beta,
        beta_der,
    }
}

async fn tls_connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap()
}

async fn tls_lb(group: &Arc<TargetGroup>, pki: &Pki) -> Lb {
    let tls = server_config(&[pki.alpha.clone(), pki.beta.clone()]).unwrap();
    let options = ListenerOptions {
        tls: Some(tls),
        ..ListenerOptions::default()
    };
    start(group, test_config(), options).await
}

#[tokio::test]
async fn tls_certificate_is_chosen_by_sni() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let pki = pki();
    let lb = tls_lb(&group, &pki).await;

    let alpha = tls_connect(lb.addr, &pki.ca, "alpha.test", &[b"http/1.1"]).await;
    assert_eq!(
        alpha.get_ref().1.peer_certificates().unwrap()[0],
        pki.alpha_der
    );
    let beta = tls_connect(lb.addr, &pki.ca, "www.beta.test", &[b"http/1.1"]).await;
    assert_eq!(
        beta.get_ref().1.peer_certificates().unwrap()[0],
        pki.beta_der
    );

    // HTTP/1.1 through TLS reaches the target, which is told the client used https.
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(beta))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/headers")
        .header("host", "www.beta.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("x-forwarded-proto: https"), "{text}");
}

#[tokio::test]
async fn alpn_h2_over_tls() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let pki = pki();
    let lb = tls_lb(&group, &pki).await;
    let stream = tls_connect(lb.addr, &pki.ca, "alpha.test", &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, version, body) = h2_get(stream, "https://alpha.test/").await;
    assert_eq!((status, version), (200, http::Version::HTTP_2));
    assert_eq!(body, "b1");
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    use tokio_tungstenite::tungstenite::Message;
    let backend = ws_echo_backend().await;
    let group = group_of(&[(backend, Healthy)]);
    let lb = plain(&group).await;
    let tcp = TcpStream::connect(lb.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/chat", lb.addr), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "world"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    // The open tunnel counts as a request in flight on its target, until it closes.
    assert_eq!(group.in_flight(backend), Some(1));
    ws.close(None).await.unwrap();
    drop(ws);
    wait_for("tunnel to close", || group.in_flight(backend) == Some(0)).await;
}

#[tokio::test]
async fn an_idle_websocket_is_closed_after_the_idle_timeout() {
    use tokio_tungstenite::tungstenite::Message;
    let backend = ws_echo_backend().await;
    let group = group_of(&[(backend, Healthy)]);
    let config = ListenerConfig {
        idle_timeout: Duration::from_millis(300),
    };
    let lb = start(&group, config, ListenerOptions::default()).await;
    let tcp = TcpStream::connect(lb.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/", lb.addr), tcp)
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "ping");
    // Then silence: the proxy ends the tunnel and the client sees the connection end.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("idle tunnel not closed");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    wait_for("tunnel to close", || group.in_flight(backend) == Some(0)).await;
}

#[tokio::test]
async fn oversized_headers_get_431_and_a_closed_connection() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let lb = plain(&group).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let answer = raw_exchange(lb.addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    // Just under the limit passes.
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    let answer = raw_exchange(lb.addr, fits.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    assert_eq!(backend.requests(), 1);
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let options = ListenerOptions {
        limits: Limits {
            max_request_body: Some(10),
            ..Limits::default()
        },
        ..ListenerOptions::default()
    };
    let lb = start(&group, test_config(), options).await;
    let c = client();
    let post = |body: &'static str| {
        Request::post(format!("http://{}/echo", lb.addr))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    let (status, _, body) = send(&c, post("0123456789")).await;
    assert_eq!((status, &body[..]), (200, &b"0123456789"[..]));
    let (status, _, _) = send(&c, post("0123456789a")).await;
    assert_eq!(status, 413);
    assert_eq!(backend.requests(), 1);
    // A chunked body that grows past the limit is cut off with 413 too.
    let answer = raw_exchange(
        lb.addr,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn slowloris_gets_408_and_a_closed_socket() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let options = ListenerOptions {
        limits: Limits {
            header_read_timeout: Duration::from_millis(400),
            ..Limits::default()
        },
        ..ListenerOptions::default()
    };
    let lb = start(&group, test_config(), options).await;
    let mut s = TcpStream::connect(lb.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // One header byte at a time, never finishing the head; bounded in count.
    let mut out = Vec::new();
    for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let rest = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(rest.is_ok(), "socket not closed");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(backend.requests(), 0);
}

#[tokio::test]
async fn idle_time_between_requests_is_not_header_time() {
    let backend = TestBackend::start("b1").await;
    let group = group_of(&[(backend.addr, Healthy)]);
    let config = ListenerConfig {
        idle_timeout: Duration::from_millis(600),
    };
    let options = ListenerOptions {
        limits: Limits {
            header_read_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
        ..ListenerOptions::default()
    };
    let lb = start(&group, config, options).await;
    let mut s = TcpStream::connect(lb.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Idle longer than the header read timeout but shorter than the idle timeout.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Idle past the idle timeout: the proxy closes the connection without a word.
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("idle connection not closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(backend.requests(), 2);
}

#[tokio::test]
async fn grpc_trailers_pass_through_over_http2() {
    let backend = grpc_backend().await;
    let group = TargetGroup::with_protocol_version("grpc", flotilla_proxy::ProtocolVersion::Grpc);
    group.update(vec![target(backend, Healthy)]);
    let lb = plain(&group).await;
    let stream = TcpStream::connect(lb.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        let payload = format!("\0\0\0\0\x05call{i}");
        let mut req_trailers = http::HeaderMap::new();
        req_trailers.insert("x-client-trailer", format!("t{i}").parse().unwrap());
        let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(hyper::body::Frame::data(Bytes::from(payload.clone()))),
            Ok(hyper::body::Frame::trailers(req_trailers)),
        ];
        let req = Request::post(format!("http://{}/echo.Echo/Say", lb.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::StreamBody::new(futures_util::stream::iter(
                frames,
            )))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-seen-te"], "trailers");
        assert_eq!(resp.headers()["x-seen-version"], "HTTP/2.0");
        // Request trailers reached the target too.
        assert_eq!(
            resp.headers()["x-seen-request-trailer"],
            format!("t{i}").as_str()
        );
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("no trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "ok");
        assert_eq!(collected.to_bytes(), payload);
    }
    // One multiplexed connection carried every call.
    assert_eq!(group.stats()[0].requests_total, 3);
    assert_eq!(group.in_flight(backend), Some(0));
}
