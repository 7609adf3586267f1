//! The entry point of the coverage-guided fuzz target in `fuzz/` (built only with
//! `--cfg fuzzing`, which `bench/fuzz.sh` sets): arbitrary bytes as a UDP query, against a
//! fixed set of zones that holds every case the kept answers must tell apart (fixed names,
//! NODATA, NXDOMAIN at several depths, nested zones whose SOAs compress differently,
//! wildcards at the apex and below, empty non-terminals, CNAMEs, aliases, health checks,
//! weighted sets, a set too large for one datagram). Differential: whenever a kept answer
//! ([`crate::fast`]) is given, the full path must answer the same query with the same bytes.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;

use crate::fast::FastAnswers;
use crate::server::Handler;
use crate::udp::{answer_datagram, Reply};
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
name = "_sip._tcp"
type = "SRV"
values = ["1 2 5060 www.example.test"]
[[dns.zones."example.test".records]]
name = "a.b.ent"
type = "TXT"
values = ["deep"]
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
name = "to-www"
type = "A"
alias = { record = "www.example.test" }
[[dns.zones."example.test".records]]
name = "big"
type = "TXT"
values = ["BIG", "BIG", "BIG", "BIG", "BIG", "BIG", "BIG", "BIG"]
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

struct Fixture {
    runtime: tokio::runtime::Runtime,
    handler: Handler,
    fast: FastAnswers,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = ZONES.replace("\"BIG\"", &format!("\"{}\"", "x".repeat(200)));
        let cfg = flotilla_config::parse(&text, std::path::Path::new("fuzz.toml"))
            .unwrap_or_else(|e| panic!("the fuzz zones: {e}"));
        let zones = Arc::new(ZoneSet::new(cfg.dns.as_ref().expect("[dns]")));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let fast = runtime.block_on(FastAnswers::build(Arc::clone(&zones)));
        let handler = Handler::detached(zones);
        Fixture {
            runtime,
            handler,
            fast,
        }
    })
}

/// `data` as a query: if a kept answer is given, the full path's answer is the same bytes
/// (and so decodes the same), and the kept answer's "holds data" is the full path's.
pub fn kept_answers(data: &[u8]) {
    let f = fixture();
    let mut kept = Vec::new();
    let Some(positive) = f.fast.answer(data, &mut kept) else {
        assert!(kept.is_empty(), "nothing written without a kept answer");
        return;
    };
    let reply = Reply::default();
    let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 5300));
    let answered = f
        .runtime
        .block_on(answer_datagram(&f.handler, data, src, &reply));
    assert!(
        answered,
        "a kept answer to a query the full path leaves unanswered"
    );
    let full = reply.buf().clone();
    let decoded = Message::from_vec(&kept).expect("a kept answer decodes");
    let want = Message::from_vec(&full).expect("the full path's answer decodes");
    assert_eq!(decoded, want, "kept and full answers differ");
    assert_eq!(kept, full, "kept and full answers differ in bytes");
    assert_eq!(positive, !want.answers().is_empty());
}
