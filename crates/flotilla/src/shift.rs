//! `flotilla shift-weights`: show, shift or reset the weights of a forward action.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::out::outln;
use anyhow::bail;
use flotilla_admin::api::{RuleWeights, WeightsRequest};
use flotilla_admin::AdminClient;

/// What the command was asked.
pub(crate) struct ShiftArgs {
    pub(crate) load_balancer: String,
    pub(crate) rule: String,
    pub(crate) listener: Option<String>,
    pub(crate) reset: bool,
    pub(crate) json: bool,
    pub(crate) weights: Vec<String>,
}

/// `GROUP=WEIGHT` pairs into the request's map.
fn parse_weights(pairs: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let Some((name, weight)) = pair.split_once('=') else {
            bail!("`{pair}` is not GROUP=WEIGHT, e.g. canary=10");
        };
        let Ok(weight) = weight.trim().parse::<u32>() else {
            bail!("weight `{weight}` of `{name}` is not a whole number 0-999");
        };
        if out.insert(name.trim().to_string(), weight).is_some() {
            bail!("target group `{name}` is named twice");
        }
    }
    Ok(out)
}

/// Runs the command against the admin API.
pub(crate) async fn shift_weights(client: AdminClient, a: ShiftArgs) -> anyhow::Result<ExitCode> {
    let mut path = format!(
        "/v1/load-balancers/{}/rules/{}/weights",
        a.load_balancer, a.rule
    );
    if let Some(l) = &a.listener {
        path.push_str(&format!("?listener={l}"));
    }
    let result: Result<RuleWeights, _> = if a.reset {
        client.delete(&path).await
    } else if a.weights.is_empty() {
        client.get(&path).await
    } else {
        let request = WeightsRequest {
            weights: parse_weights(&a.weights)?,
        };
        client.put(&path, &request).await
    };
    let w = match result {
        Ok(w) => w,
        Err(e) => return crate::commands::refused(e),
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&w)?);
        return Ok(ExitCode::SUCCESS);
    }
    let split = |m: &BTreeMap<String, u32>| {
        m.iter()
            .map(|(n, w)| format!("{n}={w}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    outln!(
        "{} listener {} rule {}: {} (source: {}; config: {})",
        w.load_balancer,
        w.listener,
        w.rule,
        split(&w.weights),
        w.source,
        split(&w.configured)
    );
    if let Some(r) = &w.rollback {
        outln!(
            "  rollback of {}: {} (alarm {}: {})",
            r.target_group,
            r.state,
            r.alarm_state,
            r.alarm
        );
        if let Some(cause) = &r.cause {
            outln!("  {cause}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_group_equals_number() {
        let m = parse_weights(&["web=50".into(), "canary=50".into()]).unwrap();
        assert_eq!(m.get("canary"), Some(&50));
        assert!(parse_weights(&["web".into()]).is_err());
        assert!(parse_weights(&["web=x".into()]).is_err());
        assert!(parse_weights(&["web=1".into(), "web=2".into()]).is_err());
    }
}
