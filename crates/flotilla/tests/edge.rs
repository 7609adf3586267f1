//! `examples/edge.toml` through the real binary, on fresh ports: the DNS name resolves to the
//! distribution, the distribution caches the load balancer's answers (Miss, then Hit), an
//! invalidation by the CLI empties it, the internal load balancer has its own name, and the
//! counters show in the API, the CLI and `/metrics`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

fn resolve(server: SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    let mut m = Message::new();
    m.set_id(7)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    for _ in 0..5 {
        s.send_to(&m.to_vec().unwrap(), server).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let r = Message::from_vec(&buf[..n]).unwrap();
            return r
                .answers()
                .iter()
                .filter_map(|a| match a.data() {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
        }
    }
    panic!("no DNS answer for {name}");
}

/// A port free for UDP and TCP.
fn port() -> u16 {
    loop {
        let p = free_port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

async fn cdn_get(cdn: u16, path: &str) -> (u16, String, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = hyper::Request::builder()
        .uri(format!("http://127.0.0.1:{cdn}{path}"))
        .header("host", "www.example.test")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("hang guard")
        .unwrap();
    let status = resp.status().as_u16();
    let x = resp
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, x, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_example_resolves_caches_and_invalidates() {
    let ports = Ports::new();
    let (internal, cdn, dns) = (free_port(), free_port(), port());
    let config = std::fs::read_to_string(repo_path("examples/edge.toml"))
        .unwrap()
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{}", ports.admin))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.listener))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{internal}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{cdn}"))
        .replace("127.0.0.1:5353", &format!("127.0.0.1:{dns}"))
        .replace("interval = \"5s\"", "interval = \"1s\"");
    let f = Flotilla::start("edge-example", ports, &config);
    let server: SocketAddr = ([127, 0, 0, 1], dns).into();
    f.wait_in_service("web", 2, Duration::from_secs(90)).await;
    f.wait_in_service("app", 2, Duration::from_secs(90)).await;
    assert_eq!(resolve(server, "www.example.test."), [Ipv4Addr::LOCALHOST]);
    wait_for("app.example.test", Duration::from_secs(30), || async {
        (resolve(server, "app.example.test.") == [Ipv4Addr::LOCALHOST]).then_some(())
    })
    .await;
    wait_for("origin.example.test", Duration::from_secs(30), || async {
        (resolve(server, "origin.example.test.") == [Ipv4Addr::LOCALHOST]).then_some(())
    })
    .await;

    // The first request fills the cache; the next ones (within the 5 s default TTL) hit it.
    let (status, x, first) = cdn_get(cdn, "/").await;
    assert_eq!((status, x.as_str()), (200, "Miss from flotilla"), "{first}");
    let (_, x, again) = cdn_get(cdn, "/").await;
    assert_eq!(x, "Hit from flotilla");
    assert_eq!(again, first, "the cached page, not a new time");
    let (ok, out, err) = cli(&f, &["invalidate", "cdn", "/*"]);
    assert!(ok, "{err}");
    assert!(out.contains("Completed"), "{out}");
    let (_, x, _) = cdn_get(cdn, "/").await;
    assert_eq!(x, "Miss from flotilla");
    // Health answers are never cached (TTL 0).
    assert_eq!(cdn_get(cdn, "/health").await.1, "Miss from flotilla");
    assert_eq!(cdn_get(cdn, "/health").await.1, "Miss from flotilla");

    let (ok, out, err) = cli(&f, &["distributions", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "cdn");
    assert_eq!(list[0]["hits"], 1);
    assert_eq!(list[0]["misses"], 4);
    assert_eq!(list[0]["origin_requests"], 4);
    let (_, health, _) = cli(&f, &["dns", "health"]);
    assert!(
        health
            .lines()
            .any(|l| l.starts_with("front") && l.contains(" healthy")),
        "{health}"
    );
    let metrics = get(
        &http_client(),
        &format!("http://127.0.0.1:{}/metrics", f.ports.admin),
    )
    .await
    .unwrap()
    .2;
    assert!(
        metrics.contains(
            "flotilla_distribution_requests_total{distribution=\"cdn\",result=\"hit\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("flotilla_distribution_origin_requests_total{distribution=\"cdn\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("flotilla_dns_health_check_healthy{health_check=\"front\",type=\"http\"} 1"),
        "{metrics}"
    );
}
