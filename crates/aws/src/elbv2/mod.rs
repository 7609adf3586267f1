//! ELBv2 (`Version=2015-12-01`): target groups, load balancers, listeners, rules, tags.

mod actions;
mod conditions;
mod load_balancers;
mod rules;
mod tags;
mod target_groups;
mod targets;

use crate::call::{invalid_action, Answer, Call};
use crate::protocol::{AwsError, AwsResult};

pub(crate) use actions::{parse_actions, write_actions};

/// Runs one ELBv2 action.
pub(crate) fn dispatch(call: &mut Call<'_>, action: &str) -> AwsResult<Answer> {
    let result = match action {
        "CreateTargetGroup" => target_groups::create(call)?,
        "DescribeTargetGroups" => target_groups::describe(call)?,
        "DeleteTargetGroup" => target_groups::delete(call)?,
        "ModifyTargetGroup" => target_groups::modify(call)?,
        "ModifyTargetGroupAttributes" => target_groups::modify_attributes(call)?,
        "DescribeTargetGroupAttributes" => target_groups::describe_attributes(call)?,
        "DescribeTargetHealth" => targets::describe_health(call)?,
        "RegisterTargets" => targets::register(call, true)?,
        "DeregisterTargets" => targets::register(call, false)?,
        "CreateLoadBalancer" => load_balancers::create(call)?,
        "DescribeLoadBalancers" => load_balancers::describe(call)?,
        "DeleteLoadBalancer" => load_balancers::delete(call)?,
        "DescribeLoadBalancerAttributes" => load_balancers::describe_attributes(call)?,
        "ModifyLoadBalancerAttributes" => load_balancers::modify_attributes(call)?,
        "CreateListener" => rules::create_listener(call)?,
        "DescribeListeners" => rules::describe_listeners(call)?,
        "ModifyListener" => rules::modify_listener(call)?,
        "DeleteListener" => rules::delete_listener(call)?,
        "CreateRule" => rules::create_rule(call)?,
        "DescribeRules" => rules::describe_rules(call)?,
        "ModifyRule" => rules::modify_rule(call)?,
        "SetRulePriorities" => rules::set_priorities(call)?,
        "DeleteRule" => rules::delete_rule(call)?,
        "DescribeTags" => tags::describe(call)?,
        "AddTags" => tags::add(call)?,
        "RemoveTags" => tags::remove(call)?,
        other => return Err(invalid_action(other)),
    };
    Ok(Answer::Query(Some(result)))
}

/// `PageSize` (1–400) and `Marker` pagination of ELBv2 describes.
pub(crate) fn page<T>(call: &Call<'_>, items: Vec<T>) -> AwsResult<(Vec<T>, Option<String>)> {
    let size = call.p.u32("PageSize", 1, 400)?.unwrap_or(400) as usize;
    crate::call::paginate(items, call.p.get("Marker"), size, || {
        AwsError::validation("The marker is not valid")
    })
}

/// Checks a resource name as ELBv2 does: 1–32 alphanumerics and hyphens, not starting or
/// ending with a hyphen.
/// What an ELBv2 `Describe*` names: each of `arns`, then each of `names` (one that does not
/// exist is `not_found`, as AWS answers), or everything when it names nothing.
pub(crate) fn pick<T: Clone>(
    all: Vec<T>,
    arns: &[String],
    names: &[String],
    key: impl Fn(&T) -> (&str, &str),
    not_found: fn() -> AwsError,
) -> AwsResult<Vec<T>> {
    if arns.is_empty() && names.is_empty() {
        return Ok(all);
    }
    let by = |wanted: &String, arn: bool| {
        all.iter()
            .find(|r| {
                let (a, n) = key(r);
                (if arn { a } else { n }) == wanted
            })
            .cloned()
            .ok_or_else(not_found)
    };
    let by_arn = arns.iter().map(|a| by(a, true));
    let by_name = names.iter().map(|n| by(n, false));
    by_arn.chain(by_name).collect()
}

pub(crate) fn check_name(name: &str, what: &str) -> AwsResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok && !(what == "load balancer" && name.starts_with("internal-")) {
        Ok(())
    } else {
        Err(AwsError::validation(format!(
            "{what} name '{name}' can have a maximum of 32 characters, can contain only \
             alphanumeric characters or hyphens, and must not begin or end with a hyphen"
        )))
    }
}
