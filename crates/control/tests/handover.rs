//! A hot upgrade hands the whole `Cluster` to a new process: serialised, deserialised, and
//! driven on. These tests drive the seeded simulation (`world/`) twice — once straight
//! through, once with the cluster replaced by its own round trip three times mid-run — and
//! require the same decisions, to the second and the word: no alarm window, stabilization
//! history, cooldown, health count, hook timer, refresh or canary rollback restarts.

#[allow(dead_code)] // the simulation's convergence helpers are sim.rs's, not used here
mod world;

use flotilla_control::{Cluster, Effect, Time, SNAPSHOT_FORMAT};
use world::World;

const DURATION: u64 = 600;

fn round_trip(c: &Cluster) -> Cluster {
    let mut bytes = Vec::new();
    ciborium::into_writer(c, &mut bytes).expect("a cluster serialises");
    ciborium::from_reader(bytes.as_slice()).expect("and deserialises")
}

fn trace(seed: u64, handovers: &[u64]) -> (Vec<String>, usize) {
    let mut w = World::new(seed);
    let mut done = 0;
    for s in 0..DURATION {
        if handovers.contains(&s) {
            w.cluster = round_trip(&w.cluster);
            done += 1;
        }
        w.step(true);
    }
    (w.trace, done)
}

#[test]
fn a_cluster_handed_over_mid_run_decides_exactly_as_one_that_was_not() {
    assert_eq!(SNAPSHOT_FORMAT, 1);
    let mut decisions = 0;
    for seed in 0..8 {
        let (straight, _) = trace(seed, &[]);
        let (handed, done) = trace(seed, &[100, 250, 400]);
        assert_eq!(done, 3);
        assert_eq!(
            straight, handed,
            "seed {seed} decided differently after a hand-over"
        );
        decisions += straight.len();
    }
    // Not vacuous: the runs made scaling decisions (and rollbacks) to compare.
    assert!(decisions > 8, "only {decisions} decisions in 8 seeds");
}

#[test]
fn resuming_publishes_the_data_plane_again_and_resends_outstanding_probes() {
    let mut w = World::new(3);
    for _ in 0..120 {
        w.step(true);
    }
    // Every effect of the last step was carried out by the old process.
    assert!(w.cluster.poll_effect().is_none());
    let mut c = round_trip(&w.cluster);
    let now = w.now + std::time::Duration::from_millis(300);
    c.resume_after_handover(now);
    let effects: Vec<Effect> = std::iter::from_fn(|| c.poll_effect()).collect();
    let published: Vec<&str> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::PublishTargets { target_group, .. } => Some(target_group.as_str()),
            _ => None,
        })
        .collect();
    for tg in w.published.keys() {
        assert!(
            published.contains(&tg.as_str()),
            "{tg} not published again: {effects:?}"
        );
    }
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::PublishWeights { .. })));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::PublishShiftedZones { .. })));
    assert!(
        !effects.iter().any(|e| matches!(
            e,
            Effect::Launch(_) | Effect::Stop { .. } | Effect::Kill { .. }
        )),
        "resuming decides nothing: {effects:?}"
    );
    // The snapshot's times stay meaningful: nothing is due before the new process's now.
    assert!(c.poll_timeout().is_some_and(|t| t >= Time::ZERO));
}
