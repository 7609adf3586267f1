//! EC2 describes of what the cluster has: the instances groups run (tagged
//! `aws:autoscaling:groupName`, as AWS tags them), the synthetic default VPC, one subnet per
//! zone, and the zones themselves.

use crate::backend::InstanceLive;
use crate::call::{iso, Call};
use crate::ec2::{filters, page};
use crate::model::file_hex;
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult};
use crate::views;

fn state(lifecycle: &str) -> (u32, &'static str) {
    if lifecycle.starts_with("Pending") || lifecycle == "Warmed:Pending" {
        (0, "pending")
    } else if lifecycle.starts_with("Terminating") {
        (32, "shutting-down")
    } else if lifecycle == "Terminated" {
        (48, "terminated")
    } else {
        (16, "running")
    }
}

/// (key, value) tags of an instance.
fn instance_tags(call: &Call<'_>, i: &InstanceLive) -> Vec<(String, String)> {
    let mut tags = vec![("aws:autoscaling:groupName".to_string(), i.group.clone())];
    if let Some(g) = call.reg.groups.get(&i.group) {
        for t in g.tags.iter().filter(|t| t.propagate_at_launch) {
            tags.push((t.key.clone(), t.value.clone()));
        }
        if let Some(lt) = call.reg.launch_templates.get(&g.lt_name) {
            if let Some(v) = lt.versions.get(&lt.latest_version) {
                for t in &v.data.instance_tags {
                    tags.push((t.key.clone(), t.value.clone()));
                }
            }
        }
    }
    tags
}

fn image_of(call: &Call<'_>, group: &str) -> Option<String> {
    let (g, _) = views::group(call, group)?;
    let (lt, _) = views::launch_templates(call)
        .into_iter()
        .find(|(l, _)| l.name == g.lt_name)?;
    lt.versions.get(&lt.latest_version)?.data.image_id.clone()
}

pub(crate) fn describe_instances(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let mut all = call.backend.instances();
    if let Some(ids) = p.strings("InstanceId", false)? {
        for id in &ids {
            if !all.iter().any(|i| &i.id == id) {
                return Err(AwsError::new(
                    "InvalidInstanceID.NotFound",
                    format!("The instance ID '{id}' does not exist"),
                ));
            }
        }
        all.retain(|i| ids.contains(&i.id));
    }
    for (name, values) in filters(p)? {
        let known = [
            "instance-id",
            "instance-state-name",
            "availability-zone",
            "instance-type",
            "instance-lifecycle",
            "tag-key",
        ];
        if !known.contains(&name.as_str()) && !name.starts_with("tag:") {
            return Err(AwsError::invalid_value(format!(
                "The filter '{name}' is invalid"
            )));
        }
        let keep = |i: &InstanceLive| -> AwsResult<bool> {
            Ok(match name.as_str() {
                "instance-id" => values.contains(&i.id),
                "instance-state-name" => values.iter().any(|v| v == state(&i.lifecycle).1),
                "availability-zone" => values
                    .iter()
                    .any(|v| v == call.zones.api(&i.zone) || v == &i.zone),
                "instance-type" => values.contains(&i.instance_type),
                "instance-lifecycle" => values.iter().any(|v| v == "spot") && i.spot,
                "tag-key" => instance_tags(call, i)
                    .iter()
                    .any(|(k, _)| values.contains(k)),
                n if n.starts_with("tag:") => instance_tags(call, i)
                    .iter()
                    .any(|(k, v)| k == &n[4..] && values.contains(v)),
                other => {
                    return Err(AwsError::invalid_value(format!(
                        "The filter '{other}' is invalid"
                    )))
                }
            })
        };
        let mut kept = Vec::new();
        for i in all {
            if keep(&i)? {
                kept.push(i);
            }
        }
        all = kept;
    }
    let (page, next) = page(call, all, 5, 1000)?;
    let mut x = Xml::new();
    x.list("reservationSet", "item", &page, |x, i| {
        x.leaf(
            "reservationId",
            format!("r-{}", &file_hex("reservation", &i.id)[..16]),
        )
        .leaf("ownerId", &call.ids.account)
        .list("groupSet", "item", Vec::<()>::new(), |_, _| {})
        .list("instancesSet", "item", [i], |x, i| {
            write_instance(call, x, i)
        });
    });
    x.opt("nextToken", next);
    Ok(x.finish())
}

fn write_instance(call: &Call<'_>, x: &mut Xml, i: &InstanceLive) {
    let (code, name) = state(&i.lifecycle);
    let ip = i
        .address
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string());
    x.leaf("instanceId", &i.id)
        .opt("imageId", image_of(call, &i.group))
        .node("instanceState", |x| {
            x.leaf("code", code.to_string()).leaf("name", name);
        })
        .leaf("privateDnsName", ip.clone().unwrap_or_default())
        .leaf("dnsName", "")
        .leaf("instanceType", &i.instance_type)
        // EC2 names the lifecycle of Spot instances only.
        .opt("instanceLifecycle", i.spot.then_some("spot"))
        .leaf("launchTime", iso(i.launched_ms))
        .node("placement", |x| {
            x.leaf("availabilityZone", call.zones.api(&i.zone))
                .leaf("tenancy", "default");
        })
        .node("monitoring", |x| {
            x.leaf("state", "disabled");
        })
        .leaf("subnetId", call.ids.subnet_id(&i.zone))
        .leaf("vpcId", call.ids.vpc_id())
        .opt("privateIpAddress", ip)
        .leaf("architecture", "x86_64")
        .leaf("rootDeviceType", "ebs")
        .leaf("rootDeviceName", "/dev/sda1")
        .boolean("ebsOptimized", false)
        .leaf("hypervisor", "xen")
        .list("tagSet", "item", instance_tags(call, i), |x, (k, v)| {
            x.leaf("key", k).leaf("value", v);
        });
}

pub(crate) fn describe_vpcs(call: &mut Call<'_>) -> AwsResult<String> {
    let vpc = call.ids.vpc_id();
    if let Some(ids) = call.p.strings("VpcId", false)? {
        if let Some(bad) = ids.iter().find(|i| **i != vpc) {
            return Err(AwsError::new(
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{bad}' does not exist"),
            ));
        }
    }
    let mut x = Xml::new();
    x.list("vpcSet", "item", [&vpc], |x, vpc| {
        x.leaf("vpcId", vpc)
            .leaf("ownerId", &call.ids.account)
            .leaf("state", "available")
            .leaf("cidrBlock", "172.31.0.0/16")
            .leaf("dhcpOptionsId", "dopt-flotilla")
            .leaf("instanceTenancy", "default")
            .boolean("isDefault", true)
            .list("tagSet", "item", Vec::<()>::new(), |_, _| {});
    });
    Ok(x.finish())
}

pub(crate) fn describe_subnets(call: &mut Call<'_>) -> AwsResult<String> {
    let zones = call.file.cluster.zones.clone();
    let mut picked: Vec<(usize, String)> = zones.into_iter().enumerate().collect();
    if let Some(ids) = call.p.strings("SubnetId", false)? {
        for id in &ids {
            if !picked.iter().any(|(_, z)| &call.ids.subnet_id(z) == id) {
                return Err(AwsError::new(
                    "InvalidSubnetID.NotFound",
                    format!("The subnet ID '{id}' does not exist"),
                ));
            }
        }
        picked.retain(|(_, z)| ids.contains(&call.ids.subnet_id(z)));
    }
    for (name, values) in filters(call.p)? {
        picked.retain(|(_, z)| match name.as_str() {
            "vpc-id" => values.contains(&call.ids.vpc_id()),
            "availability-zone" => values.iter().any(|v| v == call.zones.api(z) || v == z),
            "default-for-az" => values.iter().any(|v| v == "true"),
            _ => true,
        });
    }
    let mut x = Xml::new();
    x.list("subnetSet", "item", &picked, |x, (i, z)| {
        x.leaf("subnetId", call.ids.subnet_id(z))
            .leaf(
                "subnetArn",
                format!(
                    "arn:aws:ec2:{}:{}:subnet/{}",
                    call.ids.region,
                    call.ids.account,
                    call.ids.subnet_id(z)
                ),
            )
            .leaf("state", "available")
            .leaf("ownerId", &call.ids.account)
            .leaf("vpcId", call.ids.vpc_id())
            .leaf("cidrBlock", format!("172.31.{}.0/20", i * 16))
            .leaf("availableIpAddressCount", "4091")
            .leaf("availabilityZone", call.zones.api(z))
            .leaf("availabilityZoneId", zone_id(call, *i))
            .boolean("defaultForAz", true)
            .boolean("mapPublicIpOnLaunch", true)
            .list("tagSet", "item", Vec::<()>::new(), |_, _| {});
    });
    Ok(x.finish())
}

fn zone_id(call: &Call<'_>, i: usize) -> String {
    let short: String = call
        .ids
        .region
        .split('-')
        .map(|part| part.chars().next().unwrap_or('x'))
        .collect();
    let digits: String = call
        .ids
        .region
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    format!("{short}{digits}-az{}", i + 1)
}

pub(crate) fn describe_zones(call: &mut Call<'_>) -> AwsResult<String> {
    let zones: Vec<(usize, String)> = call
        .file
        .cluster
        .zones
        .iter()
        .cloned()
        .enumerate()
        .collect();
    let names = call.p.strings("ZoneName", false)?.unwrap_or_default();
    for n in &names {
        if call.zones.cluster(n).is_none() {
            return Err(AwsError::invalid_value(format!(
                "The zone '{n}' does not exist."
            )));
        }
    }
    let mut x = Xml::new();
    let picked = zones.iter().filter(|(_, z)| {
        names.is_empty()
            || names
                .iter()
                .any(|n| call.zones.cluster(n) == Some(z.as_str()))
    });
    x.list("availabilityZoneInfo", "item", picked, |x, (i, z)| {
        x.leaf("zoneName", call.zones.api(z))
            .leaf("zoneId", zone_id(call, *i))
            .leaf("zoneState", "available")
            .leaf("regionName", &call.ids.region)
            .leaf("zoneType", "availability-zone")
            .leaf("optInStatus", "opt-in-not-required")
            .leaf("groupName", &call.ids.region)
            .leaf("networkBorderGroup", &call.ids.region)
            .list("messageSet", "item", Vec::<()>::new(), |_, _| {});
    });
    Ok(x.finish())
}
