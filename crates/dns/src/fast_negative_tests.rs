//! Kept negative answers against the full path: NXDOMAIN and NODATA are the full path's
//! bytes for names of every length, in mixed case, with and without EDNS, in nested zones
//! with SOAs compressed differently; and every name the full path answers otherwise
//! (wildcards, empty non-terminals, CNAMEs, health checks, other policies, aliases, names
//! outside the zones, zone transfers, odd labels) finds no kept answer.

use std::sync::Arc;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType as WireType;

use super::super::tests::{full, handler, query};
use super::super::FastAnswers;
use crate::zones::ZoneSet;

const ZONES: &str = r#"
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
values = ["192.0.2.1"]
[[dns.zones."example.test".records]]
name = "a.b.ent"
type = "A"
values = ["192.0.2.5"]
[[dns.zones."example.test".records]]
name = "*.wild"
type = "A"
values = ["192.0.2.9"]
[[dns.zones."example.test".records]]
name = "alias"
type = "CNAME"
values = ["www.example.test"]
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
[[dns.zones."example.test".records]]
name = "apex-alias"
type = "A"
alias = { record = "www.example.test" }
[dns.zones."sub.example.test"]
name_servers = ["ns.elsewhere.test"]
hostmaster = "dns-admin.mail.elsewhere.test"
serial = 2026120701
ttl = 60
[[dns.zones."sub.example.test".records]]
name = "host"
type = "AAAA"
values = ["2001:db8::5"]
[dns.zones."other.test"]
[[dns.zones."other.test".records]]
name = "*"
type = "TXT"
values = ["wild at the apex"]
"#;

fn zones() -> Arc<ZoneSet> {
    let cfg = flotilla_config::parse(ZONES, std::path::Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(ZoneSet::new(cfg.dns.as_ref().expect("[dns]")))
}

/// `name` with its letters' case changed by `mask` (a pattern per query).
fn mixed(name: &str, mask: u32) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 32) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Names that do not exist, of many lengths: one to four labels of 4–63 characters above
/// `zone`, and one of 255 bytes (the limit).
fn absent_names(zone: &str) -> Vec<String> {
    let mut names = vec![format!("nope.{zone}."), format!("x.blue.{zone}.")];
    for len in [1, 2, 7, 30, 59, 60] {
        for labels in 1..=4 {
            let name = format!(
                "{}{zone}.",
                format!("{}.", "q".repeat(len) + "-_0").repeat(labels)
            );
            if name.len() < 254 {
                names.push(name);
            }
        }
    }
    // The longest name there is: 255 bytes in wire form.
    let mut longest = format!("{zone}.");
    while longest.len() + 64 <= 254 {
        longest = format!("{}0.{longest}", "q".repeat(62));
    }
    let rest = 254 - longest.len() - 1;
    names.push(format!("{}.{longest}", "z".repeat(rest)));
    assert_eq!(names.last().map(String::len), Some(254));
    names
}

#[tokio::test]
async fn kept_nxdomain_is_the_full_paths_bytes_for_every_length_case_type_and_edns() {
    let zones = zones();
    let h = handler(&zones);
    let fast = FastAnswers::build(Arc::clone(&zones)).await;
    let mut compared = 0;
    let mut id = 3u16;
    for zone in ["example.test", "sub.example.test"] {
        for (n, name) in absent_names(zone).iter().enumerate() {
            for t in [
                WireType::A,
                WireType::AAAA,
                WireType::NS,
                WireType::SOA,
                WireType::CAA,
            ] {
                for edns in [None, Some(Edns::new())] {
                    id = id.wrapping_mul(31).wrapping_add(7);
                    let asked = mixed(name, u32::from(id).wrapping_mul(2_654_435_761) ^ n as u32);
                    let (rd, cd) = (id & 1 == 1, id & 2 == 2);
                    let q = query(&asked, t, id, rd, cd, edns.clone());
                    let want = full(&h, &q).await;
                    let mut got = Vec::new();
                    assert_eq!(fast.answer(&q, &mut got), Some(false), "{asked} {t} kept");
                    let (w, g) = (
                        Message::from_vec(&want).unwrap(),
                        Message::from_vec(&got).unwrap(),
                    );
                    assert_eq!(w.response_code(), ResponseCode::NXDomain, "{asked}");
                    assert_eq!(g, w, "{asked} {t}");
                    assert_eq!(got, want, "{asked} {t} {} bytes", edns.is_some());
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 2 * absent_names("example.test").len() * 5 * 2);
    // Both zones' SOAs hold compression pointers (moved per question length).
    assert_eq!(fast.negatives.soas.len(), 3);
    assert!(fast.negatives.soas.iter().all(|s| !s.pointers.is_empty()));
}

#[tokio::test]
async fn kept_nodata_is_the_full_paths_bytes_for_types_not_kept_at_fixed_names() {
    let zones = zones();
    let h = handler(&zones);
    let fast = FastAnswers::build(Arc::clone(&zones)).await;
    let mut compared = 0;
    for name in [
        "www.example.test.",
        "WwW.EXAMPLE.test.",
        "example.test.",
        "a.b.ent.example.test.",
        "host.sub.example.test.",
        "SUB.example.TEST.",
    ] {
        for t in [
            WireType::CAA,
            WireType::PTR,
            WireType::NULL,
            WireType::HINFO,
        ] {
            for edns in [None, Some(Edns::new())] {
                let q = query(name, t, 0xBEEF, true, false, edns.clone());
                let want = full(&h, &q).await;
                let mut got = Vec::new();
                assert_eq!(fast.answer(&q, &mut got), Some(false), "{name} {t} kept");
                let w = Message::from_vec(&want).unwrap();
                assert_eq!(w.response_code(), ResponseCode::NoError, "{name} {t}");
                assert!(w.answers().is_empty() && w.name_servers().len() == 1);
                assert_eq!(Message::from_vec(&got).unwrap(), w, "{name} {t}");
                assert_eq!(got, want, "{name} {t} bytes");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 6 * 4 * 2);
}

#[tokio::test]
async fn names_the_full_path_answers_otherwise_have_no_kept_negative() {
    let zones = zones();
    let h = handler(&zones);
    let fast = FastAnswers::build(Arc::clone(&zones)).await;
    let mut out = Vec::new();
    let cases = [
        ("x.wild.example.test.", WireType::A, "wildcard"),
        (
            "y.x.wild.example.test.",
            WireType::TXT,
            "wildcard, two labels down",
        ),
        ("anything.other.test.", WireType::A, "wildcard at the apex"),
        (
            "wild.example.test.",
            WireType::A,
            "empty non-terminal over a wildcard",
        ),
        ("ent.example.test.", WireType::A, "empty non-terminal"),
        ("b.ent.example.test.", WireType::CAA, "empty non-terminal"),
        ("alias.example.test.", WireType::CAA, "CNAME"),
        ("checked.example.test.", WireType::CAA, "health-checked"),
        ("checked.example.test.", WireType::TXT, "health-checked"),
        ("blue.example.test.", WireType::CAA, "weighted"),
        ("apex-alias.example.test.", WireType::CAA, "alias"),
        ("nope.elsewhere.test.", WireType::A, "no zone: REFUSED"),
        ("nope.example.test.", WireType::AXFR, "zone transfer"),
        ("nope.example.test.", WireType::ANY, "meta type"),
        ("nope.example.test.", WireType::OPT, "OPT asked"),
        ("*.example.test.", WireType::A, "a literal `*` label"),
        ("nXpe.example.test.", WireType::A, "a label with `*`"),
        ("nXpe.example.test.", WireType::A, "a label with a dot"),
        ("nXpe.example.test.", WireType::A, "a label with a space"),
        (
            "nXpe.example.test.",
            WireType::A,
            "a label with a byte above ASCII",
        ),
        ("www.example.test.", WireType::TXT, "kept as a whole answer"),
    ];
    for (name, t, why) in cases {
        let mut q = query(name, t, 9, true, false, None);
        // Bytes no name written as text gives: put in the wire form.
        let odd = [
            ("`*`", b'*'),
            ("dot", b'.'),
            ("space", b' '),
            ("ASCII", 0xC3),
        ];
        if let Some((_, b)) = odd.iter().find(|(w, _)| why.ends_with(w)) {
            let at = q.iter().position(|&c| c == b'X').expect("the marked byte");
            q[at] = *b;
        }
        out.clear();
        let kept = fast.answer(&q, &mut out);
        let w = Message::from_vec(&full(&h, &q).await).unwrap();
        if why == "kept as a whole answer" {
            // Kept, but from the name's own answers, not the negatives'.
            assert_eq!(kept, Some(false), "{name}");
            continue;
        }
        assert_eq!(kept, None, "{name} {t}: {why}");
        assert!(out.is_empty(), "{name}: nothing written");
        let meta = matches!(t, WireType::ANY | WireType::OPT) || why.contains("label");
        assert!(
            w.response_code() != ResponseCode::NXDomain || meta,
            "{name} {t}: {why} (the full path gave {})",
            w.response_code()
        );
    }
}
