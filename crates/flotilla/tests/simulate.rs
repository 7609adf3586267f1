//! `flotilla simulate` from the command line: a scenario runs and writes its outputs; a broken
//! scenario is refused at FILE:LINE:COL and simulates nothing.

mod common;

use common::*;

#[test]
fn simulate_writes_the_summary_csv_and_charts() {
    let out = temp_dir("simulate-out");
    let run = std::process::Command::new(flotilla_bin())
        .arg("simulate")
        .arg(repo_path("examples/scenarios/spike.toml"))
        .arg("--json")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert!(run.status.success(), "{run:?}");
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON summary");
    assert_eq!(summary["seconds"], 7200);
    assert!(summary["requests_served"].as_f64().expect("served") > 0.0);
    let csv = std::fs::read_to_string(out.join("seconds.csv")).expect("seconds.csv");
    assert_eq!(csv.lines().count(), 7201);
    for f in ["chart.svg", "chart.png", "summary.json"] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f}: {len} bytes");
    }
    let png = std::fs::read(out.join("chart.png")).expect("png");
    assert_eq!(&png[1..4], b"PNG");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broken_scenario_is_refused_at_its_location() {
    let dir = temp_dir("simulate-broken");
    let path = dir.join("broken.toml");
    std::fs::write(
        &path,
        "duration = \"1h\"\n[traffic]\nbase = -1\n[instance]\ncapacity = 10\n",
    )
    .expect("written");
    let run = std::process::Command::new(flotilla_bin())
        .arg("simulate")
        .arg(&path)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .expect("runs");
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    let want = format!(
        "{}:3:8: base (requests per second) must be 0 or more",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("nothing was simulated"), "{err}");
    assert!(!dir.join("out").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}
