//! The kept answers against the full path: for every name, type, case, flag and EDNS
//! combination asked, a kept answer decodes (by hickory) to the same message as the full
//! path's answer — and is the same bytes —, keeps the client's question bytes, and only fixed
//! names and simple queries have one.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType as WireType};

use super::*;

const ZONE: &str = r#"
[dns]
bind = "127.0.0.1:0"
[dns.health_checks.p]
type = "tcp"
target = "127.0.0.1:1"
[dns.zones."example.test"]
name_servers = ["ns1.example.test", "ns2.example.test"]
[[dns.zones."example.test".records]]
name = "www"
type = "A"
values = ["192.0.2.1", "192.0.2.2"]
[[dns.zones."example.test".records]]
name = "www"
type = "AAAA"
values = ["2001:db8::1"]
[[dns.zones."example.test".records]]
name = "example.test"
type = "MX"
values = ["10 mail.example.test"]
[[dns.zones."example.test".records]]
name = "mail"
type = "TXT"
values = ["v=spf1 -all"]
[[dns.zones."example.test".records]]
name = "alias"
type = "CNAME"
values = ["www.example.test"]
[[dns.zones."example.test".records]]
name = "*.wild"
type = "A"
values = ["192.0.2.9"]
[[dns.zones."example.test".records]]
name = "checked"
type = "A"
values = ["192.0.2.3"]
health_check = "p"
[[dns.zones."example.test".records]]
name = "blue"
type = "A"
routing = "weighted"
set_identifier = "b"
weight = 1
values = ["192.0.2.4"]
"#;

fn state() -> Arc<ZoneSet> {
    // A TXT set too large for an EDNS answer (1232 bytes): the full path truncates it.
    let big: Vec<String> = (0..8)
        .map(|i| format!("\"{}\"", "x".repeat(200 + i)))
        .collect();
    let text = format!(
        "{ZONE}[[dns.zones.\"example.test\".records]]\nname = \"big\"\ntype = \"TXT\"\nvalues = [{}]\n",
        big.join(", ")
    );
    let cfg = flotilla_config::parse(&text, std::path::Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(ZoneSet::new(cfg.dns.as_ref().expect("[dns]")))
}

pub(super) fn handler(zones: &Arc<ZoneSet>) -> Handler {
    Handler::detached(Arc::clone(zones))
}

/// A query for `name` (as written, its case kept) of type `t`.
pub(super) fn query(
    name: &str,
    t: WireType,
    id: u16,
    rd: bool,
    cd: bool,
    edns: Option<Edns>,
) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id);
    m.set_recursion_desired(rd);
    m.set_checking_disabled(cd);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(e) = edns {
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// The full path's answer to `q`.
pub(super) async fn full(h: &Handler, q: &[u8]) -> Vec<u8> {
    let reply = Reply::default();
    let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 5300));
    assert!(
        answer_datagram(h, q, src, &reply).await,
        "full path answers"
    );
    let out = reply.buf().clone();
    out
}

const FIXED: [&str; 6] = [
    "www.example.test.",
    "WWW.Example.TEST.",
    "wWw.eXaMpLe.TeSt.",
    "example.test.",
    "EXAMPLE.test.",
    "Mail.Example.Test.",
];
const TYPES_ASKED: [WireType; 9] = [
    WireType::A,
    WireType::AAAA,
    WireType::CNAME,
    WireType::TXT,
    WireType::MX,
    WireType::SRV,
    WireType::NS,
    WireType::SOA,
    WireType::CAA,
];

#[tokio::test]
async fn kept_answers_decode_as_the_full_paths_for_every_case_type_flag_and_edns() {
    let zones = state();
    let h = handler(&zones);
    let fast = FastAnswers::build(Arc::clone(&zones)).await;
    let mut compared = 0;
    let mut id = 7u16;
    for name in FIXED {
        for t in TYPES_ASKED {
            for (rd, cd, edns) in [
                (false, false, None),
                (true, false, None),
                (true, true, Some(Edns::new())),
                (false, false, Some(Edns::new())),
            ] {
                id = id.wrapping_mul(31).wrapping_add(1);
                let q = query(name, t, id, rd, cd, edns);
                let want = full(&h, &q).await;
                let mut got = Vec::new();
                let positive = fast.answer(&q, &mut got);
                let positive = positive.unwrap_or_else(|| panic!("{name} {t} kept"));
                let (w, g) = (
                    Message::from_vec(&want).unwrap(),
                    Message::from_vec(&got).unwrap(),
                );
                assert_eq!(g, w, "{name} {t} rd={rd} edns");
                assert_eq!(g.id(), id);
                assert_eq!(g.recursion_desired(), rd);
                assert_eq!(g.checking_disabled(), cd);
                assert_eq!(g.extensions().is_some(), w.extensions().is_some());
                assert_eq!(positive, !w.answers().is_empty());
                // The question exactly as the client wrote it (its case kept).
                let qlen = q.len() - if w.extensions().is_some() { 11 } else { 0 };
                assert_eq!(got[12..qlen], q[12..qlen], "{name} {t}");
                assert_eq!(g.queries()[0].name().to_ascii(), name);
                // Byte for byte, too: the full path echoes the question as sent and points
                // the answers' owners at it, as the kept answer does.
                assert_eq!(got, want, "{name} {t} bytes");
                compared += 1;
            }
        }
    }
    // CAA too: not a kept type, but NODATA from the zone's kept SOA answer.
    assert_eq!(compared, FIXED.len() * 9 * 4);
}

#[tokio::test]
async fn answers_that_are_not_fixed_or_queries_that_are_not_simple_take_the_full_path() {
    let zones = state();
    let fast = FastAnswers::build(Arc::clone(&zones)).await;
    assert!(!fast.is_empty());
    let mut out = Vec::new();
    for name in [
        "alias.example.test.",   // CNAME
        "x.wild.example.test.",  // wildcard
        "checked.example.test.", // health-checked
        "blue.example.test.",    // weighted
        "www.elsewhere.test.",   // REFUSED
    ] {
        let t = if name.starts_with("big") {
            WireType::TXT
        } else {
            WireType::A
        };
        let q = query(name, t, 1, true, false, None);
        assert_eq!(fast.answer(&q, &mut out), None, "{name}");
    }
    let mut ecs = Edns::new();
    ecs.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            std::net::IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)),
            16,
            0,
        )));
    let simple = query("www.example.test.", WireType::A, 1, true, false, None);
    assert!(fast.answer(&simple, &mut out).is_some());
    let mut two = simple.clone();
    two.push(0); // trailing byte
    let mut response = simple.clone();
    response[2] |= 0x80;
    let mut notify = simple.clone();
    notify[2] |= 4 << 3;
    for (what, q) in [
        (
            "client subnet",
            query("www.example.test.", WireType::A, 1, true, false, Some(ecs)),
        ),
        ("trailing byte", two),
        ("a response", response),
        ("an opcode other than query", notify),
        ("cut short", simple[..simple.len() - 1].to_vec()),
    ] {
        out.clear();
        assert_eq!(fast.answer(&q, &mut out), None, "{what}");
        assert!(out.is_empty(), "{what}: nothing written");
    }
}
