//! Every shipped example config and scenario loads; the daily scenario shows predictive
//! scaling keeping p99 under the objective where target tracking alone breaches it; scenario
//! mistakes are reported at FILE:LINE:COL with the reason.

use std::path::{Path, PathBuf};

use flotilla_config::scenario::{load_scenario, parse_scenario};
use flotilla_config::ConfigError;
use flotilla_simulator::simulate;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn tomls(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("example dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            tomls(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_example_config_and_scenario_loads() {
    let mut files = Vec::new();
    for dir in ["examples/evolution", "examples/scenarios", "bench"] {
        tomls(&repo(dir), &mut files);
    }
    // bench/drills.toml and bench/cluster-drills.toml are the drill scripts' templates.
    files.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("drills.toml"))
    });
    let (mut configs, mut scenarios) = (0, 0);
    for p in &files {
        let text = std::fs::read_to_string(p).expect("readable");
        if text.contains("\n[traffic]") {
            let sc = load_scenario(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if let Some(c) = &sc.config {
                assert!(
                    c.exists(),
                    "{}: its config {} exists",
                    p.display(),
                    c.display()
                );
            }
            scenarios += 1;
        } else {
            flotilla_config::load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            configs += 1;
        }
    }
    assert!(
        configs >= 10 && scenarios >= 4,
        "{configs} configs, {scenarios} scenarios"
    );
}

/// Two working days, a 10× rise in four minutes at 08:55, 90 s boots: on day two (predictive
/// scaling has its 24 hours of history) the predictive policy's group has the capacity in
/// place and no second over the p99 objective; target tracking alone breaches it.
#[test]
fn predictive_scaling_keeps_p99_under_the_slo_where_target_tracking_breaches_it() {
    let sc = load_scenario(&repo("examples/scenarios/daily/scenario.toml")).expect("scenario");
    let day_two_over = |config: &str| {
        let cfg = flotilla_config::load(&repo(config)).expect("config");
        let (summary, rows) = simulate(&sc, &cfg, None).expect("simulates");
        let slo = summary.slo_p99_ms;
        let day_two = &rows[86_400..];
        assert_eq!(day_two.len(), 86_400);
        day_two
            .iter()
            .filter(|r| r.p99_ms > slo || r.dropped > 0.0)
            .count()
    };
    let tracking = day_two_over("examples/scenarios/daily/target-tracking.toml");
    let predictive = day_two_over("examples/scenarios/daily/predictive.toml");
    assert!(
        tracking > 60,
        "target tracking alone breaches: {tracking} s"
    );
    assert_eq!(predictive, 0, "predictive keeps p99 under the objective");
}

#[test]
fn scenario_mistakes_are_reported_at_file_line_column() {
    let src = "duration = \"10m\"\n\
               [traffic]\n\
               base = -5\n\
               [instance]\n\
               boot_time = \"20m\"\n\
               capacity = 10\n\
               [[events]]\n\
               type = \"zone_outage\"\n\
               zone = \"az-a\"\n\
               at = \"1h\"\n\
               for = \"1m\"\n";
    let Err(ConfigError::Invalid(d)) = parse_scenario(src, Path::new("s.toml")) else {
        panic!("refused");
    };
    let lines: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    let want = [
        "s.toml:3:8: base (requests per second) must be 0 or more, found -5",
        "s.toml:5:13: impossible scenario: an instance boots in up to 20m but the run lasts 10m",
        "s.toml:7:1: impossible scenario: the event at 1h is after the run ends",
    ];
    for w in want {
        assert!(lines.iter().any(|l| l == w), "{w} not in {lines:#?}");
    }
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
}
