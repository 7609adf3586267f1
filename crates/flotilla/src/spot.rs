//! `flotilla spot interrupt ID`: the Spot interruption drill.

use std::process::ExitCode;

use flotilla_admin::api::{SpotInterruptionRequest, SpotInterruptionResponse};

use crate::cli::SpotCommand;
use crate::commands::client;
use crate::out::outln;

pub(crate) async fn run(command: SpotCommand) -> anyhow::Result<ExitCode> {
    let SpotCommand::Interrupt { id, notice, admin } = command;
    let client = client(&admin)?;
    let r: SpotInterruptionResponse = client
        .post(
            &format!("/v1/instances/{id}/spot-interruption"),
            &SpotInterruptionRequest { notice },
        )
        .await?;
    let then = if r.capacity_rebalance {
        "its replacement is launching now (capacity rebalance); it is drained once the \
         replacement is healthy"
    } else {
        "it is drained before then and replaced as it leaves"
    };
    outln!(
        "spot instance {} of group {} is reclaimed at {}; {then}",
        r.instance_id,
        r.group,
        r.interruption_deadline
    );
    Ok(ExitCode::SUCCESS)
}
