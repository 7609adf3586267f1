//! EC2 (`Version=2016-11-15`): launch templates and their versions (an `ImageId` is a key of
//! `[aws_api.images]`), the instances groups run, and the synthetic default VPC with one subnet
//! per zone. EC2 lists have no `.member`, answers use lowerCamel names and `<item>`.

use base64::Engine;

use crate::call::{invalid_action, iso, now_ms, paginate, Answer, Call};
use crate::model::{LaunchTemplateRes, LtData, LtVersion, Tag};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};
use crate::views;

/// Runs one EC2 action.
pub(crate) fn dispatch(call: &mut Call<'_>, action: &str) -> AwsResult<Answer> {
    let body = match action {
        "CreateLaunchTemplate" => create_template(call)?,
        "CreateLaunchTemplateVersion" => create_version(call)?,
        "DescribeLaunchTemplates" => describe_templates(call)?,
        "DescribeLaunchTemplateVersions" => describe_versions(call)?,
        "ModifyLaunchTemplate" => modify_template(call)?,
        "DeleteLaunchTemplate" => delete_template(call)?,
        "DescribeInstances" => crate::ec2_network::describe_instances(call)?,
        "DescribeVpcs" => crate::ec2_network::describe_vpcs(call)?,
        "DescribeSubnets" => crate::ec2_network::describe_subnets(call)?,
        "DescribeAvailabilityZones" => crate::ec2_network::describe_zones(call)?,
        other => return Err(invalid_action(other)),
    };
    Ok(Answer::Ec2(body))
}

fn created_by(call: &Call<'_>) -> String {
    format!("arn:aws:iam::{}:root", call.ids.account)
}

/// `TagSpecification.N` tags for `resource_type`.
fn tag_specs(p: &Params, prefix: &str, resource_type: &str) -> AwsResult<Vec<Tag>> {
    let mut tags = Vec::new();
    for spec in p.list_entries(prefix, false)?.unwrap_or_default() {
        let kind = spec.required("ResourceType")?;
        if kind != resource_type && !(resource_type == "instance" && kind == "volume") {
            return Err(AwsError::invalid_value(format!(
                "'{kind}' is not a valid taggable resource type for this operation"
            )));
        }
        for t in spec.list_entries("Tag", false)?.unwrap_or_default() {
            tags.push(Tag {
                key: t.required("Key")?.to_string(),
                value: t.get("Value").unwrap_or("").to_string(),
                propagate_at_launch: false,
            });
        }
    }
    Ok(tags)
}

/// `LaunchTemplateData` over `base` (a source version's, or empty).
fn template_data(call: &Call<'_>, base: LtData) -> AwsResult<LtData> {
    let p = call.p;
    if !p.has("LaunchTemplateData") {
        return Err(AwsError::missing("LaunchTemplateData"));
    }
    let d = p.sub("LaunchTemplateData");
    let mut data = base;
    if let Some(image) = d.get("ImageId") {
        let hex = image.strip_prefix("ami-").unwrap_or("");
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AwsError::new(
                "InvalidAMIID.Malformed",
                format!("Invalid id: \"{image}\" (expecting \"ami-...\")"),
            ));
        }
        if !call.images().contains_key(image) {
            return Err(AwsError::new(
                "InvalidAMIID.NotFound",
                format!(
                    "The image id '[{image}]' does not exist (Flotilla's images are the keys of \
                     [aws_api.images] in its config)"
                ),
            ));
        }
        data.image_id = Some(image.to_string());
    }
    if let Some(t) = d.get("InstanceType") {
        data.instance_type = Some(t.to_string());
    }
    if let Some(u) = d.get("UserData") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(u.trim());
        if decoded.is_err() {
            return Err(AwsError::invalid_value(
                "Invalid BASE64 encoding of user data.",
            ));
        }
        if u.len() > 21_848 {
            return Err(AwsError::invalid_value(
                "User data is limited to 16384 bytes",
            ));
        }
        data.user_data = Some(u.to_string());
    }
    if let Some(sg) = d.strings("SecurityGroupId", false)? {
        data.security_group_ids = sg;
    }
    if d.has("TagSpecification") {
        data.instance_tags = tag_specs(&d, "TagSpecification", "instance")?;
    }
    Ok(data)
}

fn check_template_name(name: &str) -> AwsResult<()> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"().-/_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AwsError::new(
            "InvalidLaunchTemplateName.MalformedException",
            "A launch template name must be between 3 and 128 characters, and may contain \
             letters, numbers, and the following characters: - ( ) . / _.'",
        ))
    }
}

fn write_template(call: &Call<'_>, x: &mut Xml, lt: &LaunchTemplateRes) {
    x.leaf("launchTemplateId", &lt.id)
        .leaf("launchTemplateName", &lt.name)
        .leaf("createTime", iso(lt.created_ms))
        .leaf("createdBy", created_by(call))
        .leaf("defaultVersionNumber", lt.default_version.to_string())
        .leaf("latestVersionNumber", lt.latest_version.to_string())
        .list("tagSet", "item", &lt.tags, |x, t| {
            x.leaf("key", &t.key).leaf("value", &t.value);
        });
}

fn write_version(call: &Call<'_>, x: &mut Xml, lt: &LaunchTemplateRes, v: &LtVersion) {
    x.leaf("launchTemplateId", &lt.id)
        .leaf("launchTemplateName", &lt.name)
        .leaf("versionNumber", v.number.to_string())
        .opt("versionDescription", v.description.as_ref())
        .leaf("createTime", iso(v.created_ms))
        .leaf("createdBy", created_by(call))
        .boolean("defaultVersion", v.number == lt.default_version)
        .node("launchTemplateData", |x| {
            x.opt("imageId", v.data.image_id.as_ref())
                .opt("instanceType", v.data.instance_type.as_ref())
                .opt("userData", v.data.user_data.as_ref())
                .strings("securityGroupIdSet", "item", &v.data.security_group_ids)
                .list(
                    "tagSpecificationSet",
                    "item",
                    [&v.data.instance_tags]
                        .into_iter()
                        .filter(|t| !t.is_empty()),
                    |x, tags| {
                        x.leaf("resourceType", "instance").list(
                            "tagSet",
                            "item",
                            tags.iter(),
                            |x, t| {
                                x.leaf("key", &t.key).leaf("value", &t.value);
                            },
                        );
                    },
                );
        });
}

/// The launch template named by `LaunchTemplateId` or `LaunchTemplateName`: (it, from file).
fn find(call: &Call<'_>) -> AwsResult<(LaunchTemplateRes, bool)> {
    let p = call.p;
    let all = views::launch_templates(call);
    if let Some(id) = p.get("LaunchTemplateId") {
        return all.into_iter().find(|(l, _)| l.id == id).ok_or_else(|| {
            AwsError::new(
                "InvalidLaunchTemplateId.NotFound",
                format!("The specified launch template, with template ID {id}, does not exist."),
            )
        });
    }
    if let Some(name) = p.get("LaunchTemplateName") {
        return all
            .into_iter()
            .find(|(l, _)| l.name == name)
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidLaunchTemplateName.NotFoundException",
                    format!(
                        "The specified launch template, with template name {name}, does not exist."
                    ),
                )
            });
    }
    Err(AwsError::missing("LaunchTemplateId or LaunchTemplateName"))
}

fn create_template(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let name = p.required("LaunchTemplateName")?.to_string();
    check_template_name(&name)?;
    let token = p.get("ClientToken").map(str::to_string);
    if let Some(t) = &token {
        if let Some(lt) = call
            .reg
            .launch_templates
            .values()
            .find(|l| l.client_token.as_ref() == Some(t))
        {
            let mut x = Xml::new();
            x.node("launchTemplate", |x| write_template(call, x, lt));
            return Ok(x.finish());
        }
    }
    let data = template_data(call, LtData::default())?;
    let tags = tag_specs(p, "TagSpecification", "launch-template")?;
    if views::launch_templates(call)
        .iter()
        .any(|(l, _)| l.name == name)
    {
        return Err(AwsError::new(
            "InvalidLaunchTemplateName.AlreadyExistsException",
            format!("Launch template name already in use: {name}"),
        ));
    }
    let now = now_ms();
    let lt = LaunchTemplateRes {
        id: call.ids.launch_template_id(),
        name: name.clone(),
        created_ms: now,
        default_version: 1,
        latest_version: 1,
        versions: [(
            1,
            LtVersion {
                number: 1,
                description: p.get("VersionDescription").map(str::to_string),
                created_ms: now,
                data,
            },
        )]
        .into(),
        tags,
        client_token: token,
    };
    let mut x = Xml::new();
    x.node("launchTemplate", |x| write_template(call, x, &lt));
    call.reg.launch_templates.insert(name, lt);
    Ok(x.finish())
}

/// Resolves `$Latest`, `$Default` or a number.
fn version_number(lt: &LaunchTemplateRes, v: &str) -> AwsResult<u64> {
    let n = match v {
        "$Latest" => lt.latest_version,
        "$Default" => lt.default_version,
        n => n.parse().map_err(|_| {
            AwsError::new(
                "InvalidLaunchTemplateId.VersionNotFound",
                format!("Could not find launch template version {v} for {}", lt.name),
            )
        })?,
    };
    if lt.versions.contains_key(&n) {
        Ok(n)
    } else {
        Err(AwsError::new(
            "InvalidLaunchTemplateId.VersionNotFound",
            format!("Could not find launch template version {n} for {}", lt.name),
        ))
    }
}

fn api_template<'c>(call: &'c mut Call<'_>) -> AwsResult<&'c mut LaunchTemplateRes> {
    let (lt, file) = find(call)?;
    if file {
        return Err(views::read_only("launch template", &lt.name));
    }
    call.reg
        .launch_templates
        .get_mut(&lt.name)
        .ok_or_else(|| AwsError::internal("launch template vanished"))
}

fn create_version(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let (lt, file) = find(call)?;
    if file {
        return Err(views::read_only("launch template", &lt.name));
    }
    let base = match p.get("SourceVersion") {
        Some(v) => lt.versions[&version_number(&lt, v)?].data.clone(),
        None => LtData::default(),
    };
    let data = template_data(call, base)?;
    let entry = api_template(call)?;
    let number = entry.latest_version + 1;
    let version = LtVersion {
        number,
        description: p.get("VersionDescription").map(str::to_string),
        created_ms: now_ms(),
        data,
    };
    entry.versions.insert(number, version.clone());
    entry.latest_version = number;
    let lt = entry.clone();
    let mut x = Xml::new();
    x.node("launchTemplateVersion", |x| {
        write_version(call, x, &lt, &version)
    });
    Ok(x.finish())
}

fn modify_template(call: &mut Call<'_>) -> AwsResult<String> {
    let default = call.p.get("SetDefaultVersion").map(str::to_string);
    let entry = api_template(call)?;
    if let Some(v) = default {
        entry.default_version = version_number(entry, &v)?;
    }
    let lt = entry.clone();
    let mut x = Xml::new();
    x.node("launchTemplate", |x| write_template(call, x, &lt));
    Ok(x.finish())
}

fn delete_template(call: &mut Call<'_>) -> AwsResult<String> {
    let (lt, file) = find(call)?;
    if file {
        return Err(views::read_only("launch template", &lt.name));
    }
    if let Some(g) = call.reg.groups.values().find(|g| g.lt_name == lt.name) {
        return Err(AwsError::new(
            "OperationNotPermitted",
            format!(
                "Launch template {} is used by auto scaling group {}; delete or update the \
                 group first",
                lt.name, g.name
            ),
        ));
    }
    call.reg.launch_templates.remove(&lt.name);
    let mut x = Xml::new();
    x.node("launchTemplate", |x| write_template(call, x, &lt));
    Ok(x.finish())
}

/// `MaxResults` (`min..=max`) and `NextToken` paging of EC2 describes.
pub(crate) fn page<T>(
    call: &Call<'_>,
    items: Vec<T>,
    min: u32,
    max: u32,
) -> AwsResult<(Vec<T>, Option<String>)> {
    let size = match call.p.get("MaxResults") {
        None => max as usize,
        Some(_) => call
            .p
            .int("MaxResults", i64::from(min), i64::from(max))
            .map_err(|e| AwsError::invalid_value(e.message))?
            .unwrap_or(i64::from(max)) as usize,
    };
    paginate(items, call.p.get("NextToken"), size, || {
        AwsError::new(
            "InvalidPaginationToken",
            "The pagination token is not valid",
        )
    })
}

/// Filters `Filter.N.Name`/`Filter.N.Value.M` as (name, values).
pub(crate) fn filters(p: &Params) -> AwsResult<Vec<(String, Vec<String>)>> {
    p.list_entries("Filter", false)?
        .unwrap_or_default()
        .iter()
        .map(|f| {
            Ok((
                f.required("Name")?.to_string(),
                f.strings("Value", false)?.unwrap_or_default(),
            ))
        })
        .collect()
}

fn describe_templates(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let ids = p.strings("LaunchTemplateId", false)?.unwrap_or_default();
    let names = p.strings("LaunchTemplateName", false)?.unwrap_or_default();
    let all: Vec<LaunchTemplateRes> = views::launch_templates(call)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let mut picked = Vec::new();
    for id in &ids {
        picked.push(all.iter().find(|l| &l.id == id).cloned().ok_or_else(|| {
            AwsError::new(
                "InvalidLaunchTemplateId.NotFound",
                format!("The specified launch template, with template ID {id}, does not exist."),
            )
        })?);
    }
    for n in &names {
        picked.push(all.iter().find(|l| &l.name == n).cloned().ok_or_else(|| {
            AwsError::new(
                "InvalidLaunchTemplateName.NotFoundException",
                "At least one of the launch templates specified in the request does not exist.",
            )
        })?);
    }
    if ids.is_empty() && names.is_empty() {
        picked = all;
    }
    for (name, values) in filters(p)? {
        picked.retain(|l| match name.as_str() {
            "launch-template-name" => values.contains(&l.name),
            n if n.starts_with("tag:") => l
                .tags
                .iter()
                .any(|t| t.key == n[4..] && values.contains(&t.value)),
            _ => true,
        });
    }
    let (page, next) = page(call, picked, 1, 200)?;
    let mut x = Xml::new();
    x.list("launchTemplates", "item", &page, |x, lt| {
        write_template(call, x, lt)
    });
    x.opt("nextToken", next);
    Ok(x.finish())
}

fn describe_versions(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let (lt, _) = find(call)?;
    let wanted = p
        .strings("LaunchTemplateVersion", false)?
        .unwrap_or_default();
    let mut numbers: Vec<u64> = if wanted.is_empty() {
        lt.versions.keys().rev().copied().collect()
    } else {
        wanted
            .iter()
            .map(|v| version_number(&lt, v))
            .collect::<AwsResult<_>>()?
    };
    let min = p
        .int("MinVersion", 1, i64::MAX)
        .map_err(|e| AwsError::invalid_value(e.message))?;
    let max = p
        .int("MaxVersion", 1, i64::MAX)
        .map_err(|e| AwsError::invalid_value(e.message))?;
    numbers.retain(|n| min.is_none_or(|m| *n as i64 >= m) && max.is_none_or(|m| *n as i64 <= m));
    let (page, next) = page(call, numbers, 1, 200)?;
    let mut x = Xml::new();
    x.list("launchTemplateVersionSet", "item", &page, |x, n| {
        write_version(call, x, &lt, &lt.versions[n]);
    });
    x.opt("nextToken", next);
    Ok(x.finish())
}
