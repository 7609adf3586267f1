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
            let title = format!("{} on {}", sc.path.display(), path.display());
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

/// Two configs side by side on the same traffic and seed.
fn compare(results: &[(PathBuf, Summary)]) {
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    outln!(
        "{:<28} {:>18} {:>18}",
        "",
        name(&results[0].0),
        name(&results[1].0)
    );
    let rows: Vec<(&str, Box<dyn Fn(&Summary) -> String>)> = vec![
        (
            "availability %",
            Box::new(|s| format!("{:.4}", s.availability_percent)),
        ),
        (
            "requests dropped",
            Box::new(|s| format!("{:.0}", s.requests_dropped)),
        ),
        ("p50 ms", Box::new(move |s| ms(s.p50_ms))),
        ("p99 ms", Box::new(move |s| ms(s.p99_ms))),
        (
            "seconds over p99 objective",
            Box::new(|s| s.seconds_over_slo.to_string()),
        ),
        ("peak instances", Box::new(|s| s.peak_instances.to_string())),
        (
            "mean instances",
            Box::new(|s| format!("{:.2}", s.mean_instances)),
        ),
        (
            "cost per day $",
            Box::new(|s| format!("{:.2}", s.cost_per_day)),
        ),
        (
            "scaling actions",
            Box::new(|s| s.scaling_actions.values().sum::<u32>().to_string()),
        ),
    ];
    for (label, f) in rows {
        outln!(
            "{:<28} {:>18} {:>18}",
            label,
            f(&results[0].1),
            f(&results[1].1)
        );
    }
}
