//! Lifecycle hooks (an instance waits in `Pending:Wait`/`Terminating:Wait` until completed
//! or its heartbeat timeout applies the default result) and warm pools (started instances
//! kept out of service; the pool state is always `Running` for local processes).

use crate::backend::InstanceLive;
use crate::call::Call;
use crate::model::{HookRes, WarmPoolRes};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};

use super::{api_group, existing};

/// One hook from `PutLifecycleHook` or a `LifecycleHookSpecificationList` entry.
pub(crate) fn parse_hook(p: &Params) -> AwsResult<HookRes> {
    let name = p.required("LifecycleHookName")?.to_string();
    if name.is_empty() || name.len() > 255 {
        return Err(AwsError::validation(
            "LifecycleHookName must be 1-255 characters",
        ));
    }
    let transition = p.required("LifecycleTransition")?.to_string();
    if !matches!(
        transition.as_str(),
        "autoscaling:EC2_INSTANCE_LAUNCHING" | "autoscaling:EC2_INSTANCE_TERMINATING"
    ) {
        return Err(AwsError::validation(format!(
            "Invalid Lifecycle Transition: {transition}"
        )));
    }
    let default_result = p.get("DefaultResult").unwrap_or("ABANDON").to_string();
    if !matches!(default_result.as_str(), "CONTINUE" | "ABANDON") {
        return Err(AwsError::validation(format!(
            "Invalid DefaultResult: {default_result} (CONTINUE, ABANDON)"
        )));
    }
    Ok(HookRes {
        name,
        transition,
        heartbeat_timeout: p.u32("HeartbeatTimeout", 1, 7200)?.unwrap_or(3600),
        default_result,
        notification_metadata: p.get("NotificationMetadata").map(str::to_string),
    })
}

pub(crate) fn put(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = existing(call)?;
    let g = api_group(call, &group)?;
    let name = p.required("LifecycleHookName")?;
    // An update may leave the transition out: the hook keeps its own.
    let mut merged = p.clone();
    if p.get("LifecycleTransition").is_none() {
        if let Some(old) = g.hooks.get(name) {
            merged = Params::from_pairs(
                [
                    ("LifecycleTransition", old.transition.as_str()),
                    ("LifecycleHookName", name),
                ]
                .into_iter()
                .chain(p.get("DefaultResult").map(|v| ("DefaultResult", v)))
                .chain(p.get("HeartbeatTimeout").map(|v| ("HeartbeatTimeout", v))),
            );
        }
    }
    let hook = parse_hook(&merged)?;
    if g.hooks.len() >= 50 && !g.hooks.contains_key(&hook.name) {
        return Err(AwsError::new(
            "LimitExceeded",
            "A group has at most 50 lifecycle hooks",
        ));
    }
    g.hooks.insert(hook.name.clone(), hook);
    Ok(String::new())
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let group = existing(call)?;
    let names = call
        .p
        .strings("LifecycleHookNames", true)?
        .unwrap_or_default();
    let hooks: Vec<HookRes> = call
        .reg
        .groups
        .get(&group)
        .map(|g| g.hooks.values().cloned().collect())
        .unwrap_or_default();
    let hooks: Vec<HookRes> = hooks
        .into_iter()
        .filter(|h| names.is_empty() || names.contains(&h.name))
        .collect();
    let mut x = Xml::new();
    x.list("LifecycleHooks", "member", &hooks, |x, h| {
        x.leaf("LifecycleHookName", &h.name)
            .leaf("AutoScalingGroupName", &group)
            .leaf("LifecycleTransition", &h.transition)
            .opt("NotificationMetadata", h.notification_metadata.as_ref())
            .leaf("HeartbeatTimeout", h.heartbeat_timeout.to_string())
            .leaf(
                "GlobalTimeout",
                (u64::from(h.heartbeat_timeout) * 100)
                    .min(172_800)
                    .to_string(),
            )
            .leaf("DefaultResult", &h.default_result);
    });
    Ok(x.finish())
}

pub(crate) fn delete(call: &mut Call<'_>) -> AwsResult<String> {
    let group = existing(call)?;
    let name = call.p.required("LifecycleHookName")?.to_string();
    api_group(call, &group)?
        .hooks
        .remove(&name)
        .ok_or_else(|| AwsError::validation(format!("No Lifecycle Hook found named {name}")))?;
    Ok(String::new())
}

pub(crate) fn complete(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = existing(call)?;
    let hook = p.required("LifecycleHookName")?;
    let result = p.required("LifecycleActionResult")?;
    let proceed = match result {
        "CONTINUE" => true,
        "ABANDON" => false,
        other => {
            return Err(AwsError::validation(format!(
                "Invalid LifecycleActionResult: {other} (CONTINUE, ABANDON)"
            )))
        }
    };
    let instance = p.get("InstanceId").ok_or_else(|| {
        AwsError::validation(
            "InstanceId is required (Flotilla does not issue LifecycleActionTokens)",
        )
    })?;
    call.backend
        .complete_lifecycle_action(&group, instance, hook, proceed)
        .map_err(|e| {
            AwsError::validation(format!(
                "No active Lifecycle Action found with instance ID {instance}: {e}"
            ))
        })?;
    Ok(String::new())
}

/// `WarmPoolConfiguration`'s children.
pub(crate) fn write_warm_pool_config(x: &mut Xml, w: &WarmPoolRes) {
    x.leaf(
        "MaxGroupPreparedCapacity",
        w.max_group_prepared_capacity
            .map_or(-1, i64::from)
            .to_string(),
    )
    .leaf("MinSize", w.min_size.to_string())
    .leaf("PoolState", "Running")
    .node("InstanceReusePolicy", |x| {
        x.boolean("ReuseOnScaleIn", w.reuse_on_scale_in);
    });
}

pub(crate) fn put_warm_pool(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = existing(call)?;
    let prepared = p.int("MaxGroupPreparedCapacity", -1, 1000)?;
    if let Some(state) = p.get("PoolState") {
        if !matches!(state, "Stopped" | "Running" | "Hibernated") {
            return Err(AwsError::validation(format!("Invalid PoolState: {state}")));
        }
    }
    let pool = WarmPoolRes {
        min_size: p.u32("MinSize", 0, 1000)?.unwrap_or(0),
        max_group_prepared_capacity: prepared.and_then(|n| u32::try_from(n).ok()),
        reuse_on_scale_in: p
            .boolean("InstanceReusePolicy.ReuseOnScaleIn")?
            .unwrap_or(false),
    };
    let g = api_group(call, &group)?;
    if pool
        .max_group_prepared_capacity
        .is_some_and(|m| m < pool.min_size)
    {
        return Err(AwsError::validation(
            "MaxGroupPreparedCapacity must be at least the warm pool's MinSize",
        ));
    }
    g.warm_pool = Some(pool);
    super::mixed::no_warm_pool_with_mixed(g)?;
    Ok(String::new())
}

pub(crate) fn describe_warm_pool(call: &mut Call<'_>) -> AwsResult<String> {
    let group = existing(call)?;
    let pool = call
        .reg
        .groups
        .get(&group)
        .and_then(|g| g.warm_pool.clone());
    let pooled: Vec<InstanceLive> = call
        .backend
        .group(&group)
        .map(|g| g.instances)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.lifecycle.starts_with("Warmed"))
        .collect();
    let mut x = Xml::new();
    if let Some(w) = &pool {
        x.node("WarmPoolConfiguration", |x| write_warm_pool_config(x, w));
    }
    x.list("Instances", "member", &pooled, |x, i| {
        x.leaf("InstanceId", &i.id)
            .leaf("InstanceType", &i.instance_type)
            .leaf("AvailabilityZone", call.zones.api(&i.zone))
            .leaf("LifecycleState", &i.lifecycle)
            .leaf("HealthStatus", &i.health);
    });
    Ok(x.finish())
}

pub(crate) fn delete_warm_pool(call: &mut Call<'_>) -> AwsResult<String> {
    let group = existing(call)?;
    let g = api_group(call, &group)?;
    if g.warm_pool.take().is_none() {
        return Err(AwsError::validation(format!(
            "No warm pool found for group {group}"
        )));
    }
    Ok(String::new())
}
