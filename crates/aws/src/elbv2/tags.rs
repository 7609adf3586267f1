//! Tags of target groups, load balancers, listeners and rules.

use crate::call::Call;
use crate::model::Tag;
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};
use crate::views::{self, read_only};

/// `Tags.member.N.Key/Value`.
pub(crate) fn parse_tags(p: &Params) -> AwsResult<Vec<Tag>> {
    let mut tags: Vec<Tag> = Vec::new();
    for t in p.list_entries("Tags", true)?.unwrap_or_default() {
        let key = t.required("Key")?;
        if key.is_empty() || key.len() > 128 || key.starts_with("aws:") {
            return Err(AwsError::validation(format!(
                "Tag key '{key}' must be 1-128 characters and not start with 'aws:'"
            )));
        }
        tags.retain(|x| x.key != key);
        tags.push(Tag {
            key: key.to_string(),
            value: t.get("Value").unwrap_or("").to_string(),
            propagate_at_launch: false,
        });
    }
    Ok(tags)
}

/// The error for an unknown ARN of `arn`'s kind.
fn not_found(arn: &str) -> AwsError {
    if arn.contains(":targetgroup/") {
        AwsError::new("TargetGroupNotFound", "One or more target groups not found")
    } else if arn.contains(":listener-rule/") {
        AwsError::new("RuleNotFound", "One or more rules not found")
    } else if arn.contains(":listener/") {
        AwsError::new("ListenerNotFound", "One or more listeners not found")
    } else {
        AwsError::new(
            "LoadBalancerNotFound",
            "One or more load balancers not found",
        )
    }
}

/// The tags of `arn` and whether the resource is the file's.
fn tags_of(call: &Call<'_>, arn: &str) -> AwsResult<(Vec<Tag>, bool)> {
    if let Some((t, f)) = views::target_groups(call)
        .into_iter()
        .find(|(t, _)| t.arn == arn)
    {
        return Ok((t.tags, f));
    }
    if let Some((l, f)) = views::load_balancers(call)
        .into_iter()
        .find(|(l, _)| l.arn == arn)
    {
        return Ok((l.tags, f));
    }
    for (l, rules, f) in views::listeners(call) {
        if l.arn == arn {
            return Ok((l.tags, f));
        }
        if let Some(r) = rules.into_iter().find(|r| r.arn == arn) {
            return Ok((r.tags, f));
        }
    }
    Err(not_found(arn))
}

/// The API resource's tag list for a change.
fn tags_mut<'c>(call: &'c mut Call<'_>, arn: &str) -> AwsResult<&'c mut Vec<Tag>> {
    let (_, file) = tags_of(call, arn)?;
    if file {
        return Err(read_only("resource", arn));
    }
    let reg = &mut call.reg;
    if let Some(t) = reg.target_groups.values_mut().find(|t| t.arn == arn) {
        return Ok(&mut t.tags);
    }
    if let Some(l) = reg.load_balancers.values_mut().find(|l| l.arn == arn) {
        return Ok(&mut l.tags);
    }
    if let Some(l) = reg.listeners.get_mut(arn) {
        return Ok(&mut l.tags);
    }
    reg.rules
        .get_mut(arn)
        .map(|r| &mut r.tags)
        .ok_or_else(|| not_found(arn))
}

fn arns(p: &Params) -> AwsResult<Vec<String>> {
    let arns = p.strings("ResourceArns", true)?.unwrap_or_default();
    if arns.is_empty() {
        return Err(AwsError::missing("ResourceArns"));
    }
    if arns.len() > 20 {
        return Err(AwsError::validation(
            "At most 20 resource ARNs may be given",
        ));
    }
    Ok(arns)
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let mut found = Vec::new();
    for arn in arns(call.p)? {
        let (tags, _) = tags_of(call, &arn)?;
        found.push((arn, tags));
    }
    let mut x = Xml::new();
    x.list("TagDescriptions", "member", &found, |x, (arn, tags)| {
        x.leaf("ResourceArn", arn)
            .list("Tags", "member", tags, |x, t| {
                x.leaf("Key", &t.key).leaf("Value", &t.value);
            });
    });
    Ok(x.finish())
}

pub(crate) fn add(call: &mut Call<'_>) -> AwsResult<String> {
    let new = parse_tags(call.p)?;
    if new.is_empty() {
        return Err(AwsError::missing("Tags"));
    }
    for arn in arns(call.p)? {
        let tags = tags_mut(call, &arn)?;
        for t in &new {
            tags.retain(|x| x.key != t.key);
            tags.push(t.clone());
        }
        if tags.len() > 50 {
            return Err(AwsError::new(
                "TooManyTags",
                "You've reached the limit on the number of tags for this resource",
            ));
        }
    }
    Ok(String::new())
}

pub(crate) fn remove(call: &mut Call<'_>) -> AwsResult<String> {
    let keys = call.p.strings("TagKeys", true)?.unwrap_or_default();
    if keys.is_empty() {
        return Err(AwsError::missing("TagKeys"));
    }
    for arn in arns(call.p)? {
        tags_mut(call, &arn)?.retain(|t| !keys.contains(&t.key));
    }
    Ok(String::new())
}
