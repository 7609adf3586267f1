//! `flotilla simulate SCENARIO`: the real control plane in virtual time (crates/simulator).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use flotilla_config::scenario::{load_scenario, Scenario};
use flotilla_config::ConfigError;
use flotilla_simulator::{simulate, write_charts, Summary};

use crate::out::outln;

/// What `flotilla simulate` was asked.
pub(crate) struct SimulateArgs {
    pub(crate) scenario: PathBuf,
    pub(crate) config: Option<PathBuf>,
    pub(crate) seed: Option<u64>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) json: bool,
    pub(crate) compare: Vec<PathBuf>,
}

/// Prints a scenario's FILE:LINE:COL errors; `None` when it cannot be used.
fn scenario(path: &Path) -> Option<Scenario> {
    match load_scenario(path) {
        Ok(s) => Some(s),
        Err(ConfigError::Invalid(d)) => {
            for x in d.iter() {
                eprintln!("{x}");
            }
            eprintln!(
                "{}: {} error(s) found; nothing was simulated",
                path.display(),
                d.len()
            );
            None
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let Some(sc) = scenario(&args.scenario) else {
        return Ok(ExitCode::FAILURE);
    };
    let configs: Vec<PathBuf> = if args.compare.is_empty() {
        let Some(c) = args.config.clone().or_else(|| sc.config.clone()) else {
            anyhow::bail!(
                "{}: no config to simulate: give --config CONFIG or `config = \"…\"` in the scenario",
                args.scenario.display()
            );
        };
        vec![c]
    } else {
        args.compare.clone()
    };
    let mut results = Vec::new();
    for path in &configs {
        let Some(config) = crate::commands::load_config_or(path, "nothing was simulated") else {
            return Ok(ExitCode::FAILURE);
        };
        let (summary, rows) = simulate(&sc, &config, args.seed)
            .with_context(|| format!("simulating {} on {}", sc.path.display(), path.display()))?;
        if let Some(out) = &args.out {
            let dir = if configs.len() > 1 {
                out.join(path.file_stem().unwrap_or_default())
            } else {
                out.clone()
            };
            let file = |p: &Path| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            };
            let title = format!("{} on {}", file(&sc.path), file(path));
            write_charts(&dir, &title, &rows)
                .with_context(|| format!("writing {}", dir.display()))?;
            std::fs::write(
                dir.join("summary.json"),
                serde_json::to_string_pretty(&summary)?,
            )
            .with_context(|| format!("writing {}", dir.display()))?;
        }
        results.push((path.clone(), summary));
    }
    if args.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(p, s)| serde_json::json!({"config": p.display().to_string(), "summary": s}))
            .collect();
        let v = if v.len() == 1 {
            v[0]["summary"].clone()
        } else {
            serde_json::Value::Array(v)
        };
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if results.len() == 1 {
        outln!("{}", results[0].1.text().trim_end());
    } else {
        compare(&results);
    }
    Ok(ExitCode::SUCCESS)
}

/// Configs on the same traffic and seed: one line each.
fn compare(results: &[(PathBuf, Summary)]) {
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    let width = results
        .iter()
        .map(|(p, _)| name(p).len())
        .max()
        .unwrap_or(6)
        .max(6);
    outln!(
        "{:<width$} {:>14} {:>9} {:>9} {:>10} {:>6} {:>9} {:>10} {:>8}",
        "config",
        "availability %",
        "dropped",
        "p99 ms",
        "s over SLO",
        "peak",
        "mean",
        "$ per day",
        "scalings"
    );
    for (path, s) in results {
        outln!(
            "{:<width$} {:>14.4} {:>9.0} {:>9} {:>10} {:>6} {:>9.2} {:>10.2} {:>8}",
            name(path),
            s.availability_percent,
            s.requests_dropped,
            ms(s.p99_ms),
            s.seconds_over_slo,
            s.peak_instances,
            s.mean_instances,
            s.cost_per_day,
            s.scaling_actions.values().sum::<u32>()
        );
    }
}
