//! The health checks in virtual time: a simulated endpoint answers each probe, and the tests
//! read when the verdict flips.

use super::*;

fn spec(interval: u64, threshold: u32) -> DnsHealthCheck {
    DnsHealthCheck {
        kind: DnsHealthCheckKind::Http,
        target: Some("127.0.0.1:9".parse().unwrap()),
        host: None,
        path: "/".into(),
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(1),
        failure_threshold: threshold,
        search_string: None,
        inverted: false,
        children: Vec::new(),
        healthy_threshold: 0,
    }
}

fn checks(list: &[(&str, DnsHealthCheck)]) -> BTreeMap<String, DnsHealthCheck> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect()
}

/// Runs the machine second by second until `until`, answering every probe with
/// `up(name, now)`; returns the times at which `watch` changed verdict.
fn run(
    hc: &mut HealthChecks,
    from: u64,
    until: u64,
    watch: &str,
    up: &dyn Fn(&str, u64) -> bool,
) -> Vec<(u64, bool)> {
    let mut flips = Vec::new();
    let mut last = hc.is_healthy(watch);
    for t in from..=until {
        let now = Duration::from_secs(t);
        while let Some(p) = hc.poll_probe(now) {
            hc.handle_result(now, &p.check, up(&p.check, t), "sim");
        }
        let v = hc.is_healthy(watch);
        if v != last {
            flips.push((t, v));
            last = v;
        }
    }
    flips
}

#[test]
fn new_checks_are_healthy_until_results_arrive_and_inverted_ones_unhealthy() {
    let mut inv = spec(10, 3);
    inv.inverted = true;
    let hc = HealthChecks::new(&checks(&[("a", spec(10, 3)), ("b", inv)]), Duration::ZERO);
    assert!(hc.is_healthy("a"));
    assert!(!hc.is_healthy("b"));
    assert!(hc.is_healthy("unknown"));
}

#[test]
fn failure_flips_within_interval_times_threshold_and_recovery_flips_back() {
    let (interval, threshold) = (10, 3);
    let mut hc = HealthChecks::new(&checks(&[("p", spec(interval, threshold))]), Duration::ZERO);
    // Down from t = 100 to t = 200 (exclusive).
    let up = |_: &str, t: u64| !(100..200).contains(&t);
    let flips = run(&mut hc, 0, 400, "p", &up);
    assert_eq!(flips.len(), 2, "{flips:?}");
    let (down_at, down) = flips[0];
    let (up_at, back) = flips[1];
    assert!(!down && back);
    assert!(
        down_at >= 100 && down_at <= 100 + interval * u64::from(threshold),
        "{down_at}"
    );
    assert!(
        up_at >= 200 && up_at <= 200 + interval * u64::from(threshold),
        "{up_at}"
    );
}

#[test]
fn a_single_failure_below_the_threshold_changes_nothing() {
    let mut hc = HealthChecks::new(&checks(&[("p", spec(10, 3))]), Duration::ZERO);
    let up = |_: &str, t: u64| t != 50;
    let flips = run(&mut hc, 0, 200, "p", &up);
    assert!(flips.is_empty(), "{flips:?}");
    assert_eq!(hc.statuses()[0].pending_flips, 0);
}

#[test]
fn inverted_checks_are_healthy_when_the_probe_fails() {
    let mut inv = spec(10, 1);
    inv.inverted = true;
    let mut hc = HealthChecks::new(&checks(&[("i", inv)]), Duration::ZERO);
    let flips = run(&mut hc, 0, 30, "i", &|_, _| false);
    assert_eq!(flips, vec![(0, true)]);
}

#[test]
fn calculated_checks_count_healthy_children() {
    let mut calc = spec(10, 1);
    calc.kind = DnsHealthCheckKind::Calculated;
    calc.target = None;
    calc.children = vec!["a".into(), "b".into(), "c".into()];
    calc.healthy_threshold = 2;
    let list = checks(&[
        ("a", spec(10, 1)),
        ("b", spec(10, 1)),
        ("c", spec(10, 1)),
        ("sum", calc),
    ]);
    let mut hc = HealthChecks::new(&list, Duration::ZERO);
    // a fails from t=20, b from t=40: 2 of 3 healthy at first, then 1 of 3.
    let up = |n: &str, t: u64| match n {
        "a" => t < 20,
        "b" => t < 40,
        _ => true,
    };
    let flips = run(&mut hc, 0, 60, "sum", &up);
    assert_eq!(flips, vec![(40, false)]);
    let sum = hc.statuses().into_iter().find(|s| s.name == "sum").unwrap();
    assert_eq!(sum.reason, "1 of 3 children healthy (threshold 2)");
}

#[test]
fn probes_follow_the_interval_and_one_at_a_time() {
    let mut hc = HealthChecks::new(&checks(&[("p", spec(10, 3))]), Duration::ZERO);
    let first = hc.poll_probe(Duration::ZERO).unwrap();
    assert_eq!(first.host, "127.0.0.1:9");
    // In flight: nothing more is due until the result.
    assert_eq!(hc.poll_probe(Duration::from_secs(15)), None);
    assert_eq!(hc.poll_timeout(), None);
    hc.handle_result(Duration::from_secs(15), "p", true, "ok");
    assert_eq!(hc.poll_timeout(), Some(Duration::from_secs(10)));
    assert!(hc.poll_probe(Duration::from_secs(15)).is_some());
    assert_eq!(hc.poll_timeout(), None);
}

#[test]
fn reconfigure_keeps_unchanged_checks_and_restarts_changed_ones() {
    let mut hc = HealthChecks::new(
        &checks(&[("p", spec(10, 1)), ("q", spec(10, 1))]),
        Duration::ZERO,
    );
    run(&mut hc, 0, 5, "p", &|_, _| false);
    assert!(!hc.is_healthy("p") && !hc.is_healthy("q"));
    hc.reconfigure(
        &checks(&[("p", spec(10, 1)), ("q", spec(20, 1))]),
        Duration::from_secs(6),
    );
    assert!(!hc.is_healthy("p"), "unchanged check keeps its state");
    assert!(hc.is_healthy("q"), "changed check starts over");
    hc.reconfigure(&checks(&[("p", spec(10, 1))]), Duration::from_secs(7));
    assert_eq!(hc.statuses().len(), 1);
}
