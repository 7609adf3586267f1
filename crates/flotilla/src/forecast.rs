//! `flotilla forecast GROUP`: predictive scaling's forecast, hour by hour.

use std::process::ExitCode;

use flotilla_admin::api::ForecastInfo;

use crate::cli::AdminArgs;
use crate::commands::client;
use crate::out::outln;

pub(crate) async fn run(admin: AdminArgs, group: &str, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let f: ForecastInfo = client.get(&format!("/v1/groups/{group}/forecast")).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(ExitCode::SUCCESS);
    }
    if f.policies.is_empty() {
        outln!("group {group} has no predictive scaling policy");
        return Ok(ExitCode::SUCCESS);
    }
    for p in &f.policies {
        outln!(
            "policy {} ({}): {} at {} per instance, {} ahead, {}; {} hour(s) of history",
            p.name,
            p.mode,
            p.metric,
            p.target_value,
            p.scheduling_buffer_time,
            p.max_capacity_breach_behavior,
            p.history_hours
        );
        if p.forecast.is_empty() {
            outln!("  {}", p.status);
            continue;
        }
        outln!("  {:<22} {:>12} {:>9}", "HOUR (UTC)", "LOAD", "CAPACITY");
        for x in &p.forecast {
            outln!("  {:<22} {:>12.1} {:>9}", x.time, x.load, x.capacity);
        }
    }
    Ok(ExitCode::SUCCESS)
}
