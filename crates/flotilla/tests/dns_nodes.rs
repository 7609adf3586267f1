//! DNS in cluster mode, end to end: real `flotilla node` processes in their own network
//! namespaces, a 3-member etcd, queries sent from the client namespace to each load balancer
//! node's own DNS. An alias to the load balancer answers with every live lb node whose own
//! health checks find a healthy target; a SIGKILLed node and a node cut off from every target
//! leave the answers, and `flotilla apply` reaches every node's zones. Deadlines are hang
//! guards; what is asserted is the answers.

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
    let mut lab = Lab::new(test, &HOSTS)?;
    let applied = lab.apply(&dns_config(""));
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
