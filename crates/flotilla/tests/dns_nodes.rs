//! DNS in cluster mode, end to end: real `flotilla node` processes in their own network
//! namespaces, a 3-member etcd, queries sent from the client namespace to each load balancer
//! node's own DNS. An alias to the load balancer answers with every live lb node whose own
//! health checks find a healthy target; a SIGKILLed node and a node cut off from every target
//! leave the answers, and `flotilla apply` reaches every node's zones. The DNS admin API of
//! any node changes every node's answers (until the next apply); distributions are served by
//! every lb node, and an invalidation taken by one node empties every node's cache. Deadlines
//! are hang guards; what is asserted is the answers.

mod lab;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use flotilla_testbed::{poll, run_in};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use lab::{config_with, host, Host, Lab, CLIENT};

/// The port every lb node's DNS answers on (its own namespace, so one port for all).
const DNS_PORT: u16 = 5353;
/// Hang guard for a change to reach the answers: lease TTL (4 s) + health checks + margin.
const WITHDRAW_GUARD: Duration = Duration::from_secs(45);

/// A control and compute host (the instances) and three load balancer nodes, one per zone.
const HOSTS: [Host; 4] = [
    host("h1", "az-a", 11, "control,compute"),
    host("l1", "az-a", 41, "lb"),
    host("l2", "az-b", 42, "lb"),
    host("l3", "az-c", 43, "lb"),
];
const LBS: [&str; 3] = ["l1", "l2", "l3"];

/// The lab's config (two instances; their health is the process's alone: `process`, so an
/// lb node that cannot reach them does not make the leader replace them) with `[dns]`: the
/// apex an alias to load balancer `front`, and `extra` records.
fn dns_config(extra: &str) -> String {
    let mut c = config_with(2, "10s", "process");
    c.push_str(&format!(
        r#"
[dns]
bind = "0.0.0.0:{DNS_PORT}"

[dns.zones."example.test"]

[[dns.zones."example.test".records]]
name = "@"
type = "A"
alias = {{ load_balancer = "front", evaluate_target_health = true }}
{extra}
"#
    ));
    c
}

/// One UDP query from the client namespace to `server`; `None` when nothing came back.
fn query(lab: &Lab, server: SocketAddr, name: &str) -> Option<Message> {
    let name = name.to_string();
    run_in(&lab.topo.ns(CLIENT), move || async move {
        let mut m = Message::new();
        m.set_id(4242)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(&name).ok()?, RecordType::A));
        let s = UdpSocket::bind("0.0.0.0:0").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.send_to(&m.to_vec().ok()?, server).ok()?;
        let mut buf = vec![0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    })
}

/// The A records `node`'s DNS answers for `name` (`None`: no answer).
fn answers(lab: &Lab, node: &str, name: &str) -> Option<BTreeSet<Ipv4Addr>> {
    let server = SocketAddr::new(lab.addr(node).parse().ok()?, DNS_PORT);
    let m = query(lab, server, name)?;
    Some(
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
    )
}

fn addrs(lab: &Lab, nodes: &[&str]) -> BTreeSet<Ipv4Addr> {
    nodes
        .iter()
        .map(|n| lab.addr(n).parse().expect("an address"))
        .collect()
}

/// Waits until the DNS of every node in `asked` answers `name` with exactly `want`'s addresses.
fn wait_answers(lab: &Lab, asked: &[&str], name: &str, want: &[&str], guard: Duration) {
    let want = addrs(lab, want);
    for node in asked {
        poll(
            &format!("{node} answering {name} with {want:?}"),
            guard,
            || (answers(lab, node, name).as_ref() == Some(&want)).then_some(()),
        );
    }
}

fn started(test: &str) -> Option<Lab> {
    started_with(test, "")
}

fn started_with(test: &str, extra: &str) -> Option<Lab> {
    let mut lab = Lab::new(test, &HOSTS)?;
    let applied = lab.apply(&dns_config(extra));
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    lab.start_all();
    lab.wait_steady("l1", 2);
    Some(lab)
}

/// Every lb node's DNS answers the alias with all three lb nodes; a record added by
/// `flotilla apply` is answered by each; a SIGKILLed node leaves every other node's answers
/// once its lease runs out.
#[test]
fn alias_answers_list_every_live_lb_node_and_drop_a_killed_one() {
    let Some(mut lab) = started("alias_answers_list_every_live_lb_node_and_drop_a_killed_one")
    else {
        return;
    };
    wait_answers(&lab, &LBS, "example.test.", &LBS, lab::GUARD);
    let reloaded = lab.apply(&dns_config(
        r#"
[[dns.zones."example.test".records]]
name = "static"
type = "A"
values = ["192.0.2.7"]
"#,
    ));
    assert!(reloaded.status.success());
    let want = BTreeSet::from([Ipv4Addr::new(192, 0, 2, 7)]);
    for node in LBS {
        poll(
            &format!("{node} answering the applied record"),
            lab::GUARD,
            || (answers(&lab, node, "static.example.test.").as_ref() == Some(&want)).then_some(()),
        );
    }
    lab.kill_node("l3");
    wait_answers(
        &lab,
        &["l1", "l2"],
        "example.test.",
        &["l1", "l2"],
        WITHDRAW_GUARD,
    );
}

/// An lb node that can reach no target (a prohibit route to the instances' host in its own
/// namespace) finds none healthy and leaves the answers of every node, its own included,
/// while the others stay; once the route is gone it is answered again.
#[test]
fn an_lb_node_without_a_healthy_target_leaves_the_answers() {
    let Some(lab) = started("an_lb_node_without_a_healthy_target_leaves_the_answers") else {
        return;
    };
    wait_answers(&lab, &LBS, "example.test.", &LBS, lab::GUARD);
    let target_host = format!("{}/32", lab.addr("h1"));
    let route = |op: &str| {
        let ok = Command::new("ip")
            .args([
                "-n",
                &lab.topo.ns("l2"),
                "route",
                op,
                "prohibit",
                &target_host,
            ])
            .status()
            .expect("ip route")
            .success();
        assert!(ok, "ip route {op} prohibit {target_host} in l2");
    };
    route("add");
    wait_answers(&lab, &LBS, "example.test.", &["l1", "l3"], WITHDRAW_GUARD);
    route("del");
    wait_answers(&lab, &LBS, "example.test.", &LBS, WITHDRAW_GUARD);
}

/// The port every lb node serves the distribution on.
const CDN_PORT: u16 = 8000;

/// A distribution in front of load balancer `front`, cached an hour, and a DNS alias to it.
const CDN: &str = r#"
[[dns.zones."example.test".records]]
name = "cdn"
type = "A"
alias = { distribution = "cdn" }

[distributions.cdn]
listeners = [{ bind = "0.0.0.0:8000", protocol = "http" }]

[distributions.cdn.origins.front]
load_balancer = "front"

[distributions.cdn.default_behavior]
origin = "front"
default_ttl = "1h"
max_ttl = "1h"
cache_key = { query_strings = "none" }
"#;

/// `GET path` of `port` on `node` from the client namespace (with the admin token on the
/// admin port only: a shared cache does not store answers to authorized requests): status,
/// head and body (`None`: no answer).
fn http_get(lab: &Lab, node: &str, port: u16, path: &str) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let addr = SocketAddr::new(lab.addr(node).parse().ok()?, port);
    let auth = match port {
        CDN_PORT => String::new(),
        _ => format!("Authorization: Bearer {}\r\n", lab::TOKEN),
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: cdn.example.test\r\n{auth}Connection: close\r\n\r\n");
    run_in(&lab.topo.ns(CLIENT), move || async move {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(request.as_bytes()).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, head.to_ascii_lowercase(), body.to_string()))
    })
}

/// `GET /` of `node`'s distribution: status and `X-Cache`.
fn cdn_get(lab: &Lab, node: &str) -> Option<(u16, String)> {
    let (status, head, _) = http_get(lab, node, CDN_PORT, "/")?;
    let x_cache = head
        .lines()
        .find_map(|l| l.strip_prefix("x-cache:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    Some((status, x_cache))
}

/// Waits until `node`'s distribution answers 200 with `want` (`Miss`, `Hit`) for `/`.
fn wait_cache(lab: &Lab, node: &str, want: &str) {
    poll(&format!("{node} answering {want}"), lab::GUARD, || {
        let (status, x) = cdn_get(lab, node)?;
        (status == 200 && x == format!("{} from flotilla", want.to_ascii_lowercase())).then_some(())
    });
}

/// Every lb node serves the distribution on its own address: `/` is a Miss, then a Hit, on
/// each (three caches); the DNS alias to it answers with all three nodes; an invalidation
/// posted to l1 is applied by every node (its status, read on l3, is Completed with one
/// object per node) and the next request on l3 is a Miss again. l2's `/v1/distributions` and
/// `/metrics` count its own hits (after the leader's metrics).
#[test]
fn a_distribution_on_every_lb_node_and_an_invalidation_through_one_node() {
    let Some(lab) = started_with(
        "a_distribution_on_every_lb_node_and_an_invalidation_through_one_node",
        CDN,
    ) else {
        return;
    };
    for node in LBS {
        wait_cache(&lab, node, "miss");
        assert_eq!(
            cdn_get(&lab, node),
            Some((200, "hit from flotilla".to_string()))
        );
    }
    wait_answers(&lab, &LBS, "cdn.example.test.", &LBS, lab::GUARD);
    let dists: Vec<serde_json::Value> = lab.get("l2", "/v1/distributions").unwrap();
    assert_eq!(dists.len(), 1, "{dists:?}");
    assert_eq!(dists[0]["name"], "cdn");
    assert!(dists[0]["hits"].as_u64() >= Some(1), "{dists:?}");
    let body = serde_json::json!({ "paths": ["/*"] });
    let inv: serde_json::Value = lab
        .post("l1", "/v1/distributions/cdn/invalidations", body)
        .unwrap();
    let id = inv["id"].as_str().expect("an id").to_string();
    poll(
        "the invalidation completed on every node",
        lab::GUARD,
        || {
            let list: Vec<serde_json::Value> =
                lab.get("l3", "/v1/distributions/cdn/invalidations").ok()?;
            let i = list.iter().find(|i| i["id"] == id.as_str())?;
            (i["status"] == "Completed").then(|| i.clone())
        },
    );
    let list: Vec<serde_json::Value> = lab
        .get("l3", "/v1/distributions/cdn/invalidations")
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["objects"], 3, "{list:?}");
    assert_eq!(
        cdn_get(&lab, "l3"),
        Some((200, "miss from flotilla".to_string()))
    );
    let bad = lab.post::<_, serde_json::Value>(
        "l2",
        "/v1/distributions/cdn/invalidations",
        serde_json::json!({ "paths": ["no-slash"] }),
    );
    assert!(bad.as_ref().is_err_and(|e| e.contains("400")), "{bad:?}");
    let (status, _, metrics) = http_get(&lab, "l2", 9090, "/metrics").expect("metrics");
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics
            .contains(r#"flotilla_distribution_requests_total{distribution="cdn",result="hit"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("flotilla_dns_queries_total"), "{metrics}");
    // The leader's metrics come first (forwarded), then l2's own, under one `# EOF`.
    assert!(metrics.contains("flotilla_desired_capacity"), "{metrics}");
    assert_eq!(metrics.matches("# EOF").count(), 1, "{metrics}");
}

/// A record set PUT on l1 is answered by every node's DNS; a bad one sent to l2 is refused
/// with the reason and changes nothing; a health check PUT on l2 is listed by l3; the next
/// `flotilla apply` replaces the API's changes with the file, as a reload does under `up`.
#[test]
fn dns_changes_through_one_node_reach_every_node_until_the_next_apply() {
    let Some(lab) = started("dns_changes_through_one_node_reach_every_node_until_the_next_apply")
    else {
        return;
    };
    let body = serde_json::json!({
        "name": "api", "type": "A",
        "record_sets": [{ "name": "api", "type": "A", "ttl": 5, "values": ["192.0.2.55"] }]
    });
    let sets: Vec<serde_json::Value> = lab
        .put("l1", "/v1/dns/zones/example.test/records", body)
        .unwrap();
    assert_eq!(sets.len(), 2, "{sets:?}");
    let want = BTreeSet::from([Ipv4Addr::new(192, 0, 2, 55)]);
    for node in LBS {
        poll(
            &format!("{node} answering the API's record"),
            lab::GUARD,
            || (answers(&lab, node, "api.example.test.").as_ref() == Some(&want)).then_some(()),
        );
    }
    let bad = serde_json::json!({ "name": "api", "type": "A", "record_sets": [{ "name": "api", "type": "A", "values": ["not-an-ip"] }] });
    let err = lab
        .put::<_, serde_json::Value>("l2", "/v1/dns/zones/example.test/records", bad)
        .unwrap_err();
    assert!(err.contains("IPv4"), "{err}");
    for node in LBS {
        assert_eq!(
            answers(&lab, node, "api.example.test.").as_ref(),
            Some(&want)
        );
    }
    let check = serde_json::json!({ "type": "tcp", "target": "192.0.2.1:1", "interval": "1s" });
    let info: serde_json::Value = lab.put("l2", "/v1/dns/health-checks/extra", check).unwrap();
    assert_eq!(info["name"], "extra");
    poll("l3 listing the API's health check", lab::GUARD, || {
        let checks: Vec<serde_json::Value> = lab.get("l3", "/v1/dns/health-checks").ok()?;
        checks.iter().any(|c| c["name"] == "extra").then_some(())
    });
    let applied = lab.apply(&dns_config(
        r#"
[[dns.zones."example.test".records]]
name = "static"
type = "A"
values = ["192.0.2.7"]
"#,
    ));
    assert!(applied.status.success());
    let static_want = BTreeSet::from([Ipv4Addr::new(192, 0, 2, 7)]);
    for node in LBS {
        poll(
            &format!("{node} answering the applied file"),
            lab::GUARD,
            || {
                (answers(&lab, node, "static.example.test.").as_ref() == Some(&static_want))
                    .then_some(())
            },
        );
        assert_eq!(
            answers(&lab, node, "api.example.test."),
            Some(BTreeSet::new())
        );
    }
}
