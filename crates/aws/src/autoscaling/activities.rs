//! Scaling activities: every launch, termination and capacity change with its cause, from
//! the cluster's activity history (this run's and earlier runs').

use crate::call::{iso, Call};
use crate::protocol::xml::Xml;
use crate::protocol::AwsResult;
use crate::views;

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let groups: Vec<String> = match p.get("AutoScalingGroupName") {
        Some(g) => vec![g.to_string()],
        None => views::groups(call)
            .into_iter()
            .map(|(g, _)| g.name)
            .collect(),
    };
    let ids = p.strings("ActivityIds", true)?.unwrap_or_default();
    let mut all = Vec::new();
    for g in &groups {
        let arn = views::group(call, g).map(|(r, _)| r.arn);
        for a in call.backend.activities(g).unwrap_or_default() {
            if ids.is_empty() || ids.contains(&a.id) {
                all.push((g.clone(), arn.clone(), a));
            }
        }
    }
    all.sort_by_key(|a| std::cmp::Reverse(a.2.start_ms));
    let (page, next) = super::page(call, all, 100)?;
    let mut x = Xml::new();
    x.list("Activities", "member", &page, |x, (g, arn, a)| {
        let description = a
            .description
            .replacen(
                "Launching a new instance",
                "Launching a new EC2 instance",
                1,
            )
            .replacen("Terminating instance", "Terminating EC2 instance", 1);
        x.leaf("ActivityId", &a.id)
            .leaf("AutoScalingGroupName", g)
            .leaf("Description", description)
            .leaf("Cause", format!("At {} {}", iso(a.start_ms), a.cause))
            .leaf("StartTime", iso(a.start_ms))
            .opt("EndTime", a.end_ms.map(iso))
            .leaf("StatusCode", &a.status)
            .leaf("Progress", a.progress.to_string())
            .leaf("Details", "{}")
            .opt("AutoScalingGroupARN", arn.as_ref());
    });
    x.opt("NextToken", next);
    Ok(x.finish())
}
