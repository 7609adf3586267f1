//! The pure answer code against zones written as config files: every routing policy, alias
//! records, CNAME chains, wildcards, and the negative answers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use flotilla_config::dns::RecordType;
use flotilla_config::dns::RecordValue;
use flotilla_dns::answer::{answer, Context, Data, HealthView, Outcome, QType, Rr};
use flotilla_dns::policy::XorShift;
use flotilla_dns::zones::ZoneSet;
use flotilla_dns::{AliasAddress, AliasTable};

struct Health(HashMap<&'static str, bool>);

impl HealthView for Health {
    fn healthy(&self, check: &str) -> bool {
        self.0.get(check).copied().unwrap_or(true)
    }
}

const BASE: &str = r#"
[target_groups.web]
[load_balancers.front]
[[load_balancers.front.listeners]]
bind = "127.0.0.1:18080"
default_action = { type = "forward", target_group = "web" }

[dns]
bind = "127.0.0.1:0"
networks = { "az-a" = ["10.1.0.0/16"], "az-b" = ["10.2.0.0/16"], "az-c" = ["10.3.0.0/16"] }

[dns.health_checks.p]
type = "tcp"
target = "127.0.0.1:1"

[dns.health_checks.q]
type = "tcp"
target = "127.0.0.1:2"
"#;

fn zones(records: &str) -> ZoneSet {
    let text = format!("{BASE}\n[dns.zones.\"example.test\"]\n{records}");
    let cfg = flotilla_config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    ZoneSet::new(cfg.dns.as_ref().unwrap())
}

fn ask(
    z: &ZoneSet,
    name: &str,
    t: QType,
    health: &Health,
    aliases: &AliasTable,
    client: Option<IpAddr>,
    seed: u64,
) -> Outcome {
    let mut rng = XorShift(seed);
    let mut cx = Context {
        health,
        aliases,
        client,
        rng: &mut rng,
    };
    answer(z, name, t, &mut cx)
}

fn a(z: &ZoneSet, name: &str, health: &Health, client: Option<IpAddr>, seed: u64) -> Vec<Ipv4Addr> {
    match ask(
        z,
        name,
        QType::Record(RecordType::A),
        health,
        &AliasTable::default(),
        client,
        seed,
    ) {
        Outcome::Answer { answers, .. } => answers
            .into_iter()
            .filter_map(|r| match r.data {
                Data::Value(RecordValue::A(ip)) => Some(ip),
                _ => None,
            })
            .collect(),
        Outcome::Refused => panic!("refused"),
    }
}

fn healthy() -> Health {
    Health(HashMap::new())
}

const WEIGHTED: &str = r#"
[[dns.zones."example.test".records]]
name = "www"
type = "A"
routing = "weighted"
set_identifier = "blue"
weight = 75
values = ["192.0.2.1"]
health_check = "p"

[[dns.zones."example.test".records]]
name = "www"
type = "A"
routing = "weighted"
set_identifier = "green"
weight = 25
values = ["192.0.2.2"]
health_check = "q"
"#;

#[test]
fn weighted_records_answer_in_proportion_over_1000_queries() {
    let z = zones(WEIGHTED);
    let mut blue = 0;
    let mut total = 0;
    let mut rng = XorShift(7);
    for _ in 0..1000 {
        let seed = flotilla_dns::policy::Random::next_u64(&mut rng);
        let got = a(&z, "www.example.test", &healthy(), None, seed);
        assert_eq!(got.len(), 1);
        total += 1;
        if got[0] == Ipv4Addr::new(192, 0, 2, 1) {
            blue += 1;
        }
    }
    assert_eq!(total, 1000);
    // 75 % expected; a binomial(1000, 0.75) lies within ±5 % with overwhelming probability.
    assert!((700..=800).contains(&blue), "blue answered {blue} of 1000");
}

#[test]
fn weighted_skips_an_unhealthy_set_and_all_unhealthy_counts_as_all_healthy() {
    let z = zones(WEIGHTED);
    let blue_down = Health(HashMap::from([("p", false)]));
    for seed in 1..200 {
        assert_eq!(
            a(&z, "www.example.test", &blue_down, None, seed),
            [Ipv4Addr::new(192, 0, 2, 2)]
        );
    }
    let all_down = Health(HashMap::from([("p", false), ("q", false)]));
    let answered: std::collections::BTreeSet<_> = (1..200)
        .flat_map(|s| a(&z, "www.example.test", &all_down, None, s))
        .collect();
    assert_eq!(
        answered.len(),
        2,
        "both sets answer when every one is unhealthy"
    );
}

const FAILOVER: &str = r#"
[[dns.zones."example.test".records]]
name = "app"
type = "A"
routing = "failover"
set_identifier = "main"
failover = "primary"
values = ["192.0.2.10"]
health_check = "p"

[[dns.zones."example.test".records]]
name = "app"
type = "A"
routing = "failover"
set_identifier = "backup"
failover = "secondary"
values = ["192.0.2.20"]
health_check = "q"
"#;

#[test]
fn failover_answers_the_secondary_while_the_primary_is_unhealthy() {
    let z = zones(FAILOVER);
    let primary = [Ipv4Addr::new(192, 0, 2, 10)];
    let secondary = [Ipv4Addr::new(192, 0, 2, 20)];
    assert_eq!(a(&z, "app.example.test", &healthy(), None, 1), primary);
    assert_eq!(
        a(
            &z,
            "app.example.test",
            &Health(HashMap::from([("p", false)])),
            None,
            1
        ),
        secondary
    );
    let both = Health(HashMap::from([("p", false), ("q", false)]));
    assert_eq!(
        a(&z, "app.example.test", &both, None, 1),
        primary,
        "both down: the primary"
    );
}

#[test]
fn multivalue_returns_at_most_eight_healthy_values() {
    let mut records = String::new();
    for i in 1..=12 {
        let check = if i == 1 { "health_check = \"p\"\n" } else { "" };
        records.push_str(&format!(
            "[[dns.zones.\"example.test\".records]]\nname = \"mv\"\ntype = \"A\"\nrouting = \"multivalue\"\nset_identifier = \"s{i}\"\nvalues = [\"192.0.2.{i}\"]\n{check}\n"
        ));
    }
    let z = zones(&records);
    let down = Health(HashMap::from([("p", false)]));
    for seed in 1..100 {
        let got = a(&z, "mv.example.test", &down, None, seed);
        assert_eq!(got.len(), 8);
        assert!(
            !got.contains(&Ipv4Addr::new(192, 0, 2, 1)),
            "the unhealthy value is left out"
        );
        let distinct: std::collections::BTreeSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), 8);
    }
}

const LATENCY: &str = r#"
[[dns.zones."example.test".records]]
name = "lat"
type = "A"
routing = "latency"
set_identifier = "a"
region = "az-a"
values = ["192.0.2.1"]
health_check = "p"

[[dns.zones."example.test".records]]
name = "lat"
type = "A"
routing = "latency"
set_identifier = "c"
region = "az-c"
values = ["192.0.2.3"]

[[dns.zones."example.test".records]]
name = "geo"
type = "A"
routing = "geoproximity"
set_identifier = "a"
location = "az-a"
values = ["192.0.2.1"]

[[dns.zones."example.test".records]]
name = "geo"
type = "A"
routing = "geoproximity"
set_identifier = "c"
location = "az-c"
bias = 99
values = ["192.0.2.3"]
"#;

#[test]
fn latency_and_geoproximity_follow_the_resolver_network() {
    let z = zones(LATENCY);
    let from = |ip: &str| Some(ip.parse::<IpAddr>().unwrap());
    assert_eq!(
        a(&z, "lat.example.test", &healthy(), from("10.1.0.5"), 1),
        [Ipv4Addr::new(192, 0, 2, 1)]
    );
    assert_eq!(
        a(&z, "lat.example.test", &healthy(), from("10.3.0.5"), 1),
        [Ipv4Addr::new(192, 0, 2, 3)]
    );
    // az-b is one step from both: the first in file order (az-a) wins a tie.
    assert_eq!(
        a(&z, "lat.example.test", &healthy(), from("10.2.0.5"), 1),
        [Ipv4Addr::new(192, 0, 2, 1)]
    );
    let a_down = Health(HashMap::from([("p", false)]));
    assert_eq!(
        a(&z, "lat.example.test", &a_down, from("10.1.0.5"), 1),
        [Ipv4Addr::new(192, 0, 2, 3)]
    );
    // Geoproximity: az-c's bias of 99 pulls az-b's resolvers (a tie without bias).
    assert_eq!(
        a(&z, "geo.example.test", &healthy(), from("10.2.0.5"), 1),
        [Ipv4Addr::new(192, 0, 2, 3)]
    );
    assert_eq!(
        a(&z, "geo.example.test", &healthy(), from("10.1.0.5"), 1),
        [Ipv4Addr::new(192, 0, 2, 1)]
    );
}

const ALIASES: &str = r#"
[[dns.zones."example.test".records]]
name = "@"
type = "A"
alias = { load_balancer = "front", evaluate_target_health = true }

[[dns.zones."example.test".records]]
name = "www"
type = "CNAME"
values = ["example.test"]

[[dns.zones."example.test".records]]
name = "same"
type = "A"
alias = { record = "example.test" }

[[dns.zones."example.test".records]]
name = "*.wild"
type = "TXT"
values = ["wildcard"]
"#;

#[test]
fn alias_answers_the_healthy_nodes_with_a_60_second_ttl() {
    let z = zones(ALIASES);
    let mut t = AliasTable::default();
    let node = |ip: [u8; 4], healthy| AliasAddress {
        ip: IpAddr::from(ip),
        healthy,
    };
    t.load_balancers.insert(
        "front".into(),
        vec![node([127, 0, 0, 1], true), node([127, 0, 0, 2], false)],
    );
    let out = ask(
        &z,
        "example.test",
        QType::Record(RecordType::A),
        &healthy(),
        &t,
        None,
        1,
    );
    let Outcome::Answer { answers, .. } = out else {
        panic!()
    };
    assert_eq!(
        answers,
        vec![Rr {
            name: "example.test".into(),
            ttl: 60,
            data: Data::Value(RecordValue::A(Ipv4Addr::new(127, 0, 0, 1)))
        }]
    );
    // A record alias answers under its own name; the CNAME is followed inside the zone.
    let Outcome::Answer { answers, .. } = ask(
        &z,
        "same.example.test",
        QType::Record(RecordType::A),
        &healthy(),
        &t,
        None,
        1,
    ) else {
        panic!()
    };
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].name, "same.example.test");
    let Outcome::Answer { answers, .. } = ask(
        &z,
        "www.example.test",
        QType::Record(RecordType::A),
        &healthy(),
        &t,
        None,
        1,
    ) else {
        panic!()
    };
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(matches!(
        answers[0].data,
        Data::Value(RecordValue::Cname(_))
    ));
    // A stopped node is dropped; with every node down, all are answered (as ELB).
    t.load_balancers.insert(
        "front".into(),
        vec![node([127, 0, 0, 1], false), node([127, 0, 0, 2], false)],
    );
    let Outcome::Answer { answers, .. } = ask(
        &z,
        "example.test",
        QType::Record(RecordType::A),
        &healthy(),
        &t,
        None,
        1,
    ) else {
        panic!()
    };
    assert_eq!(answers.len(), 2);
}

/// Several lb nodes (cluster mode): every answer lists each healthy node once, in an order
/// rotated at random, so clients that take the first address spread over the nodes.
#[test]
fn alias_answers_list_every_healthy_node_in_rotated_order() {
    let z = zones(ALIASES);
    let mut t = AliasTable::default();
    let ips: Vec<Ipv4Addr> = (1..=3).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    t.load_balancers.insert(
        "front".into(),
        ips.iter()
            .map(|ip| AliasAddress {
                ip: IpAddr::V4(*ip),
                healthy: true,
            })
            .collect(),
    );
    let mut first = HashMap::new();
    for seed in 1..=300u64 {
        let Outcome::Answer { answers, .. } = ask(
            &z,
            "example.test",
            QType::Record(RecordType::A),
            &healthy(),
            &t,
            None,
            seed,
        ) else {
            panic!("refused")
        };
        let got: Vec<Ipv4Addr> = answers
            .iter()
            .filter_map(|r| match r.data {
                Data::Value(RecordValue::A(ip)) => Some(ip),
                _ => None,
            })
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, ips, "every node once");
        *first.entry(got[0]).or_insert(0u32) += 1;
    }
    assert_eq!(first.len(), 3, "each node comes first sometimes: {first:?}");
    assert!(first.values().all(|n| *n >= 50), "{first:?}");
}

#[test]
fn negative_answers_refusals_and_wildcards() {
    let z = zones(ALIASES);
    let t = AliasTable::default();
    let q = |name: &str, ty: QType| ask(&z, name, ty, &healthy(), &t, None, 1);
    assert_eq!(
        q("example.org", QType::Record(RecordType::A)),
        Outcome::Refused
    );
    let Outcome::Answer {
        answers,
        authority,
        nxdomain,
    } = q("nope.example.test", QType::Record(RecordType::A))
    else {
        panic!()
    };
    assert!(answers.is_empty() && nxdomain && authority.len() == 1);
    let Outcome::Answer {
        answers, nxdomain, ..
    } = q("example.test", QType::Record(RecordType::Mx))
    else {
        panic!()
    };
    assert!(
        answers.is_empty() && !nxdomain,
        "NODATA at an existing name"
    );
    let Outcome::Answer { answers, .. } =
        q("x.y.wild.example.test", QType::Record(RecordType::Txt))
    else {
        panic!()
    };
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].name, "x.y.wild.example.test");
    let Outcome::Answer { nxdomain, .. } = q("wild.example.test", QType::Record(RecordType::Txt))
    else {
        panic!()
    };
    assert!(!nxdomain, "an empty non-terminal exists");
    let Outcome::Answer { answers, .. } = q("example.test", QType::Soa) else {
        panic!()
    };
    assert!(matches!(answers[0].data, Data::Soa { .. }));
    let Outcome::Answer { answers, .. } = q("example.test", QType::Ns) else {
        panic!()
    };
    assert_eq!(answers.len(), 1);
}
