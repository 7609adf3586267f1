//! Target health checks and draining, driven in virtual time.

use std::net::SocketAddr;
use std::time::Duration;

use flotilla_control::{
    HealthAction, HealthCheckSpec, ProbeResult, TargetGroupHealth, TargetState, Time,
};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn at(ms: u64) -> Time {
    Time::from_millis(ms)
}

fn fail(reason: &str) -> ProbeResult {
    ProbeResult::Failure {
        reason: reason.into(),
    }
}

/// interval 2 s, timeout 1 s, healthy 3, unhealthy 2; drain delay 10 s.
fn tg() -> TargetGroupHealth {
    TargetGroupHealth::new(
        HealthCheckSpec {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 3,
            unhealthy_threshold: 2,
        },
        Duration::from_secs(10),
    )
}

fn drain(h: &mut TargetGroupHealth) -> Vec<HealthAction> {
    std::iter::from_fn(|| h.poll_action()).collect()
}

fn probes(actions: &[HealthAction]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, HealthAction::Probe { .. }))
        .count()
}

fn changes(actions: &[HealthAction]) -> Vec<(TargetState, TargetState)> {
    actions
        .iter()
        .filter_map(|a| match a {
            HealthAction::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// Plays one probe cycle: waits for the next probe of `t`, answers with `r` 100 ms later.
/// Returns the actions emitted along the way and the time the probe was sent.
fn cycle(h: &mut TargetGroupHealth, t: SocketAddr, r: ProbeResult) -> (Vec<HealthAction>, Time) {
    let sent = h.poll_timeout().unwrap();
    h.handle_timeout(sent);
    let mut acts = drain(h);
    assert_eq!(probes(&acts), 1, "one probe due at {sent:?}");
    h.handle_probe_result(sent + Duration::from_millis(100), t, r);
    acts.extend(drain(h));
    (acts, sent)
}

#[test]
fn register_probes_at_once_and_one_success_makes_initial_healthy() {
    let mut h = tg();
    let t = addr(1);
    h.register(at(0), t);
    let acts = drain(&mut h);
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Unused, TargetState::Initial)]
    );
    assert_eq!(acts.last(), Some(&HealthAction::Probe { target: t }));
    assert_eq!(h.state(t), Some(TargetState::Initial));
    h.handle_probe_result(at(100), t, ProbeResult::Success);
    assert_eq!(
        changes(&drain(&mut h)),
        vec![(TargetState::Initial, TargetState::Healthy)]
    );
    assert_eq!(h.targets().next().unwrap().reason, None);
}

#[test]
fn initial_goes_unhealthy_after_threshold_failures() {
    let mut h = tg();
    let t = addr(1);
    h.register(at(0), t);
    drain(&mut h);
    h.handle_probe_result(at(100), t, fail("Target.FailedHealthChecks"));
    assert!(
        changes(&drain(&mut h)).is_empty(),
        "one failure is not enough"
    );
    assert_eq!(
        h.targets().next().unwrap().reason.as_deref(),
        Some("Elb.InitialHealthChecking")
    );
    let (acts, _) = cycle(&mut h, t, fail("Target.ResponseCodeMismatch (503)"));
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Initial, TargetState::Unhealthy)]
    );
    assert_eq!(
        h.targets().next().unwrap().reason.as_deref(),
        Some("Target.ResponseCodeMismatch (503)")
    );
}

#[test]
fn thresholds_in_both_directions() {
    let mut h = tg();
    let t = addr(1);
    h.register(at(0), t);
    drain(&mut h);
    h.handle_probe_result(at(100), t, ProbeResult::Success);
    drain(&mut h);
    // healthy → unhealthy needs 2 consecutive failures; a success in between resets.
    for r in [
        fail("Target.Timeout"),
        ProbeResult::Success,
        fail("Target.Timeout"),
    ] {
        assert!(changes(&cycle(&mut h, t, r).0).is_empty());
    }
    let (acts, _) = cycle(&mut h, t, fail("Target.Timeout"));
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Healthy, TargetState::Unhealthy)]
    );
    // unhealthy → healthy needs 3 consecutive successes; a failure in between resets.
    for r in [
        ProbeResult::Success,
        ProbeResult::Success,
        fail("Target.Timeout"),
        ProbeResult::Success,
        ProbeResult::Success,
    ] {
        assert!(changes(&cycle(&mut h, t, r).0).is_empty());
        assert_eq!(h.state(t), Some(TargetState::Unhealthy));
    }
    let (acts, _) = cycle(&mut h, t, ProbeResult::Success);
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Unhealthy, TargetState::Healthy)]
    );
}

#[test]
fn probes_follow_the_interval_and_never_overlap() {
    let mut h = tg();
    let t = addr(1);
    h.register(at(0), t);
    drain(&mut h);
    // outstanding probe: nothing new until the interval ends
    h.handle_timeout(at(1500));
    assert!(drain(&mut h).is_empty());
    // a slow answer (1.9 s) does not shift the schedule
    h.handle_probe_result(at(1900), t, ProbeResult::Success);
    drain(&mut h);
    assert_eq!(h.poll_timeout(), Some(at(2000)));
    let mut sent = Vec::new();
    for _ in 0..4 {
        sent.push(cycle(&mut h, t, ProbeResult::Success).1);
    }
    assert_eq!(sent, vec![at(2000), at(4000), at(6000), at(8000)]);
}

#[test]
fn unanswered_probe_counts_as_timeout_failure() {
    let mut h = tg();
    let t = addr(1);
    h.register(at(0), t);
    drain(&mut h);
    h.handle_probe_result(at(100), t, ProbeResult::Success);
    drain(&mut h);
    // two probes with no answer: each is a Target.Timeout at the end of its interval
    h.handle_timeout(at(2000));
    assert_eq!(probes(&drain(&mut h)), 1);
    assert_eq!(h.poll_timeout(), Some(at(4000)));
    h.handle_timeout(at(4000));
    let acts = drain(&mut h);
    assert_eq!(probes(&acts), 1, "the next probe still goes out");
    assert!(changes(&acts).is_empty());
    h.handle_timeout(at(6000));
    let acts = drain(&mut h);
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Healthy, TargetState::Unhealthy)]
    );
    assert_eq!(
        h.targets().next().unwrap().reason.as_deref(),
        Some("Target.Timeout")
    );
    // a late answer to a probe already counted is ignored
    h.handle_probe_result(at(6100), t, ProbeResult::Success);
    h.handle_probe_result(at(6200), t, ProbeResult::Success);
    h.handle_probe_result(at(6300), t, ProbeResult::Success);
    assert_eq!(h.state(t), Some(TargetState::Unhealthy));
}

#[test]
fn draining_ends_at_the_delay_or_early_when_idle() {
    let mut h = tg();
    let (a, b) = (addr(1), addr(2));
    h.register(at(0), a);
    h.register(at(0), b);
    drain(&mut h);
    h.deregister(at(1000), a);
    h.deregister(at(1000), b);
    let acts = drain(&mut h);
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Initial, TargetState::Draining); 2]
    );
    assert_eq!(
        h.targets().next().unwrap().reason.as_deref(),
        Some("Target.DeregistrationInProgress")
    );
    // probe results for draining targets are ignored, and no probes go out
    h.handle_probe_result(at(1100), a, ProbeResult::Success);
    assert_eq!(h.state(a), Some(TargetState::Draining));
    // b goes idle early
    h.handle_target_idle(at(3000), b);
    let acts = drain(&mut h);
    assert!(acts.contains(&HealthAction::DrainComplete { target: b }));
    assert_eq!(h.state(b), None);
    // a waits for the full 10 s delay
    assert_eq!(h.poll_timeout(), Some(at(11000)));
    h.handle_timeout(at(10999));
    assert!(drain(&mut h).is_empty());
    h.handle_timeout(at(11000));
    let acts = drain(&mut h);
    assert_eq!(
        acts,
        vec![
            HealthAction::StateChanged {
                target: a,
                from: TargetState::Draining,
                to: TargetState::Unused,
                reason: Some("Target.NotRegistered".into())
            },
            HealthAction::DrainComplete { target: a },
        ]
    );
    assert_eq!(h.poll_timeout(), None);
    assert_eq!(h.targets().count(), 0);
}

#[test]
fn routing_fails_open_when_nothing_is_healthy() {
    let mut h = tg();
    assert!(h.routable_targets().is_empty());
    let (a, b, c) = (addr(1), addr(2), addr(3));
    for t in [a, b, c] {
        h.register(at(0), t);
    }
    drain(&mut h);
    assert_eq!(
        h.routable_targets(),
        vec![a, b, c],
        "all initial: fail open"
    );
    h.handle_probe_result(at(100), b, ProbeResult::Success);
    assert_eq!(h.routable_targets(), vec![b]);
    h.deregister(at(200), b);
    h.deregister(at(200), c);
    assert_eq!(
        h.routable_targets(),
        vec![a],
        "draining targets never get new requests"
    );
}

#[test]
fn unknown_and_repeated_calls_are_harmless() {
    let mut h = tg();
    let t = addr(1);
    h.deregister(at(0), t);
    h.handle_probe_result(at(0), t, ProbeResult::Success);
    h.handle_target_idle(at(0), t);
    h.handle_timeout(at(0));
    assert!(drain(&mut h).is_empty());
    assert_eq!(h.poll_timeout(), None);
    h.register(at(0), t);
    drain(&mut h);
    h.register(at(1), t);
    assert!(
        drain(&mut h).is_empty(),
        "re-registering a registered target changes nothing"
    );
    h.deregister(at(2), t);
    h.deregister(at(3), t);
    assert_eq!(changes(&drain(&mut h)).len(), 1);
    // re-registering a draining target starts over as initial
    h.register(at(4), t);
    let acts = drain(&mut h);
    assert_eq!(
        changes(&acts),
        vec![(TargetState::Draining, TargetState::Initial)]
    );
    assert_eq!(probes(&acts), 1);
    // a zero interval does not spin
    let mut z = TargetGroupHealth::new(
        HealthCheckSpec {
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
            healthy_threshold: 0,
            unhealthy_threshold: 0,
        },
        Duration::ZERO,
    );
    z.register(at(0), t);
    assert!(z.poll_timeout().unwrap() > at(0));
    z.deregister(at(0), t);
    assert!(
        drain(&mut z).contains(&HealthAction::DrainComplete { target: t }),
        "zero delay drains at once"
    );
}
