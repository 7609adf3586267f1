//! Deterministic simulation of the whole control plane — the real [`Cluster`]: a group with
//! its scaling policy, target group health checks, zone outages and shifts, instance
//! refreshes, a canary forward with automatic rollback, and (odd seeds) a warm pool and
//! lifecycle hooks — under random load, crashes, hangs, sick instances, slow starts and
//! operator actions, checking invariants after every simulated second.
//!
//! Every run is a function of its seed. A failure prints the seed; replay it exactly with
//! `FLOTILLA_SIM_SEED=<seed> cargo test -p flotilla-control --test sim`. Run more seeds with
//! `FLOTILLA_SIM_SEEDS=10000`.

mod world;

use world::World;

/// Seconds of disturbance, then a quiet period in which everything must converge.
const DURATION: u64 = 600;
const QUIET: u64 = 300;

/// What one seed exercised, so the test can tell the features were reached at all.
#[derive(Default, Debug, Clone, Copy)]
struct Reached {
    refreshes: usize,
    rebalances: usize,
    pool_moves: usize,
    rollbacks: usize,
    outages: usize,
    health_replacements: usize,
}

impl std::ops::AddAssign for Reached {
    fn add_assign(&mut self, o: Reached) {
        self.refreshes += o.refreshes;
        self.rebalances += o.rebalances;
        self.pool_moves += o.pool_moves;
        self.rollbacks += o.rollbacks;
        self.outages += o.outages;
        self.health_replacements += o.health_replacements;
    }
}

fn run_seed(seed: u64) -> Reached {
    let mut w = World::new(seed);
    for _ in 0..DURATION {
        w.step(true);
    }
    w.quiet_down();
    for _ in 0..QUIET {
        w.step(false);
    }
    w.finish();
    let activities = |f: &dyn Fn(&flotilla_control::Activity) -> bool| {
        w.group().activities().filter(|a| f(a)).count()
    };
    Reached {
        refreshes: activities(&|a| {
            a.description.starts_with("Instance refresh")
                && a.status == flotilla_control::ActivityStatus::Successful
        }),
        rebalances: activities(&|a| a.cause.starts_with("AZRebalance: instances per zone")),
        pool_moves: activities(&|a| {
            a.description
                .starts_with("Launching an instance from the warm pool")
                || a.description
                    .starts_with("Returning instance to the warm pool")
        }),
        rollbacks: w.rollbacks,
        outages: w.outages,
        health_replacements: activities(&|a| a.cause.contains("health check failed")),
    }
}

#[test]
fn simulation_holds_invariants_and_converges() {
    let seeds: Vec<u64> = match std::env::var("FLOTILLA_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("FLOTILLA_SIM_SEED must be a number")],
        Err(_) => {
            let n = std::env::var("FLOTILLA_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1000u64);
            (0..n).collect()
        }
    };
    let many = seeds.len() >= 100;
    // The test's own wall time, for the report; the simulation never sees it.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let mut reached = Reached::default();
    for seed in &seeds {
        let seed = *seed;
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(r) => reached += r,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "simulation failed for seed {seed}: {msg}\nreplay with FLOTILLA_SIM_SEED={seed}"
                );
            }
        }
    }
    if many {
        let r = reached;
        assert!(
            r.refreshes > 0
                && r.rebalances > 0
                && r.pool_moves > 0
                && r.rollbacks > 0
                && r.outages > 0
                && r.health_replacements > 0,
            "a feature was not exercised: {r:?}"
        );
    }
    eprintln!(
        "{} seeds of {DURATION} s + {QUIET} s quiet in {:?} (wall): {reached:?}",
        seeds.len(),
        started.elapsed()
    );
}

#[test]
fn simulation_replays_exactly_and_scales() {
    let trace = |seed| {
        let mut w = World::new(seed);
        for _ in 0..DURATION {
            w.step(true);
        }
        w.trace
    };
    assert_eq!(trace(7), trace(7));
    let traces: Vec<Vec<String>> = (0..8).map(trace).collect();
    let any = |needle: &str| traces.iter().flatten().any(|l| l.contains(needle));
    assert!(any("> target 100"), "the controller scaled out");
    assert!(any("< target 100"), "the controller scaled in");
}
