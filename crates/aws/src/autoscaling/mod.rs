//! EC2 Auto Scaling (`Version=2011-01-01`): groups, scaling policies, activities, scheduled
//! actions, instance refresh, processes, lifecycle hooks and warm pools. Twenty of its
//! operations have no output: they answer with `ResponseMetadata` only.

mod activities;
mod group_views;
mod groups;
mod hooks;
mod instances;
mod mixed;
mod policies;
mod processes;
mod scheduled;

use crate::call::{invalid_action, Answer, Call};
use crate::protocol::{AwsError, AwsResult};

/// Runs one Auto Scaling action.
pub(crate) fn dispatch(call: &mut Call<'_>, action: &str) -> AwsResult<Answer> {
    let with_result = |r: String| Ok(Answer::Query(Some(r)));
    let without = || Ok(Answer::Query(None));
    match action {
        "CreateAutoScalingGroup" => groups::create(call).and_then(|_| without()),
        "DescribeAutoScalingGroups" => group_views::describe(call).and_then(with_result),
        "UpdateAutoScalingGroup" => groups::update(call).and_then(|_| without()),
        "SetDesiredCapacity" => groups::set_desired_capacity(call).and_then(|_| without()),
        "DeleteAutoScalingGroup" => groups::delete(call).and_then(|_| without()),
        "DescribeAutoScalingInstances" => instances::describe_instances(call).and_then(with_result),
        "TerminateInstanceInAutoScalingGroup" => instances::terminate(call).and_then(with_result),
        "SetInstanceHealth" => instances::set_instance_health(call).and_then(|_| without()),
        "SetInstanceProtection" => instances::set_instance_protection(call).and_then(with_result),
        "PutScalingPolicy" => policies::put(call).and_then(with_result),
        "DescribePolicies" => policies::describe(call).and_then(with_result),
        "DeletePolicy" => policies::delete(call).and_then(|_| without()),
        "ExecutePolicy" => policies::execute(call).and_then(|_| without()),
        "DescribeScalingActivities" => activities::describe(call).and_then(with_result),
        "PutScheduledUpdateGroupAction" => scheduled::put(call).and_then(|_| without()),
        "DescribeScheduledActions" => scheduled::describe(call).and_then(with_result),
        "DeleteScheduledAction" => scheduled::delete(call).and_then(|_| without()),
        "StartInstanceRefresh" => processes::start_refresh(call).and_then(with_result),
        "DescribeInstanceRefreshes" => processes::describe_refreshes(call).and_then(with_result),
        "CancelInstanceRefresh" => processes::cancel_refresh(call).and_then(with_result),
        "SuspendProcesses" => processes::suspend(call, true).and_then(|_| without()),
        "ResumeProcesses" => processes::suspend(call, false).and_then(|_| without()),
        "PutLifecycleHook" => hooks::put(call).and_then(with_result),
        "DescribeLifecycleHooks" => hooks::describe(call).and_then(with_result),
        "DeleteLifecycleHook" => hooks::delete(call).and_then(with_result),
        "CompleteLifecycleAction" => hooks::complete(call).and_then(with_result),
        "PutWarmPool" => hooks::put_warm_pool(call).and_then(with_result),
        "DescribeWarmPool" => hooks::describe_warm_pool(call).and_then(with_result),
        "DeleteWarmPool" => hooks::delete_warm_pool(call).and_then(with_result),
        other => Err(invalid_action(other)),
    }
}

/// The `ValidationError` AWS gives for a group that does not exist.
pub(crate) fn no_group(name: &str) -> AwsError {
    AwsError::validation(format!(
        "AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"
    ))
}

/// A group of the file, which the API may not reconfigure.
pub(crate) fn read_only(name: &str) -> AwsError {
    AwsError::validation(format!(
        "AutoScalingGroup '{name}' is defined in Flotilla's config file and is read-only \
         through the API (scaling, processes, instances and refreshes may be changed; its \
         settings only in the file)"
    ))
}

/// The API group `name` for a change (the file's are read-only).
pub(crate) fn api_group<'c>(
    call: &'c mut Call<'_>,
    name: &str,
) -> AwsResult<&'c mut crate::model::GroupRes> {
    if call.file.auto_scaling_groups.contains_key(name) {
        return Err(read_only(name));
    }
    call.reg.groups.get_mut(name).ok_or_else(|| no_group(name))
}

/// The group named by `AutoScalingGroupName`, which must exist (file or API).
pub(crate) fn existing(call: &Call<'_>) -> AwsResult<String> {
    let name = call.p.required("AutoScalingGroupName")?;
    if crate::views::group(call, name).is_none() {
        return Err(no_group(name));
    }
    Ok(name.to_string())
}

/// `MaxRecords` (1–`max`) and `NextToken` paging.
pub(crate) fn page<T>(
    call: &Call<'_>,
    items: Vec<T>,
    max: u32,
) -> AwsResult<(Vec<T>, Option<String>)> {
    let size = call.p.u32("MaxRecords", 1, max)?.unwrap_or(max.min(50)) as usize;
    crate::call::paginate(items, call.p.get("NextToken"), size, || {
        AwsError::new("InvalidNextToken", "The token is not valid")
    })
}
