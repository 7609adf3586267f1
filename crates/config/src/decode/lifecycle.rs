//! `[[auto_scaling_groups.NAME.lifecycle_hooks]]` and `[auto_scaling_groups.NAME.warm_pool]`.

use std::time::Duration;

use super::{Ctx, Val};
use crate::scaling::{LifecycleActionResult, LifecycleHook, LifecycleTransition, WarmPool};

/// AWS's default heartbeat timeout.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3600);
/// AWS's longest heartbeat timeout.
const MAX_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(7200);

pub(crate) fn decode_hook(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: String,
) -> Option<(String, LifecycleHook)> {
    let keys = ["name", "transition", "heartbeat_timeout", "default_result"];
    let t = ctx.table(v, path, &keys)?;
    let name = t.req(ctx, "name", Ctx::nonempty);
    let transitions = [
        ("launching", LifecycleTransition::Launching),
        ("terminating", LifecycleTransition::Terminating),
        (
            "autoscaling:EC2_INSTANCE_LAUNCHING",
            LifecycleTransition::Launching,
        ),
        (
            "autoscaling:EC2_INSTANCE_TERMINATING",
            LifecycleTransition::Terminating,
        ),
    ];
    let transition = t.req(ctx, "transition", |c, v| {
        c.choice(v, "lifecycle transition", &transitions)
    });
    // AWS's floor is 30 s; shorter waits are allowed so local drills and tests stay quick.
    let heartbeat_timeout = t
        .opt(ctx, "heartbeat_timeout", |ctx, v| {
            let d = ctx.duration(v)?;
            if d < Duration::from_secs(1) || d > MAX_HEARTBEAT_TIMEOUT {
                ctx.err(
                    v.span(),
                    "heartbeat_timeout must be between 1s and 2h (AWS allows 30s to 7200s)",
                );
                return None;
            }
            Some(d)
        })
        .unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT);
    let results = [
        ("continue", LifecycleActionResult::Continue),
        ("abandon", LifecycleActionResult::Abandon),
        ("CONTINUE", LifecycleActionResult::Continue),
        ("ABANDON", LifecycleActionResult::Abandon),
    ];
    let default_result = t
        .opt(ctx, "default_result", |c, v| {
            c.choice(v, "default_result", &results)
        })
        .unwrap_or(LifecycleActionResult::Abandon);
    Some((
        name.clone()?,
        LifecycleHook {
            name: name?,
            transition: transition?,
            heartbeat_timeout,
            default_result,
        },
    ))
}

pub(crate) fn decode_warm_pool(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<WarmPool> {
    let keys = [
        "min_size",
        "max_group_prepared_capacity",
        "pool_state",
        "reuse_on_scale_in",
    ];
    let t = ctx.table(v, path, &keys)?;
    let min_size = t
        .opt(ctx, "min_size", |c, v| c.u32(v, "min_size"))
        .unwrap_or(0);
    let max_group_prepared_capacity = t.opt(ctx, "max_group_prepared_capacity", |c, v| {
        c.u32(v, "max_group_prepared_capacity")
    });
    if let Some(v) = t.get("pool_state") {
        let supported = [("running", true), ("stopped", false), ("hibernated", false)];
        if ctx.choice(v, "pool_state", &supported) == Some(false) {
            ctx.err(
                v.span(),
                "only pool_state = \"running\" is supported: a local instance is a process, \
                 which has no stopped or hibernated state to keep",
            );
        }
    }
    let reuse_on_scale_in = t
        .opt(ctx, "reuse_on_scale_in", Ctx::boolean)
        .unwrap_or(false);
    Some(WarmPool {
        min_size,
        max_group_prepared_capacity,
        reuse_on_scale_in,
    })
}
