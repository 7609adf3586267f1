//! The admin API's lifecycle-hook and warm-pool calls, carried out on the group's state
//! machine (`AutoScalingGroup::complete_lifecycle_action`, `…_heartbeat`, `warm_pool`).

use flotilla_admin::api::{
    CompleteLifecycleActionRequest, CompleteLifecycleActionResponse, LifecycleActionInfo,
    LifecycleHeartbeatRequest, LifecycleResult, WarmPoolInfo,
};
use flotilla_admin::AdminError;
use flotilla_control::{
    AutoScalingGroup, InstanceId, LifecycleAction, LifecycleActionError, LifecycleActionResult,
};

use crate::backend::{instance_info, no_group, AdminView};
use crate::clock::Clock;

/// `GET /v1/groups/{name}/lifecycle-actions`.
pub(crate) fn actions(
    view: &AdminView,
    name: &str,
) -> Result<Vec<LifecycleActionInfo>, AdminError> {
    let c = view.lock();
    let g = c.groups.get(name).ok_or_else(|| no_group(name))?;
    Ok(g.asg
        .lifecycle_actions()
        .iter()
        .map(|a| action_info(&view.clock, &g.asg, a))
        .collect())
}

/// `POST /v1/groups/{name}/lifecycle-actions`.
pub(crate) fn complete(
    view: &AdminView,
    name: &str,
    request: &CompleteLifecycleActionRequest,
) -> Result<CompleteLifecycleActionResponse, AdminError> {
    let now = view.clock.now();
    let id = InstanceId::from(request.instance_id.clone());
    let result = match request.result {
        LifecycleResult::Continue => LifecycleActionResult::Continue,
        LifecycleResult::Abandon => LifecycleActionResult::Abandon,
    };
    let mut c = view.lock();
    let g = c.groups.get_mut(name).ok_or_else(|| no_group(name))?;
    g.asg
        .complete_lifecycle_action(now, &id, &request.hook, result)
        .map_err(action_error)?;
    let state = state_of(&g.asg, &id).to_string();
    drop(c);
    tracing::info!(
        group = name,
        instance = request.instance_id.as_str(),
        hook = request.hook.as_str(),
        "lifecycle action completed: {}",
        result.as_str()
    );
    view.wake.notify_one();
    Ok(CompleteLifecycleActionResponse {
        instance_id: request.instance_id.clone(),
        hook: request.hook.clone(),
        result: request.result,
        state,
    })
}

/// `POST /v1/groups/{name}/lifecycle-actions/heartbeat`.
pub(crate) fn heartbeat(
    view: &AdminView,
    name: &str,
    request: &LifecycleHeartbeatRequest,
) -> Result<LifecycleActionInfo, AdminError> {
    let now = view.clock.now();
    let id = InstanceId::from(request.instance_id.clone());
    let mut c = view.lock();
    let g = c.groups.get_mut(name).ok_or_else(|| no_group(name))?;
    g.asg
        .record_lifecycle_action_heartbeat(now, &id, &request.hook)
        .map_err(action_error)?;
    let action = g
        .asg
        .lifecycle_actions()
        .into_iter()
        .find(|a| a.instance_id == id && a.hook == request.hook)
        .ok_or_else(|| AdminError::Conflict("the lifecycle action ended".to_string()))?;
    let info = action_info(&view.clock, &g.asg, &action);
    drop(c);
    // The loop sleeps until the earliest timeout; it must see the later one.
    view.wake.notify_one();
    Ok(info)
}

/// `GET /v1/groups/{name}/warm-pool`.
pub(crate) fn warm_pool(view: &AdminView, name: &str) -> Result<WarmPoolInfo, AdminError> {
    let c = view.lock();
    let g = c.groups.get(name).ok_or_else(|| no_group(name))?;
    let pool = g.asg.warm_pool().ok_or_else(|| {
        AdminError::NotFound(format!("auto scaling group `{name}` has no warm pool"))
    })?;
    let instances = g
        .asg
        .instances()
        .filter(|i| i.lifecycle.is_warmed())
        .map(|i| instance_info(&view.clock, &c, i))
        .collect();
    Ok(WarmPoolInfo {
        group: name.to_string(),
        min_size: pool.config.min_size,
        max_group_prepared_capacity: pool.config.prepared_capacity(g.asg.spec().max_size),
        pool_state: "running".to_string(),
        reuse_on_scale_in: pool.config.reuse_on_scale_in,
        desired_size: pool.desired_size,
        size: pool.size,
        instances,
    })
}

/// The instance's lifecycle state as the API names it; `terminated` once the group let go.
fn state_of(asg: &AutoScalingGroup, id: &InstanceId) -> &'static str {
    asg.instances()
        .find(|i| i.id == *id)
        .map_or("terminated", |i| i.lifecycle.as_str())
}

fn action_info(clock: &Clock, asg: &AutoScalingGroup, a: &LifecycleAction) -> LifecycleActionInfo {
    let state = state_of(asg, &a.instance_id);
    LifecycleActionInfo {
        instance_id: a.instance_id.to_string(),
        hook: a.hook.clone(),
        transition: a.transition.as_str().to_string(),
        state: state.to_string(),
        timeout_at: clock.rfc3339(a.timeout_at),
        default_result: a.default_result.as_str().to_string(),
    }
}

fn action_error(e: LifecycleActionError) -> AdminError {
    match e {
        LifecycleActionError::UnknownInstance(_) => AdminError::NotFound(e.to_string()),
        LifecycleActionError::NotWaiting { .. } => AdminError::Conflict(e.to_string()),
    }
}
