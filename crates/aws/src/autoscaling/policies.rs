//! Scaling policies. Target tracking runs on Flotilla's metrics (`ASGAverageCPUUtilization`
//! → CPU per instance, `ALBRequestCountPerTarget` → requests per target, AWS's per-minute
//! target divided by 60; customized metric specifications by metric name). Step and simple
//! policies have no CloudWatch alarm here: they are kept, described and run by
//! `ExecutePolicy` with AWS's adjustment arithmetic.

use flotilla_control::policy::{apply_adjustment, AdjustmentType};

use crate::call::Call;
use crate::model::scaling::tracked_metric;
use crate::model::{PolicyRes, Step, TargetTrackingRes};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};
use crate::views;

use super::{api_group, existing};

fn adjustment_type(s: &str) -> AwsResult<AdjustmentType> {
    match s {
        "ChangeInCapacity" => Ok(AdjustmentType::ChangeInCapacity),
        "ExactCapacity" => Ok(AdjustmentType::ExactCapacity),
        "PercentChangeInCapacity" => Ok(AdjustmentType::PercentChangeInCapacity),
        other => Err(AwsError::validation(format!(
            "Invalid adjustment type: {other}"
        ))),
    }
}

fn target_tracking(
    call: &Call<'_>,
    p: &Params,
    group_tgs: &[String],
) -> AwsResult<TargetTrackingRes> {
    let t = p.sub("TargetTrackingConfiguration");
    if !p.has("TargetTrackingConfiguration") {
        return Err(AwsError::validation(
            "TargetTrackingConfiguration is required for a TargetTrackingScaling policy",
        ));
    }
    let target_value = t
        .float("TargetValue")?
        .ok_or_else(|| AwsError::missing("TargetTrackingConfiguration.TargetValue"))?;
    if target_value <= 0.0 {
        return Err(AwsError::validation("TargetValue must be greater than 0"));
    }
    let pre = t.sub("PredefinedMetricSpecification");
    let custom = t.sub("CustomizedMetricSpecification");
    let mut tt = TargetTrackingRes {
        predefined: pre.get("PredefinedMetricType").map(str::to_string),
        resource_label: pre.get("ResourceLabel").map(str::to_string),
        customized: None,
        dimensions: Vec::new(),
        target_value,
        disable_scale_in: t.boolean("DisableScaleIn")?.unwrap_or(false),
    };
    if custom.has("MetricName") || custom.has("Namespace") {
        tt.customized = Some((
            custom.required("MetricName")?.to_string(),
            custom.required("Namespace")?.to_string(),
            custom.required("Statistic")?.to_string(),
            custom.get("Unit").map(str::to_string),
        ));
        for d in custom.list_entries("Dimensions", true)?.unwrap_or_default() {
            tt.dimensions.push((
                d.required("Name")?.to_string(),
                d.required("Value")?.to_string(),
            ));
        }
    }
    if tt.predefined.is_some() == tt.customized.is_some() {
        return Err(AwsError::validation(
            "Specify exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification",
        ));
    }
    tracked_metric(&tt).map_err(AwsError::validation)?;
    if tt.predefined.as_deref() == Some("ALBRequestCountPerTarget") {
        let label = tt.resource_label.clone().ok_or_else(|| {
            AwsError::validation("ResourceLabel is required for ALBRequestCountPerTarget")
        })?;
        check_label(call, &label, group_tgs)?;
    }
    Ok(tt)
}

/// `app/LB/ID/targetgroup/TG/ID`: a load balancer forwarding to a target group of the group.
fn check_label(call: &Call<'_>, label: &str, group_tgs: &[String]) -> AwsResult<()> {
    let parts: Vec<&str> = label.split('/').collect();
    let bad = || {
        AwsError::validation(format!(
            "Invalid ResourceLabel '{label}': expected app/<load-balancer-name>/<id>/targetgroup/<target-group-name>/<id> of a load balancer and a target group of this group"
        ))
    };
    let ["app", lb, lb_id, "targetgroup", tg, tg_id] = parts[..] else {
        return Err(bad());
    };
    let lb_ok = views::load_balancers(call)
        .iter()
        .any(|(l, _)| l.arn.ends_with(&format!("loadbalancer/app/{lb}/{lb_id}")));
    let tg_ok = views::target_groups(call)
        .iter()
        .any(|(t, _)| t.arn.ends_with(&format!("targetgroup/{tg}/{tg_id}")));
    if lb_ok && tg_ok && group_tgs.iter().any(|n| n == tg) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Step adjustments with AWS's rules: no overlap, no gap, one open end each way at most.
fn steps(p: &Params) -> AwsResult<Vec<Step>> {
    let mut out = Vec::new();
    for s in p.list_entries("StepAdjustments", true)?.unwrap_or_default() {
        let lo = s.float("MetricIntervalLowerBound")?;
        let hi = s.float("MetricIntervalUpperBound")?;
        let adj = s
            .int(
                "ScalingAdjustment",
                i64::from(i32::MIN),
                i64::from(i32::MAX),
            )?
            .ok_or_else(|| AwsError::missing("StepAdjustments.member.N.ScalingAdjustment"))?;
        if lo.is_none() && hi.is_none() {
            return Err(AwsError::validation(
                "A step adjustment needs a lower or an upper bound",
            ));
        }
        if let (Some(l), Some(h)) = (lo, hi) {
            if l >= h {
                return Err(AwsError::validation(
                    "A step's upper bound must be above its lower bound",
                ));
            }
        }
        out.push((lo, hi, adj));
    }
    if out.is_empty() {
        return Err(AwsError::validation(
            "StepAdjustments are required for a StepScaling policy",
        ));
    }
    out.sort_by(|a, b| a.0.unwrap_or(f64::MIN).total_cmp(&b.0.unwrap_or(f64::MIN)));
    for w in out.windows(2) {
        if w[0].1 != w[1].0 {
            return Err(AwsError::validation(
                "Step adjustments must not overlap or leave gaps between them",
            ));
        }
    }
    Ok(out)
}

pub(crate) fn put(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = existing(call)?;
    let name = p.required("PolicyName")?.to_string();
    let kind = p.get("PolicyType").unwrap_or("SimpleScaling").to_string();
    let group_tgs = api_group(call, &group)?.target_groups.clone();
    let mut policy = PolicyRes {
        name: name.clone(),
        arn: String::new(),
        policy_type: kind.clone(),
        adjustment_type: p.get("AdjustmentType").map(str::to_string),
        scaling_adjustment: None,
        cooldown: p.u32("Cooldown", 0, 86_400)?,
        min_adjustment_magnitude: p.u32("MinAdjustmentMagnitude", 1, 1000)?,
        metric_aggregation_type: None,
        steps: Vec::new(),
        estimated_instance_warmup: p.u32("EstimatedInstanceWarmup", 0, 86_400)?,
        target_tracking: None,
        enabled: p.boolean("Enabled")?.unwrap_or(true),
    };
    if let Some(t) = &policy.adjustment_type {
        let at = adjustment_type(t)?;
        if policy.min_adjustment_magnitude.is_some()
            && at != AdjustmentType::PercentChangeInCapacity
        {
            return Err(AwsError::validation(
                "MinAdjustmentMagnitude is only valid with PercentChangeInCapacity",
            ));
        }
    }
    match kind.as_str() {
        "TargetTrackingScaling" => {
            policy.target_tracking = Some(target_tracking(call, p, &group_tgs)?);
        }
        "StepScaling" => {
            policy
                .adjustment_type
                .as_ref()
                .ok_or_else(|| AwsError::missing("AdjustmentType"))?;
            let agg = p.get("MetricAggregationType").unwrap_or("Average");
            if !matches!(agg, "Average" | "Minimum" | "Maximum") {
                return Err(AwsError::validation(format!(
                    "Invalid MetricAggregationType: {agg}"
                )));
            }
            policy.metric_aggregation_type = Some(agg.to_string());
            policy.steps = steps(p)?;
        }
        "SimpleScaling" => {
            policy
                .adjustment_type
                .as_ref()
                .ok_or_else(|| AwsError::missing("AdjustmentType"))?;
            policy.scaling_adjustment = Some(
                p.int(
                    "ScalingAdjustment",
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                )?
                .ok_or_else(|| AwsError::missing("ScalingAdjustment"))?,
            );
        }
        "PredictiveScaling" => {
            return Err(AwsError::validation(
                "Predictive scaling is not supported by Flotilla",
            ))
        }
        other => {
            return Err(AwsError::validation(format!(
                "Invalid policy type: {other}"
            )))
        }
    }
    let arn = call.ids.policy_arn(&group, &name);
    let g = api_group(call, &group)?;
    policy.arn = g.policies.get(&name).map_or(arn, |old| old.arn.clone());
    g.policies.insert(name, policy.clone());
    let mut x = Xml::new();
    x.leaf("PolicyARN", &policy.arn);
    x.list("Alarms", "member", alarms(&group, &policy), |x, (n, a)| {
        x.leaf("AlarmName", n).leaf("AlarmARN", a);
    });
    Ok(x.finish())
}

/// The alarms AWS would create for a target tracking policy (named as AWS names them; here
/// the policy's controller watches the metric itself).
fn alarms(group: &str, p: &PolicyRes) -> Vec<(String, String)> {
    if p.target_tracking.is_none() {
        return Vec::new();
    }
    let id = p.arn.split(':').nth(6).unwrap_or("0");
    ["AlarmHigh", "AlarmLow"]
        .iter()
        .map(|k| {
            let name = format!("TargetTracking-{group}-{k}-{id}");
            (name.clone(), format!("arn:aws:cloudwatch:::alarm:{name}"))
        })
        .collect()
}

fn write_policy(x: &mut Xml, group: &str, p: &PolicyRes) {
    x.leaf("AutoScalingGroupName", group)
        .leaf("PolicyName", &p.name)
        .leaf("PolicyARN", &p.arn)
        .leaf("PolicyType", &p.policy_type)
        .opt("AdjustmentType", p.adjustment_type.as_ref())
        .opt(
            "MinAdjustmentMagnitude",
            p.min_adjustment_magnitude.map(|n| n.to_string()),
        )
        .opt(
            "ScalingAdjustment",
            p.scaling_adjustment.map(|n| n.to_string()),
        )
        .opt("Cooldown", p.cooldown.map(|n| n.to_string()))
        .list("StepAdjustments", "member", &p.steps, |x, (lo, hi, adj)| {
            x.opt("MetricIntervalLowerBound", lo.map(|v| format!("{v:?}")))
                .opt("MetricIntervalUpperBound", hi.map(|v| format!("{v:?}")))
                .leaf("ScalingAdjustment", adj.to_string());
        })
        .opt("MetricAggregationType", p.metric_aggregation_type.as_ref())
        .opt(
            "EstimatedInstanceWarmup",
            p.estimated_instance_warmup.map(|n| n.to_string()),
        )
        .list("Alarms", "member", alarms(group, p), |x, (n, a)| {
            x.leaf("AlarmName", n).leaf("AlarmARN", a);
        });
    if let Some(t) = &p.target_tracking {
        x.node("TargetTrackingConfiguration", |x| {
            if let Some(kind) = &t.predefined {
                x.node("PredefinedMetricSpecification", |x| {
                    x.leaf("PredefinedMetricType", kind)
                        .opt("ResourceLabel", t.resource_label.as_ref());
                });
            }
            if let Some((name, ns, stat, unit)) = &t.customized {
                x.node("CustomizedMetricSpecification", |x| {
                    x.leaf("MetricName", name)
                        .leaf("Namespace", ns)
                        .list("Dimensions", "member", &t.dimensions, |x, (n, v)| {
                            x.leaf("Name", n).leaf("Value", v);
                        })
                        .leaf("Statistic", stat)
                        .opt("Unit", unit.as_ref());
                });
            }
            x.leaf("TargetValue", format!("{:?}", t.target_value))
                .boolean("DisableScaleIn", t.disable_scale_in);
        });
    }
    x.boolean("Enabled", p.enabled);
}

pub(crate) fn describe(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let group = p.get("AutoScalingGroupName");
    if let Some(g) = group {
        if views::group(call, g).is_none() {
            return Err(super::no_group(g));
        }
    }
    let names = p.strings("PolicyNames", true)?.unwrap_or_default();
    let types = p.strings("PolicyTypes", true)?.unwrap_or_default();
    let all: Vec<(String, PolicyRes)> = call
        .reg
        .groups
        .values()
        .filter(|g| group.is_none_or(|n| n == g.name))
        .flat_map(|g| g.policies.values().map(|p| (g.name.clone(), p.clone())))
        .filter(|(_, p)| names.is_empty() || names.contains(&p.name) || names.contains(&p.arn))
        .filter(|(_, p)| types.is_empty() || types.contains(&p.policy_type))
        .collect();
    let (page, next) = super::page(call, all, 100)?;
    let mut x = Xml::new();
    x.list("ScalingPolicies", "member", &page, |x, (g, p)| {
        write_policy(x, g, p)
    });
    x.opt("NextToken", next);
    Ok(x.finish())
}

/// The policy `PolicyName` (a name or an ARN) of the group.
fn find(call: &Call<'_>, group: &str) -> AwsResult<PolicyRes> {
    let name = call.p.required("PolicyName")?;
    call.reg
        .groups
        .get(group)
        .and_then(|g| {
            g.policies
                .values()
                .find(|p| p.name == name || p.arn == name)
        })
        .cloned()
        .ok_or_else(|| {
            AwsError::validation(format!(
                "No scaling policy found for group {group} with name {name}"
            ))
        })
}

pub(crate) fn delete(call: &mut Call<'_>) -> AwsResult<()> {
    let group = existing(call)?;
    let policy = find(call, &group)?;
    api_group(call, &group)?.policies.remove(&policy.name);
    Ok(())
}

pub(crate) fn execute(call: &mut Call<'_>) -> AwsResult<()> {
    let p = call.p;
    let group = existing(call)?;
    let policy = find(call, &group)?;
    let live = call
        .backend
        .group(&group)
        .ok_or_else(|| super::no_group(&group))?;
    let kind = adjustment_type(
        policy
            .adjustment_type
            .as_deref()
            .unwrap_or("ChangeInCapacity"),
    )?;
    let adjustment = match policy.policy_type.as_str() {
        "SimpleScaling" => policy.scaling_adjustment.unwrap_or(0),
        "StepScaling" => {
            let value = p
                .float("MetricValue")?
                .ok_or_else(|| AwsError::missing("MetricValue"))?;
            let threshold = p
                .float("BreachThreshold")?
                .ok_or_else(|| AwsError::missing("BreachThreshold"))?;
            let diff = value - threshold;
            let step = policy.steps.iter().find(|(lo, hi, _)| {
                if diff >= 0.0 {
                    lo.is_none_or(|l| diff >= l) && hi.is_none_or(|h| diff < h)
                } else {
                    lo.is_none_or(|l| diff > l) && hi.is_none_or(|h| diff <= h)
                }
            });
            step.map(|s| s.2).ok_or_else(|| {
                AwsError::validation(format!("No step adjustment covers the breach {diff}"))
            })?
        }
        _ => {
            return Err(AwsError::validation(
                "ExecutePolicy is only supported for step and simple scaling policies",
            ))
        }
    };
    let wanted = apply_adjustment(
        live.desired,
        kind,
        adjustment,
        policy.min_adjustment_magnitude,
    );
    let desired = wanted.clamp(live.min, live.max);
    call.backend
        .set_desired_capacity(&group, desired)
        .map_err(AwsError::validation)
}
