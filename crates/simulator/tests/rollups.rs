//! Roll-ups change nothing but the cost: a run that reports alike seconds to the cluster as
//! one roll-up per target group (`Feed::RollUps`, the default) makes the same decisions, at
//! the same moments, and books the same seconds as one that reports every target
//! (`Feed::PerTarget`, as `flotilla up` does), over seeds, spikes, crashes, a zone outage
//! (dead targets: those seconds go per target) and scale-in.

mod common;

use common::{config, lb_group, rps_policy, scenario};
use flotilla_config::scenario::Scenario;
use flotilla_config::Config;
use flotilla_simulator::{simulate_fed, Feed, Second, Tap};

/// (time in ms, cause, description) of every activity, and the run's rows.
type Run = (Vec<(u128, String, String)>, Vec<Second>, u32);

fn run(cfg: &Config, sc: &Scenario, seed: u64, feed: Feed) -> Run {
    let mut activities = Vec::new();
    let mut rollup_seconds = 0u32;
    let (_, rows) = simulate_fed(sc, cfg, Some(seed), feed, &mut |now, tap| match tap {
        Tap::Activity(_, a) => activities.push((
            now.as_duration().as_millis(),
            a.cause.clone(),
            a.description.clone(),
        )),
        Tap::Samples(s) => rollup_seconds += u32::from(!s.rollups.is_empty()),
    })
    .expect("simulates");
    (activities, rows, rollup_seconds)
}

fn same_either_way(cfg: &Config, sc: &Scenario, seeds: std::ops::Range<u64>) -> u32 {
    let mut rolled = 0;
    let mut decisions = 0;
    for seed in seeds {
        let (a, rows_a, n) = run(cfg, sc, seed, Feed::RollUps);
        let (b, rows_b, m) = run(cfg, sc, seed, Feed::PerTarget);
        assert_eq!(m, 0, "the per-target feed sends no roll-up");
        assert_eq!(a, b, "seed {seed}: the same activities");
        assert_eq!(rows_a, rows_b, "seed {seed}: the same seconds");
        rolled += n;
        decisions += a
            .iter()
            .filter(|x| x.2.starts_with("Setting desired capacity"))
            .count();
    }
    assert!(decisions > 0, "runs with scaling decisions");
    rolled
}

#[test]
fn roll_ups_decide_as_per_target_samples_do_through_spikes_and_crashes() {
    let cfg = config(&lb_group(2, 40, 3, "2s", &rps_policy(50.0, "10s")));
    let sc = scenario(
        "duration = \"40m\"\nwarm = false\n[traffic]\nbase = 300\nnoise = 0.3\n\
         daily_amplitude = 0.8\n\
         [[traffic.changes]]\ntype = \"spike\"\nat = \"10m\"\nfor = \"5m\"\nfactor = 4\n\
         [instance]\nboot_time = \"30s\"\nboot_jitter = \"10s\"\ncapacity = 100\n\
         crash_rate = 2.0\n",
    );
    let rolled = same_either_way(&cfg, &sc, 0..6);
    assert!(rolled > 1000, "most seconds were roll-ups: {rolled}");
}

#[test]
fn roll_ups_decide_as_per_target_samples_do_through_a_zone_outage() {
    let cfg = config(&lb_group(3, 30, 6, "5s", &rps_policy(60.0, "20s")));
    let sc = scenario(
        "duration = \"30m\"\n[traffic]\nbase = 600\n\
         [[traffic.changes]]\ntype = \"step\"\nat = \"20m\"\nto = 180\n\
         [instance]\nboot_time = \"30s\"\ncapacity = 300\n\
         [[events]]\ntype = \"zone_outage\"\nzone = \"az-a\"\nat = \"5m\"\nfor = \"5m\"\n",
    );
    let rolled = same_either_way(&cfg, &sc, 0..3);
    assert!(rolled > 100, "roll-ups outside the outage: {rolled}");
}

#[test]
fn a_cpu_policy_gets_every_target() {
    // CPU is an instance metric a roll-up does not keep per instance: no roll-up is sent.
    let cfg = config(&lb_group(2, 20, 3, "2s", &common::cpu_policy(50.0, "10s")));
    let sc = scenario("duration = \"10m\"\n[traffic]\nbase = 300\n[instance]\ncapacity = 100\n");
    let (_, _, rolled) = run(&cfg, &sc, 1, Feed::RollUps);
    assert_eq!(rolled, 0);
}
