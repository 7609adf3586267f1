//! Scheduled actions (cron recurrences in IANA zones, or one-off start times), run by the
//! group's scaling controller.

use flotilla_control::schedule::ScheduledActionSpec;

use crate::call::Call;
use crate::model::ScheduledRes;
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult};

use super::{api_group, existing};

pub(crate) fn put(call: &mut Call<'_>) -> AwsResult<()> {
    let p = call.p;
    let group = existing(call)?;
    let name = p.required("ScheduledActionName")?.to_string();
    let start = p.get("StartTime").or(p.get("Time")).map(str::to_string);
    let s = ScheduledRes {
        name: name.clone(),
        arn: call.ids.scheduled_arn(&group, &name),
        recurrence: p.get("Recurrence").map(str::to_string),
        time_zone: p.get("TimeZone").map(str::to_string),
        start_time: start,
        end_time: p.get("EndTime").map(str::to_string),
        min_size: p.u32("MinSize", 0, 1000)?,
        max_size: p.u32("MaxSize", 0, 1000)?,
        desired_capacity: p.u32("DesiredCapacity", 0, 1000)?,
    };
    if s.min_size.is_none() && s.max_size.is_none() && s.desired_capacity.is_none() {
        return Err(AwsError::validation(
            "At least one of MinSize, MaxSize or DesiredCapacity must be specified",
        ));
    }
    if let (Some(min), Some(max)) = (s.min_size, s.max_size) {
        if min > max {
            return Err(AwsError::validation(format!(
                "Max bound, {max}, must be greater than or equal to min bound, {min}"
            )));
        }
    }
    ScheduledActionSpec::parse(
        &name,
        s.recurrence.as_deref(),
        s.time_zone.as_deref().unwrap_or("UTC"),
        s.start_time.as_deref(),
        s.end_time.as_deref(),
        s.min_size,
        s.max_size,
        s.desired_capacity,
    )
    .map_err(|e| AwsError::validation(format!("Scheduled action {name}: {e}")))?;
    let g = api_group(call, &group)?;
    if g.scheduled.values().any(|o| {
        o.name != name
            && o.start_time.is_some()
            && o.start_time == s.start_time
            && o.recurrence.is_none()
    }) {
        return Err(AwsError::validation(
            "Two scheduled actions cannot have the same start time",
        ));
    }
    if g.scheduled.len() >= 125 && !g.scheduled.contains_key(&name) {
        return Err(AwsError::new(
            "LimitExceeded",
            "A group has at most 125 scheduled actions",
        ));
    }
    let arn = g
        .scheduled
        .get(&name)
        .map_or(s.arn.clone(), |o| o.arn.clone());
    g.scheduled.insert(name, ScheduledRes { arn, ..s });
    Ok(())
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = p.get("AutoScalingGroupName");
    if let Some(g) = group {
        if crate::views::group(call, g).is_none() {
            return Err(super::no_group(g));
        }
    }
    let names = p.strings("ScheduledActionNames", true)?.unwrap_or_default();
    let all: Vec<(String, ScheduledRes)> = call
        .reg
        .groups
        .values()
        .filter(|g| group.is_none_or(|n| n == g.name))
        .flat_map(|g| g.scheduled.values().map(|s| (g.name.clone(), s.clone())))
        .filter(|(_, s)| names.is_empty() || names.contains(&s.name))
        .collect();
    let (page, next) = super::page(call, all, 100)?;
    let mut x = Xml::new();
    x.list(
        "ScheduledUpdateGroupActions",
        "member",
        &page,
        |x, (g, s)| {
            x.leaf("AutoScalingGroupName", g)
                .leaf("ScheduledActionName", &s.name)
                .leaf("ScheduledActionARN", &s.arn)
                .opt("Time", s.start_time.as_ref())
                .opt("StartTime", s.start_time.as_ref())
                .opt("EndTime", s.end_time.as_ref())
                .opt("Recurrence", s.recurrence.as_ref())
                .opt("MinSize", s.min_size.map(|n| n.to_string()))
                .opt("MaxSize", s.max_size.map(|n| n.to_string()))
                .opt("DesiredCapacity", s.desired_capacity.map(|n| n.to_string()))
                .opt("TimeZone", s.time_zone.as_ref());
        },
    );
    x.opt("NextToken", next);
    Ok(x.finish())
}

pub(crate) fn delete(call: &mut Call<'_>) -> AwsResult<()> {
    let group = existing(call)?;
    let name = call.p.required("ScheduledActionName")?.to_string();
    let g = api_group(call, &group)?;
    g.scheduled.remove(&name).ok_or_else(|| {
        AwsError::validation(format!(
            "Scheduled action name not found - Scheduled action {name} not found for group {group}"
        ))
    })?;
    Ok(())
}
