//! The DNS server through the real binary, over UDP and TCP on loopback: weighted answers in
//! proportion, failover on a health check and back, alias records to a load balancer whose
//! targets come and go, refusals outside the hosted zones, changes by the admin API and by
//! reload, and hostile packets that must never bring it down.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// A port free for both UDP and TCP on loopback.
fn dns_port() -> u16 {
    loop {
        let p = free_port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

fn query_bytes(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// One UDP exchange; `None` when nothing came back within a second.
fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(bytes, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn udp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    for attempt in 0..5u16 {
        if let Some(b) = udp_raw(server, &query_bytes(name, rtype, 4000 + attempt)) {
            return Message::from_vec(&b).unwrap();
        }
    }
    panic!("no answer to {name} {rtype} from {server}");
}

fn tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = query_bytes(name, rtype, 77);
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn dns_section(port: u16, records: &str) -> String {
    format!(
        r#"
[dns]
bind = "127.0.0.1:{port}"
[dns.zones."example.test"]
{records}
"#
    )
}

const WEIGHTED: &str = r#"
[[dns.zones."example.test".records]]
name = "www"
type = "A"
ttl = 30
routing = "weighted"
set_identifier = "blue"
weight = 80
values = ["192.0.2.1"]

[[dns.zones."example.test".records]]
name = "www"
type = "A"
ttl = 30
routing = "weighted"
set_identifier = "green"
weight = 20
values = ["192.0.2.2"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_answers_in_proportion_over_udp_and_tcp_and_refuses_other_names() {
    let ports = Ports::new();
    let dns = dns_port();
    let config = demo_config(&ports, 0, 1, 0, &dns_section(dns, WEIGHTED));
    let f = Flotilla::start("dns-weighted", ports, &config);
    let server: SocketAddr = ([127, 0, 0, 1], dns).into();
    let blue = Ipv4Addr::new(192, 0, 2, 1);
    let mut blues = 0;
    let mut total = 0;
    for _ in 0..1000 {
        let m = udp(server, "www.example.test.", RecordType::A);
        assert!(m.authoritative());
        assert_eq!(m.answers()[0].ttl(), 30);
        let got = a_records(&m);
        assert_eq!(got.len(), 1);
        total += 1;
        blues += usize::from(got[0] == blue);
    }
    assert_eq!(total, 1000);
    assert!(
        (750..=850).contains(&blues),
        "blue answered {blues} of 1000 (weight 80 %)"
    );
    assert_eq!(
        a_records(&tcp(server, "www.example.test.", RecordType::A)).len(),
        1
    );
    let refused = udp(server, "example.org.", RecordType::A);
    assert_eq!(refused.response_code(), ResponseCode::Refused);
    assert!(refused.answers().is_empty());
    let nx = udp(server, "nope.example.test.", RecordType::A);
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert!(matches!(nx.name_servers()[0].data(), RData::SOA(_)));
    let soa = udp(server, "example.test.", RecordType::SOA);
    assert!(matches!(soa.answers()[0].data(), RData::SOA(_)));
    let (ok, out, _) = cli(&f, &["dns", "records", "example.test"]);
    assert!(ok);
    assert_eq!(
        out.lines().filter(|l| l.contains("weighted")).count(),
        2,
        "{out}"
    );
}

/// A TCP endpoint the test opens and closes: the health check's target.
struct Endpoint {
    port: u16,
    listener: Option<std::net::TcpListener>,
}

impl Endpoint {
    fn new() -> Self {
        let port = free_port();
        Endpoint {
            port,
            listener: Some(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap()),
        }
    }
    fn close(&mut self) {
        self.listener = None;
    }
    fn open(&mut self) {
        self.listener = Some(std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_flips_to_the_secondary_while_the_primary_check_fails_and_back() {
    let mut endpoint = Endpoint::new();
    let ports = Ports::new();
    let dns = dns_port();
    let records = format!(
        r#"
[dns.health_checks.primary]
type = "tcp"
target = "127.0.0.1:{}"
interval = "1s"
failure_threshold = 2

[[dns.zones."example.test".records]]
name = "app"
type = "A"
routing = "failover"
set_identifier = "main"
failover = "primary"
health_check = "primary"
values = ["192.0.2.10"]

[[dns.zones."example.test".records]]
name = "app"
type = "A"
routing = "failover"
set_identifier = "backup"
failover = "secondary"
values = ["192.0.2.20"]
"#,
        endpoint.port
    );
    let config = demo_config(&ports, 0, 1, 0, &dns_section(dns, &records));
    let f = Flotilla::start("dns-failover", ports, &config);
    let server: SocketAddr = ([127, 0, 0, 1], dns).into();
    let primary = Ipv4Addr::new(192, 0, 2, 10);
    let secondary = Ipv4Addr::new(192, 0, 2, 20);
    let answer = || a_records(&udp(server, "app.example.test.", RecordType::A));
    assert_eq!(answer(), [primary]);
    endpoint.close();
    wait_for("the secondary", Duration::from_secs(30), || async {
        (answer() == [secondary]).then_some(())
    })
    .await;
    let (_, out, _) = cli(&f, &["dns", "health"]);
    assert!(
        out.lines()
            .any(|l| l.contains("primary") && l.contains("unhealthy")),
        "{out}"
    );
    endpoint.open();
    wait_for("the primary again", Duration::from_secs(30), || async {
        (answer() == [primary]).then_some(())
    })
    .await;
    let metrics: String = reqwest_text(&f, "/metrics").await;
    assert!(
        metrics
            .contains("flotilla_dns_health_check_healthy{health_check=\"primary\",type=\"tcp\"} 1"),
        "{metrics}"
    );
}

async fn reqwest_text(f: &Flotilla, path: &str) -> String {
    let url = format!("http://127.0.0.1:{}{path}", f.ports.admin);
    get(&http_client(), &url).await.unwrap().2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_to_the_load_balancer_follows_its_targets_health() {
    let ports = Ports::new();
    let dns = dns_port();
    let records = r#"
[[dns.zones."example.test".records]]
name = "@"
type = "A"
routing = "failover"
set_identifier = "lb"
failover = "primary"
alias = { load_balancer = "front", evaluate_target_health = true }

[[dns.zones."example.test".records]]
name = "@"
type = "A"
routing = "failover"
set_identifier = "sorry"
failover = "secondary"
values = ["192.0.2.99"]
"#;
    let config = demo_config(&ports, 0, 1, 1, &dns_section(dns, records));
    let f = Flotilla::start("dns-alias", ports, &config);
    let server: SocketAddr = ([127, 0, 0, 1], dns).into();
    f.wait_in_service("web", 1, Duration::from_secs(60)).await;
    let m = wait_for(
        "the load balancer's address",
        Duration::from_secs(30),
        || async {
            let m = udp(server, "example.test.", RecordType::A);
            (a_records(&m) == [Ipv4Addr::LOCALHOST]).then_some(m)
        },
    )
    .await;
    assert_eq!(m.answers()[0].ttl(), 60, "alias records answer with 60 s");
    let (ok, _, err) = cli(&f, &["scale", "web", "0"]);
    assert!(ok, "{err}");
    wait_for(
        "the secondary while no target is healthy",
        Duration::from_secs(60),
        || async {
            (a_records(&udp(server, "example.test.", RecordType::A))
                == [Ipv4Addr::new(192, 0, 2, 99)])
            .then_some(())
        },
    )
    .await;
    let (ok, _, err) = cli(&f, &["scale", "web", "1"]);
    assert!(ok, "{err}");
    wait_for(
        "the load balancer again",
        Duration::from_secs(60),
        || async {
            (a_records(&udp(server, "example.test.", RecordType::A)) == [Ipv4Addr::LOCALHOST])
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_health_checks_change_through_the_api_and_by_reload() {
    let ports = Ports::new();
    let dns = dns_port();
    let config = demo_config(&ports, 0, 1, 0, &dns_section(dns, WEIGHTED));
    let f = Flotilla::start("dns-api", ports, &config);
    let server: SocketAddr = ([127, 0, 0, 1], dns).into();
    let body = serde_json::json!({
        "name": "api", "type": "A",
        "record_sets": [{ "name": "api", "type": "A", "ttl": 5, "values": ["192.0.2.55"] }]
    });
    let sets: Vec<serde_json::Value> = f
        .admin
        .put("/v1/dns/zones/example.test/records", &body)
        .await
        .unwrap();
    assert_eq!(sets.len(), 3);
    assert_eq!(
        a_records(&udp(server, "api.example.test.", RecordType::A)),
        [Ipv4Addr::new(192, 0, 2, 55)]
    );
    let bad = serde_json::json!({ "name": "api", "type": "A", "record_sets": [{ "name": "api", "type": "A", "values": ["not-an-ip"] }] });
    let err = f
        .admin
        .put::<_, serde_json::Value>("/v1/dns/zones/example.test/records", &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("IPv4"), "{err}");
    let check = serde_json::json!({ "type": "tcp", "target": "127.0.0.1:1", "interval": "1s" });
    let info: serde_json::Value = f
        .admin
        .put("/v1/dns/health-checks/extra", &check)
        .await
        .unwrap();
    assert_eq!(info["name"], "extra");
    // A reload re-reads the file: the API's record set is gone, the file's new one answers.
    let reloaded = config.replace("192.0.2.2", "192.0.2.3");
    f.reload_with(&reloaded).await;
    assert_eq!(
        udp(server, "api.example.test.", RecordType::A).response_code(),
        ResponseCode::NXDomain
    );
    let seen: std::collections::BTreeSet<_> = (0..200)
        .flat_map(|_| a_records(&udp(server, "www.example.test.", RecordType::A)))
        .collect();
    assert!(
        seen.contains(&Ipv4Addr::new(192, 0, 2, 3)) && !seen.contains(&Ipv4Addr::new(192, 0, 2, 2)),
        "{seen:?}"
    );
}

/// Sends one hostile packet by UDP and over TCP (framed), and checks any UDP answer's code.
fn hostile_exchange(server: SocketAddr, h: &[u8]) {
    if let Some(b) = udp_raw(server, h) {
        if let Ok(m) = Message::from_vec(&b) {
            assert!(
                matches!(
                    m.response_code(),
                    ResponseCode::FormErr
                        | ResponseCode::NotImp
                        | ResponseCode::Refused
                        | ResponseCode::NoError
                        | ResponseCode::NXDomain
                        | ResponseCode::ServFail
                ),
                "{:?}",
                m.response_code()
            );
        }
    }
    if let Ok(mut s) = TcpStream::connect(server) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = s.write_all(&(h.len() as u16).to_be_bytes());
        let _ = s.write_all(h);
        let mut sink = [0u8; 512];
        let _ = s.read(&mut sink);
    }
}

/// Hostile packets: each gets FORMERR/NOTIMP/REFUSED or nothing, and the server keeps
/// answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_never_crash_the_server() {
    let ports = Ports::new();
    let dns = dns_port();
    let config = demo_config(&ports, 0, 1, 0, &dns_section(dns, WEIGHTED));
    let f = Flotilla::start("dns-malformed", ports, &config);
    let server: SocketAddr = ([127, 0, 0, 1], dns).into();
    let good = query_bytes("www.example.test.", RecordType::A, 9);
    let rcode = |b: Option<Vec<u8>>| b.map(|b| Message::from_vec(&b).map(|m| m.response_code()));
    // A class other than IN (CH): not implemented.
    let mut ch = good.clone();
    let n = ch.len();
    ch[n - 1] = 3;
    assert_eq!(
        rcode(udp_raw(server, &ch)).map(Result::unwrap),
        Some(ResponseCode::NotImp)
    );
    // Opcode UPDATE (5): not implemented.
    let mut update = good.clone();
    update[2] = (update[2] & 0x87) | (5 << 3);
    let got = rcode(udp_raw(server, &update));
    assert!(
        matches!(
            got,
            None | Some(Ok(ResponseCode::NotImp)) | Some(Ok(ResponseCode::FormErr))
        ),
        "{got:?}"
    );
    // Two questions: format error.
    let mut two = Message::from_vec(&good).unwrap();
    two.add_query(Query::query(
        Name::from_ascii("x.example.test.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(
        rcode(udp_raw(server, &two.to_vec().unwrap())).map(Result::unwrap),
        Some(ResponseCode::FormErr)
    );
    let mut hostile: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        good[..11].to_vec(),
        good[..good.len() - 3].to_vec(),
        // A question whose name is a compression pointer to itself.
        vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1],
        // A pointer loop between two labels.
        vec![
            0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0xC0, 12, 0, 1, 0, 1,
        ],
        // A label longer than the packet.
        vec![0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a', b'b'],
        // Counts far beyond the content.
        vec![0, 4, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        // A response (QR set): never answered, so no reflection.
        {
            let mut r = good.clone();
            r[2] |= 0x80;
            r
        },
        // Oversized: 60 KB of garbage after a valid question.
        {
            let mut o = good.clone();
            o.extend(std::iter::repeat_n(0xAB, 60_000));
            o
        },
    ];
    for i in 0..200u8 {
        hostile.push(
            (0..(i as usize % 64 + 1))
                .map(|j| i.wrapping_mul(31).wrapping_add(j as u8))
                .collect(),
        );
    }
    // Thirty packets at a time, each from its own thread and socket: an unanswered packet
    // costs its wait once per batch instead of once per packet.
    let mut sent = 0;
    for batch in hostile.chunks(30) {
        std::thread::scope(|scope| {
            for h in batch {
                scope.spawn(move || hostile_exchange(server, h));
            }
        });
        sent += batch.len();
    }
    assert_eq!(sent, 210);
    assert!(alive(f.pid()), "flotilla died");
    assert_eq!(
        a_records(&udp(server, "www.example.test.", RecordType::A)).len(),
        1
    );
    assert_eq!(
        a_records(&tcp(server, "www.example.test.", RecordType::A)).len(),
        1
    );
}
