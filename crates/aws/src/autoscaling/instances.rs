//! A group's instances: describe, terminate (with or without decrementing desired), health
//! and scale-in protection.

use crate::backend::InstanceLive;
use crate::call::{iso, now_ms, Call};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult};
use crate::views;

use super::existing;
use super::group_views::write_instance;

/// The instance `InstanceId` names and its group.
fn instance(call: &Call<'_>) -> AwsResult<InstanceLive> {
    let id = call.p.required("InstanceId")?;
    call.backend
        .instances()
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| {
            AwsError::validation(format!(
                "Instance Id not found - No managed instance found for instance ID: {id}"
            ))
        })
}

pub(crate) fn describe_instances(call: &mut Call<'_>) -> AwsResult<String> {
    let ids = call.p.strings("InstanceIds", true)?.unwrap_or_default();
    let all: Vec<InstanceLive> = call
        .backend
        .instances()
        .into_iter()
        .filter(|i| ids.is_empty() || ids.contains(&i.id))
        .collect();
    let (page, next) = super::page(call, all, 50)?;
    let mut x = Xml::new();
    x.list("AutoScalingInstances", "member", &page, |x, i| {
        if let Some((g, _)) = views::group(call, &i.group) {
            write_instance(call, x, &g, i, true);
        }
    });
    x.opt("NextToken", next);
    Ok(x.finish())
}

pub(crate) fn terminate(call: &mut Call<'_>) -> AwsResult<String> {
    let i = instance(call)?;
    let decrement = call
        .p
        .boolean("ShouldDecrementDesiredCapacity")?
        .ok_or_else(|| AwsError::missing("ShouldDecrementDesiredCapacity"))?;
    call.backend
        .terminate_instance(&i.id, decrement)
        .map_err(AwsError::validation)?;
    let mut x = Xml::new();
    x.node("Activity", |x| {
        let now = now_ms();
        x.leaf("ActivityId", call.ids.uuid())
            .leaf("AutoScalingGroupName", &i.group)
            .leaf("Description", format!("Terminating EC2 instance: {}", i.id))
            .leaf(
                "Cause",
                format!(
                    "At {} instance {} was taken out of service in response to a user request{}.",
                    iso(now),
                    i.id,
                    if decrement {
                        ", shrinking the capacity"
                    } else {
                        ""
                    }
                ),
            )
            .leaf("StartTime", iso(now))
            .leaf("StatusCode", "InProgress")
            .leaf("Progress", "0");
    });
    Ok(x.finish())
}

pub(crate) fn set_instance_health(call: &mut Call<'_>) -> AwsResult<()> {
    let i = instance(call)?;
    match call.p.required("HealthStatus")? {
        "Healthy" => Ok(()),
        // Flotilla replaces an unhealthy instance at once (after draining), as AWS does.
        "Unhealthy" => call
            .backend
            .terminate_instance(&i.id, false)
            .map(|_| ())
            .map_err(AwsError::validation),
        other => Err(AwsError::validation(format!(
            "Health status '{other}' is not valid (Healthy, Unhealthy)"
        ))),
    }
}

pub(crate) fn set_instance_protection(call: &mut Call<'_>) -> AwsResult<String> {
    let name = existing(call)?;
    let ids = call
        .p
        .strings("InstanceIds", true)?
        .filter(|l| !l.is_empty())
        .ok_or_else(|| AwsError::missing("InstanceIds"))?;
    let protect = call
        .p
        .boolean("ProtectedFromScaleIn")?
        .ok_or_else(|| AwsError::missing("ProtectedFromScaleIn"))?;
    let instances = call.backend.instances();
    for id in &ids {
        if !instances.iter().any(|i| &i.id == id && i.group == name) {
            return Err(AwsError::validation(format!(
                "The instance {id} is not part of Auto Scaling group {name}."
            )));
        }
    }
    for id in &ids {
        call.backend
            .set_instance_protection(id, protect)
            .map_err(AwsError::validation)?;
    }
    Ok(String::new())
}
