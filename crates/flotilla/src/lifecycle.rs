//! `flotilla lifecycle …` and `flotilla warm-pool`: lifecycle actions and the warm pool over
//! the admin API. An instance can run these itself: `FLOTILLA_ADMIN`, set in its
//! environment, is the default `--admin`.

use std::process::ExitCode;

use flotilla_admin::api::{
    CompleteLifecycleActionRequest, CompleteLifecycleActionResponse, LifecycleActionInfo,
    LifecycleHeartbeatRequest, LifecycleResult, WarmPoolInfo,
};

use crate::cli::{AdminArgs, LifecycleCommand, LifecycleResultArg};
use crate::commands::{client, refused};
use crate::out::outln;

/// Runs one `flotilla lifecycle` subcommand.
pub(crate) async fn run(command: LifecycleCommand) -> anyhow::Result<ExitCode> {
    match command {
        LifecycleCommand::List { group, json, admin } => list(admin, &group, json).await,
        LifecycleCommand::Complete { action, result } => {
            let client = client(&action.admin)?;
            let request = CompleteLifecycleActionRequest {
                instance_id: action.instance,
                hook: action.hook,
                result: match result {
                    LifecycleResultArg::Continue => LifecycleResult::Continue,
                    LifecycleResultArg::Abandon => LifecycleResult::Abandon,
                },
            };
            let path = format!("/v1/groups/{}/lifecycle-actions", action.group);
            match client
                .post::<_, CompleteLifecycleActionResponse>(&path, &request)
                .await
            {
                Ok(r) => {
                    outln!(
                        "instance {}: lifecycle hook {} completed ({}); now {}",
                        r.instance_id,
                        r.hook,
                        if r.result == LifecycleResult::Continue {
                            "continue"
                        } else {
                            "abandon"
                        },
                        r.state
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => refused(e),
            }
        }
        LifecycleCommand::Heartbeat { action } => {
            let client = client(&action.admin)?;
            let request = LifecycleHeartbeatRequest {
                instance_id: action.instance,
                hook: action.hook,
            };
            let path = format!("/v1/groups/{}/lifecycle-actions/heartbeat", action.group);
            match client.post::<_, LifecycleActionInfo>(&path, &request).await {
                Ok(a) => {
                    outln!(
                        "instance {}: lifecycle hook {} waits until {} (then {})",
                        a.instance_id,
                        a.hook,
                        a.timeout_at,
                        a.default_result
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => refused(e),
            }
        }
    }
}

async fn list(admin: AdminArgs, group: &str, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let path = format!("/v1/groups/{group}/lifecycle-actions");
    let list: Vec<LifecycleActionInfo> = match client.get(&path).await {
        Ok(list) => list,
        Err(e) => return refused(e),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        outln!("no instance of group {group} is waiting for a lifecycle hook");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<16} {:<20} {:<12} {:<20} {:<9} TIMEOUT AT",
        "INSTANCE",
        "HOOK",
        "TRANSITION",
        "STATE",
        "DEFAULT"
    );
    for a in &list {
        outln!(
            "{:<16} {:<20} {:<12} {:<20} {:<9} {}",
            a.instance_id,
            a.hook,
            a.transition,
            a.state,
            a.default_result,
            a.timeout_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `flotilla warm-pool GROUP`.
pub(crate) async fn warm_pool(
    admin: AdminArgs,
    group: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = client(&admin)?;
    let pool: WarmPoolInfo = match client.get(&format!("/v1/groups/{group}/warm-pool")).await {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&pool)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "warm pool of {}: {} of {} instance(s) (min_size {}, max_group_prepared_capacity {}, \
         pool_state {}, reuse_on_scale_in {})",
        pool.group,
        pool.size,
        pool.desired_size,
        pool.min_size,
        pool.max_group_prepared_capacity,
        pool.pool_state,
        pool.reuse_on_scale_in
    );
    for i in &pool.instances {
        outln!(
            "  {:<16} {:<8} {:<20} {}",
            i.id,
            i.zone,
            i.state,
            i.address.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}
