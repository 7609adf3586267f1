//! The batched UDP loop against a real socket: a batch mixing good and malformed datagrams
//! (queued before the server reads, so one `recvmmsg` takes them together) gets an answer
//! for every good query, FORMERR/NOTIMP or nothing for the others, and the server goes on.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use flotilla_dns::server::{DnsState, DnsStats, HealthVerdicts};
use flotilla_dns::zones::ZoneSet;
use flotilla_dns::{AliasTable, BoundDns};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

const ZONE: &str = r#"
[dns]
bind = "127.0.0.1:0"
[dns.zones."example.test"]
name_servers = ["ns1.example.test"]
[[dns.zones."example.test".records]]
name = "www"
type = "A"
values = ["192.0.2.1"]
"#;

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id);
    m.set_recursion_desired(false);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_good_and_malformed_datagrams_answers_every_good_one() {
    let cfg = flotilla_config::parse(ZONE, std::path::Path::new("t.toml")).unwrap();
    let dns = cfg.dns.expect("a [dns] section");
    let state = Arc::new(DnsState {
        zones: ArcSwap::from_pointee(ZoneSet::new(&dns)),
        health: ArcSwap::from_pointee(HealthVerdicts::default()),
        aliases: Arc::new(AliasTable::default()),
        stats: DnsStats::default(),
    });
    let bound = BoundDns::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server: SocketAddr = bound.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // 40 datagrams (more than one batch): good queries with even ids, malformed between.
    let good = query("www.example.test.", 0);
    let mut sent_good = Vec::new();
    for i in 0..40u16 {
        let d = match i % 5 {
            0 | 2 => {
                sent_good.push(i);
                query("www.example.test.", i)
            }
            1 => good[..7].to_vec(), // shorter than a header
            3 => vec![
                (i >> 8) as u8,
                i as u8,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0xC0,
                12,
                0,
                1,
                0,
                1,
            ], // pointer loop
            _ => {
                let mut ch = query("www.example.test.", i); // class CH: NOTIMP
                let n = ch.len();
                ch[n - 1] = 3;
                ch
            }
        };
        client.send_to(&d, server).unwrap();
    }
    // Only now does the server start reading: the queue is read in batches.
    let running = bound.serve(Arc::clone(&state));
    let mut answered: HashMap<u16, ResponseCode> = HashMap::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while answered.len() < 40 && std::time::Instant::now() < deadline {
        let Ok(n) = tokio::task::block_in_place(|| client.recv(&mut buf)) else {
            break;
        };
        let m = Message::from_vec(&buf[..n]).expect("every answer decodes");
        answered.insert(m.id(), m.response_code());
        if m.response_code() == ResponseCode::NoError {
            let ips: Vec<Ipv4Addr> = m
                .answers()
                .iter()
                .filter_map(|r| match r.data() {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            assert_eq!(ips, [Ipv4Addr::new(192, 0, 2, 1)], "id {}", m.id());
        }
    }
    for id in &sent_good {
        assert_eq!(
            answered.get(id),
            Some(&ResponseCode::NoError),
            "good query {id}"
        );
    }
    let others: Vec<_> = answered
        .iter()
        .filter(|(id, _)| !sent_good.contains(id))
        .collect();
    let count = |c: ResponseCode| others.iter().filter(|(_, got)| **got == c).count();
    // The 8 pointer loops get FORMERR, the 8 class-CH queries NOTIMP, the 8 cut short
    // (no whole header) nothing.
    assert_eq!(
        (
            count(ResponseCode::FormErr),
            count(ResponseCode::NotImp),
            others.len()
        ),
        (8, 8, 16),
        "{others:?}"
    );
    assert_eq!(sent_good.len(), 16);
    // Still serving.
    client
        .send_to(&query("www.example.test.", 999), server)
        .unwrap();
    let n = tokio::task::block_in_place(|| client.recv(&mut buf)).unwrap();
    assert_eq!(Message::from_vec(&buf[..n]).unwrap().id(), 999);
    running.stop().await;
}
