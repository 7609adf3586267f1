//! The state store's rows from and into the control plane's types.

use flotilla_control::metrics::Metric;
use flotilla_control::policy::predictive::LoadHour;
use flotilla_control::pricing::PurchaseOption;
use flotilla_control::{
    InstanceRecord as ControlRecord, LifecycleState, RuleKey, WeightOverride, WeightSource,
    WeightedTargetGroup,
};
use flotilla_state::{InstanceRecord, LoadHourRecord, WeightOverrideRecord};

/// The stored row of a running instance.
pub(super) fn instance(r: ControlRecord, pid: u32, start_time: u64) -> InstanceRecord {
    InstanceRecord {
        id: r.id.to_string(),
        group: r.group,
        zone: r.zone,
        pid,
        start_time,
        address: r.address.to_string(),
        launch_template_version: r.launch_template_version,
        launched_at_ms: super::now_ms(),
        protected_from_scale_in: r.protected_from_scale_in,
        lifecycle: r.lifecycle.as_str().to_string(),
        purchase_option: r.purchase_option.as_str().to_string(),
    }
}

/// Stored load hours as the cluster restores them; a metric this version does not know is
/// skipped.
pub(super) fn load_hours(stored: Vec<LoadHourRecord>) -> Vec<(Metric, LoadHour)> {
    stored
        .into_iter()
        .filter_map(|r| {
            let metric = r.metric.parse::<Metric>().ok()?;
            let hour = LoadHour {
                hour: r.hour,
                mean: r.mean,
                samples: r.samples,
            };
            Some((metric, hour))
        })
        .collect()
}

/// How a stored record says its instance was bought; anything unknown is On-Demand.
pub(super) fn purchase_option(stored: &str) -> PurchaseOption {
    PurchaseOption::parse(stored).unwrap_or_default()
}

/// The state a stored record says to adopt its instance into; anything unknown is in
/// service.
pub(super) fn adopted_state(stored: &str) -> LifecycleState {
    [LifecycleState::WarmedRunning, LifecycleState::PendingWait]
        .into_iter()
        .find(|s| s.as_str() == stored)
        .unwrap_or(LifecycleState::InService)
}

fn encode(groups: &[WeightedTargetGroup]) -> String {
    groups
        .iter()
        .map(|g| format!("{}={}", g.name, g.weight))
        .collect::<Vec<_>>()
        .join(",")
}

fn decode(text: &str) -> Option<Vec<WeightedTargetGroup>> {
    text.split(',')
        .map(|pair| {
            let (name, weight) = pair.split_once('=')?;
            Some(WeightedTargetGroup {
                name: name.to_string(),
                weight: weight.parse().ok()?,
            })
        })
        .collect()
}

/// The stored row of a forward action's override.
pub(super) fn weight_override(rule: &RuleKey, o: &WeightOverride) -> WeightOverrideRecord {
    let (source, cause) = match &o.source {
        WeightSource::Operator => ("operator", String::new()),
        WeightSource::Rollback(cause) => ("rollback", cause.clone()),
    };
    WeightOverrideRecord {
        load_balancer: rule.load_balancer.clone(),
        listener: rule.listener.to_string(),
        rule: rule.rule(),
        weights: encode(&o.weights),
        base: encode(&o.base),
        source: source.to_string(),
        cause,
    }
}

/// An override read back; `None` (logged) when the row is unreadable.
pub(super) fn from_weight_override(r: &WeightOverrideRecord) -> Option<(RuleKey, WeightOverride)> {
    let parsed = (|| {
        let priority = match r.rule.as_str() {
            "default" => None,
            p => Some(p.parse().ok()?),
        };
        let rule = RuleKey {
            load_balancer: r.load_balancer.clone(),
            listener: r.listener.parse().ok()?,
            priority,
        };
        let source = match r.source.as_str() {
            "rollback" => WeightSource::Rollback(r.cause.clone()),
            _ => WeightSource::Operator,
        };
        let (weights, base) = (decode(&r.weights)?, decode(&r.base)?);
        (weights.len() == base.len()).then_some(())?;
        Some((
            rule,
            WeightOverride {
                weights,
                base,
                source,
            },
        ))
    })();
    if parsed.is_none() {
        tracing::warn!(
            load_balancer = r.load_balancer.as_str(),
            "ignoring an unreadable stored weight override"
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_override_round_trips_and_a_bad_row_is_refused() {
        let rule = RuleKey {
            load_balancer: "front".into(),
            listener: "127.0.0.1:8080".parse().unwrap(),
            priority: Some(10),
        };
        let g = |name: &str, weight| WeightedTargetGroup {
            name: name.into(),
            weight,
        };
        let o = WeightOverride {
            weights: vec![g("web", 0), g("canary", 100)],
            base: vec![g("web", 90), g("canary", 10)],
            source: WeightSource::Rollback("5xx rate 40 >= 20".into()),
        };
        let row = weight_override(&rule, &o);
        assert_eq!(from_weight_override(&row), Some((rule, o)));
        let bad = WeightOverrideRecord {
            weights: "web=x".into(),
            ..row
        };
        assert_eq!(from_weight_override(&bad), None);
    }
}
