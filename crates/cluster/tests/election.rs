//! Leader election across processes: candidates are `flotilla-cluster-probe` processes in
//! their own host namespaces, so a leader can be SIGKILLed or SIGSTOPped by PID. Deadlines are
//! hang guards; the failover times are printed as measurements, never asserted.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{can_run, init_tracing, serial, EtcdCluster, Probe, Topology};

/// Generous hang guard for one failover: TTL 5 s plus etcd's lessor tick, a raft round and a
/// loaded machine, several times over.
const FAILOVER_GUARD: Duration = Duration::from_secs(30);

fn topology(hosts: &[&str]) -> (Arc<Topology>, EtcdCluster) {
    let topo = Arc::new(Topology::new());
    for (i, host) in hosts.iter().enumerate() {
        topo.add_host(host, 11 + i as u8);
    }
    let etcd = EtcdCluster::start(topo.clone(), 3, hosts[0]);
    for host in hosts {
        for endpoint in etcd.endpoints() {
            let addr = endpoint
                .trim_start_matches("http://")
                .trim_end_matches(":2379");
            topo.check_route(host, addr);
        }
    }
    (topo, etcd)
}

fn wall_ms(event: &Value) -> u64 {
    event["wall_ms"].as_u64().expect("wall_ms")
}

fn now_ms() -> u64 {
    flotilla_cluster::records::now_ms()
}

/// Waits until one of `probes` reports `event`; returns its index and the event.
fn first_to(probes: &mut [Probe], event: &str, guard: Duration) -> (usize, Value) {
    let until = std::time::Instant::now() + guard;
    loop {
        for (i, probe) in probes.iter_mut().enumerate() {
            if let Some(e) = probe.wait_event(event, Duration::from_millis(20), |_| true) {
                return (i, e);
            }
        }
        assert!(
            std::time::Instant::now() < until,
            "no probe reported {event} within {guard:?}"
        );
    }
}

/// Three candidates; the leader is SIGKILLed twice in a row; each time another candidate wins,
/// and its fenced writes land. Prints kill → new-leader times.
#[test]
fn election_fails_over_after_leader_sigkill() {
    if !can_run("election_fails_over_after_leader_sigkill") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let (topo, etcd) = topology(&["h1", "h2", "h3"]);
    let endpoints = etcd.endpoints();
    let mut probes: Vec<Probe> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| Probe::spawn(&topo.ns(h), &format!("cand-{h}"), &endpoints, &[]))
        .collect();
    for probe in probes.iter_mut() {
        probe
            .wait_event("lease", FAILOVER_GUARD, |_| true)
            .unwrap_or_else(|| panic!("{} never got a lease", probe.id));
    }
    let (mut leader, _) = first_to(&mut probes, "leader", FAILOVER_GUARD);
    probes[leader]
        .wait_event("write", FAILOVER_GUARD, |_| true)
        .expect("the first leader writes");
    let mut alive: Vec<usize> = (0..probes.len()).collect();
    for round in 1..=2 {
        let killed_at = now_ms();
        probes[leader].kill();
        alive.retain(|i| *i != leader);
        // Wait on the survivors only (a dead probe has nothing more to say).
        let (winner, event) = {
            let until = std::time::Instant::now() + FAILOVER_GUARD;
            loop {
                let mut found = None;
                for &i in &alive {
                    if let Some(e) =
                        probes[i].wait_event("leader", Duration::from_millis(20), |_| true)
                    {
                        found = Some((i, e));
                        break;
                    }
                }
                if let Some(f) = found {
                    break f;
                }
                assert!(
                    std::time::Instant::now() < until,
                    "round {round}: no new leader within {FAILOVER_GUARD:?}"
                );
            }
        };
        let write = probes[winner]
            .wait_event("write", FAILOVER_GUARD, |_| true)
            .expect("the new leader's fenced write lands");
        assert!(write["revision"].as_i64().unwrap() > 0);
        eprintln!(
            "MEASURED election failover round {round}: SIGKILL of {} → {} leads after {} ms, first fenced write after {} ms",
            probes[leader].id,
            probes[winner].id,
            wall_ms(&event).saturating_sub(killed_at),
            wall_ms(&write).saturating_sub(killed_at)
        );
        leader = winner;
    }
    assert_eq!(alive, vec![leader], "the last survivor leads");
    drop(probes);
    drop(etcd);
}

/// The leader is SIGSTOPped (frozen with its lease and its belief that it leads); a standby takes
/// over; after SIGCONT the old leader's writes — it is run without self-fencing, so it does try
/// — are refused with `fenced`, and no write of the old leader lands after the new leader's first.
#[test]
fn sigstopped_leader_is_fenced_after_resume() {
    if !can_run("sigstopped_leader_is_fenced_after_resume") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let (topo, etcd) = topology(&["h1", "h2"]);
    let endpoints = etcd.endpoints();
    let mut a = Probe::spawn(&topo.ns("h1"), "cand-a", &endpoints, &["--no-self-fence"]);
    a.wait_event("leader", FAILOVER_GUARD, |_| true)
        .expect("a leads");
    let mut b = Probe::spawn(&topo.ns("h2"), "cand-b", &endpoints, &[]);
    b.wait_event("lease", FAILOVER_GUARD, |_| true)
        .expect("b campaigns");
    a.wait_event("write", FAILOVER_GUARD, |_| true)
        .expect("a writes while leading");

    let stopped_at = now_ms();
    a.stop();
    let b_leads = b
        .wait_event("leader", FAILOVER_GUARD, |_| true)
        .expect("b takes over from the frozen a");
    let b_first = b
        .wait_event("write", FAILOVER_GUARD, |_| true)
        .expect("b's fenced write lands");
    a.resume();
    let resumed_at = now_ms();
    let fenced = a
        .wait_event("fenced", FAILOVER_GUARD, |_| true)
        .expect("a's write after resume is refused");
    assert!(
        fenced["error"]
            .as_str()
            .unwrap_or("")
            .contains("no longer the leader"),
        "{fenced}"
    );
    b.wait_event("write", FAILOVER_GUARD, |e| wall_ms(e) > wall_ms(&fenced))
        .expect("b keeps writing");

    let b_first_rev = b_first["revision"].as_i64().unwrap();
    for w in a.seen_named("write") {
        assert!(
            w["revision"].as_i64().unwrap() < b_first_rev,
            "a write of the deposed leader landed after b's first: {w}"
        );
    }
    let after_resume: Vec<&Value> = a
        .seen_named("write")
        .into_iter()
        .filter(|w| wall_ms(w) >= resumed_at && w["revision"].as_i64().unwrap() > b_first_rev)
        .collect();
    assert!(after_resume.is_empty(), "{after_resume:?}");
    eprintln!(
        "MEASURED SIGSTOP: b leads {} ms after a was stopped; a's first write after SIGCONT refused {} ms after resume",
        wall_ms(&b_leads).saturating_sub(stopped_at),
        wall_ms(&fenced).saturating_sub(resumed_at)
    );
    drop((a, b));
    drop(etcd);
}
