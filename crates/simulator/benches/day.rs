//! Wall time of `flotilla simulate bench/simulate-day.toml`: a 24 h scenario at 1 s steps on a
//! 1,000-instance group (bench/simulate.sh). Three runs; the median is reported.
//!
//!   cargo bench -p flotilla-simulator --bench day
#![allow(clippy::disallowed_methods)] // a benchmark reads the real clock: that is what it measures

use std::path::Path;
use std::time::Instant;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut scenario =
        flotilla_config::scenario::load_scenario(&root.join("bench/simulate-day.toml"))
            .unwrap_or_else(|e| panic!("scenario: {e}"));
    // SIM_BENCH_HOURS=N simulates N hours of the day instead of 24 (a quick run).
    if let Some(h) = std::env::var("SIM_BENCH_HOURS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        scenario.duration = std::time::Duration::from_secs(h * 3600);
    }
    let config = flotilla_config::load(&root.join("bench/simulate-fleet.toml"))
        .unwrap_or_else(|e| panic!("config: {e}"));
    let mut times = Vec::new();
    let runs: usize = std::env::var("SIM_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for run in 0..runs {
        let t = Instant::now();
        let (summary, rows) =
            flotilla_simulator::simulate(&scenario, &config, None).expect("simulates");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "run {run}: {} simulated seconds, peak {} instances, {} scaling actions: {secs:.3} s",
            rows.len(),
            summary.peak_instances,
            summary.scaling_actions.values().sum::<u32>()
        );
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median wall time of {} simulated s on 1,000 instances: {:.3} s",
        scenario.duration.as_secs(),
        times[times.len() / 2]
    );
}
