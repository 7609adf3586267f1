//! Targets of target groups: `RegisterTargets`/`DeregisterTargets` (instances by their
//! address, IPs with a port) and `DescribeTargetHealth` with AWS's states and reason codes.

use crate::call::Call;
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};

use super::target_groups::{api_tg, by_arn};

fn invalid_target(ids: &[String], why: &str) -> AwsError {
    AwsError::new(
        "InvalidTarget",
        format!("The following targets are {why}: '{}'", ids.join("', '")),
    )
}

/// (id, port) of `Targets.member.N`.
fn targets(p: &Params) -> AwsResult<Vec<(String, Option<u16>)>> {
    p.list_entries("Targets", true)?
        .unwrap_or_default()
        .iter()
        .map(|t| {
            Ok((
                t.required("Id")?.to_string(),
                t.u32("Port", 1, 65535)?.map(|n| n as u16),
            ))
        })
        .collect()
}

pub(crate) fn register(call: &mut Call<'_>, add: bool) -> AwsResult<String> {
    let p = call.p;
    let arn = p.required("TargetGroupArn")?.to_string();
    let wanted = targets(p)?;
    if wanted.is_empty() {
        return Err(AwsError::missing("Targets"));
    }
    let instances = call.backend.instances();
    let tg = api_tg(call, &arn)?;
    let mut bad = Vec::new();
    for (id, port) in wanted {
        let addr = if tg.target_type == "ip" {
            id.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| std::net::SocketAddr::new(ip, port.unwrap_or(tg.port)).to_string())
        } else {
            instances.iter().find(|i| i.id == id).and_then(|i| {
                let a: std::net::SocketAddr = i.address.as_ref()?.parse().ok()?;
                Some(std::net::SocketAddr::new(a.ip(), port.unwrap_or(a.port())).to_string())
            })
        };
        let known = tg
            .targets
            .iter()
            .position(|(i, a)| i == &id && addr.as_ref().is_none_or(|x| x == a));
        match (add, addr, known) {
            (true, Some(a), None) => tg.targets.push((id, a)),
            (true, Some(_), Some(_)) => {}
            (false, _, Some(i)) => {
                tg.targets.remove(i);
            }
            (true, None, _) | (false, _, None) => bad.push(id),
        }
    }
    if !bad.is_empty() {
        return Err(invalid_target(
            &bad,
            if add { "not valid" } else { "not registered" },
        ));
    }
    Ok(String::new())
}

pub(crate) fn describe_health(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let (tg, _) = by_arn(call, p.required("TargetGroupArn")?)?;
    let filter = targets(p)?;
    let live = call.backend.target_health(&tg.name).unwrap_or_default();
    let instances = call.backend.instances();
    let mut rows: Vec<HealthRow> = Vec::new();
    let port_of = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    for t in &live {
        let id = match (&t.instance_id, tg.target_type.as_str()) {
            (Some(i), "instance") => i.clone(),
            _ => t
                .address
                .rsplit_once(':')
                .map_or(t.address.clone(), |(ip, _)| ip.to_string()),
        };
        let zone = t.zone.as_deref().map(|z| call.zones.api(z).to_string());
        rows.push((
            id,
            port_of(&t.address),
            zone,
            t.state.clone(),
            t.reason.clone(),
        ));
    }
    if !filter.is_empty() {
        let mut picked = Vec::new();
        let mut unknown = Vec::new();
        for (id, port) in &filter {
            let found: Vec<_> = rows
                .iter()
                .filter(|r| &r.0 == id && port.is_none_or(|p| p == r.1))
                .cloned()
                .collect();
            if !found.is_empty() {
                picked.extend(found);
            } else if instances.iter().any(|i| &i.id == id) || tg.target_type == "ip" {
                picked.push((
                    id.clone(),
                    port.unwrap_or(tg.port),
                    None,
                    "unused".into(),
                    Some("Target.NotRegistered".into()),
                ));
            } else {
                unknown.push(id.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(invalid_target(&unknown, "not valid"));
        }
        rows = picked;
    }
    let mut x = Xml::new();
    x.list(
        "TargetHealthDescriptions",
        "member",
        &rows,
        |x, (id, port, zone, state, reason)| {
            x.node("Target", |x| {
                x.leaf("Id", id)
                    .leaf("Port", port.to_string())
                    .opt("AvailabilityZone", zone.as_ref());
            })
            .leaf("HealthCheckPort", port.to_string())
            .node("TargetHealth", |x| {
                x.leaf("State", state);
                let code = reason
                    .as_ref()
                    .filter(|r| r.contains('.') && !r.contains(' '));
                x.opt("Reason", code);
                if let Some(r) = reason {
                    x.leaf("Description", describe_reason(r));
                }
            });
        },
    );
    Ok(x.finish())
}

/// One row of `DescribeTargetHealth`: (id, port, zone, state, reason).
type HealthRow = (String, u16, Option<String>, String, Option<String>);

fn describe_reason(reason: &str) -> String {
    match reason {
        "Elb.RegistrationInProgress" => "Target registration is in progress".into(),
        "Elb.InitialHealthChecking" => "Initial health checks in progress".into(),
        "Target.DeregistrationInProgress" => "Target deregistration is in progress".into(),
        "Target.NotRegistered" => "Target is not registered to the target group".into(),
        "Target.Timeout" => "Request timed out".into(),
        "Target.FailedHealthChecks" => "Health checks failed".into(),
        other => other.to_string(),
    }
}
