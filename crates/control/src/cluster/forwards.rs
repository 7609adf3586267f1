//! Weighted forward actions changed live: operator weight shifts and automatic canary
//! rollbacks. An override replaces one forward action's weights; it remembers the weights the
//! file had when it was made, so a file that changes that rule's weights drops it — the
//! edited file wins.

use std::collections::{BTreeMap, VecDeque};

use crate::canary::{CanaryRollback, Rollback, RollbackSpec};
use crate::metrics::{Metric, MetricsStore, Scope, Statistic};
use crate::time::Time;

use super::effect::{Durable, Effect};
use super::spec::{ForwardSpec, RuleKey, WeightedTargetGroup};

/// Who set an override.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WeightSource {
    /// An operator (`PUT …/weights`).
    Operator,
    /// A canary rollback, with its cause.
    Rollback(String),
}

/// Weights in force instead of the file's for one forward action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WeightOverride {
    /// The weights in force.
    pub weights: Vec<WeightedTargetGroup>,
    /// The file's weights when the override was made; a file with others drops it.
    pub base: Vec<WeightedTargetGroup>,
    /// Who set it.
    pub source: WeightSource,
}

/// Why an operator's weights were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    /// No such forward action.
    #[error("{0}")]
    NotFound(String),
    /// The weights (or the listener selector) do not fit the action.
    #[error("{0}")]
    Invalid(String),
}

/// One forward action as the API shows it.
#[derive(Clone, Debug)]
pub struct ForwardStatus<'a> {
    /// The action.
    pub rule: &'a RuleKey,
    /// The file's weights.
    pub configured: &'a [WeightedTargetGroup],
    /// The override in force, if any.
    pub weights: Option<&'a WeightOverride>,
    /// The canary rollback, if the action has one.
    pub rollback: Option<&'a CanaryRollback>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Forward {
    configured: Vec<WeightedTargetGroup>,
    rollback: Option<CanaryRollback>,
}

/// Every forward action, its override and its rollback.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Forwards {
    forwards: BTreeMap<RuleKey, Forward>,
    /// Overrides by rule; kept for a rule that went away, so a listener that comes back on
    /// the same address with the same weights gets its override again.
    overrides: BTreeMap<RuleKey, WeightOverride>,
}

fn weight_of(groups: &[WeightedTargetGroup], tg: &str) -> u32 {
    groups.iter().find(|g| g.name == tg).map_or(0, |g| g.weight)
}

impl Forwards {
    /// The weights in force for `rule`.
    fn effective(&self, rule: &RuleKey) -> Option<&[WeightedTargetGroup]> {
        let f = self.forwards.get(rule)?;
        Some(
            self.overrides
                .get(rule)
                .map_or(&f.configured, |o| &o.weights),
        )
    }

    /// Takes the file's forward actions: drops overrides the file no longer agrees with,
    /// (re)builds rollbacks, publishes every action's weights in force.
    pub(crate) fn configure(
        &mut self,
        now: Time,
        specs: &[ForwardSpec],
        effects: &mut VecDeque<Effect>,
    ) {
        let mut next = BTreeMap::new();
        for s in specs {
            let old = self.forwards.remove(&s.rule);
            let rollback = s
                .rollback
                .clone()
                .map(|spec| match old.and_then(|f| f.rollback) {
                    Some(r) if *r.spec() == spec => r,
                    _ => CanaryRollback::new(spec),
                });
            next.insert(
                s.rule.clone(),
                Forward {
                    configured: s.target_groups.clone(),
                    rollback,
                },
            );
        }
        self.forwards = next;
        let stale: Vec<RuleKey> = self
            .overrides
            .iter()
            .filter(|(k, o)| {
                self.forwards
                    .get(*k)
                    .is_some_and(|f| f.configured != o.base)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for rule in stale {
            tracing::info!(
                load_balancer = rule.load_balancer.as_str(),
                listener = %rule.listener,
                rule = rule.rule().as_str(),
                "weight override dropped: the config changed this rule's weights"
            );
            self.overrides.remove(&rule);
            effects.push_back(Effect::Persist(Durable::WeightOverride {
                rule,
                weights: None,
            }));
        }
        let rules: Vec<RuleKey> = self.forwards.keys().cloned().collect();
        for rule in rules {
            self.publish(now, &rule, effects);
        }
    }

    /// Takes the overrides a restart found stored (checked against the file: one whose base
    /// differs is dropped), then publishes.
    pub(crate) fn restore(
        &mut self,
        now: Time,
        overrides: Vec<(RuleKey, WeightOverride)>,
        effects: &mut VecDeque<Effect>,
    ) {
        for (rule, o) in overrides {
            match self.forwards.get(&rule) {
                Some(f) if f.configured == o.base && f.configured.len() == o.weights.len() => {
                    self.overrides.insert(rule.clone(), o);
                    self.publish(now, &rule, effects);
                }
                Some(_) => {
                    tracing::info!(
                        load_balancer = rule.load_balancer.as_str(),
                        rule = rule.rule().as_str(),
                        "stored weight override dropped: the config changed this rule's weights"
                    );
                    effects.push_back(Effect::Persist(Durable::WeightOverride {
                        rule,
                        weights: None,
                    }));
                }
                None => {
                    self.overrides.insert(rule, o);
                }
            }
        }
    }

    /// Tells the data plane `rule`'s weights in force and re-arms or idles its rollback.
    fn publish(&mut self, now: Time, rule: &RuleKey, effects: &mut VecDeque<Effect>) {
        let Some(weights) = self.effective(rule).map(<[_]>::to_vec) else {
            return;
        };
        if let Some(r) = self
            .forwards
            .get_mut(rule)
            .and_then(|f| f.rollback.as_mut())
        {
            let w = weight_of(&weights, &r.spec().target_group);
            r.set_canary_weight(w, now);
        }
        effects.push_back(Effect::PublishWeights {
            rule: rule.clone(),
            weights,
        });
    }

    /// Tells the data plane every rule's weights in force again, changing nothing (a new
    /// process's data plane after a hot upgrade).
    pub(crate) fn republish(&self, effects: &mut VecDeque<Effect>) {
        for rule in self.forwards.keys() {
            if let Some(weights) = self.effective(rule) {
                effects.push_back(Effect::PublishWeights {
                    rule: rule.clone(),
                    weights: weights.to_vec(),
                });
            }
        }
    }

    /// Sets (`Some`) or resets (`None`) `rule`'s override and publishes it.
    pub(crate) fn set(
        &mut self,
        now: Time,
        rule: &RuleKey,
        o: Option<WeightOverride>,
        effects: &mut VecDeque<Effect>,
    ) {
        match &o {
            Some(o) => self.overrides.insert(rule.clone(), o.clone()),
            None => self.overrides.remove(rule),
        };
        effects.push_back(Effect::Persist(Durable::WeightOverride {
            rule: rule.clone(),
            weights: o,
        }));
        self.publish(now, rule, effects);
    }

    /// The forward action an operator names: `lb`'s rule `rule` (`default` or a priority), on
    /// the listener `listener` names (a port or bind address; needed only when several
    /// listeners have the rule).
    pub(crate) fn resolve(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<&RuleKey, WeightsError> {
        let priority = parse_rule(rule)?;
        let of_lb: Vec<&RuleKey> = self
            .forwards
            .keys()
            .filter(|k| k.load_balancer == lb)
            .collect();
        if of_lb.is_empty() {
            return Err(WeightsError::NotFound(format!(
                "no load balancer named `{lb}` (or it has no forward action)"
            )));
        }
        let named: Vec<&RuleKey> = match listener {
            None => of_lb,
            Some(sel) => {
                let hits: Vec<&RuleKey> = of_lb
                    .into_iter()
                    .filter(|k| {
                        k.listener.to_string() == sel || k.listener.port().to_string() == sel
                    })
                    .collect();
                if hits.is_empty() {
                    return Err(WeightsError::NotFound(format!(
                        "load balancer `{lb}` has no listener `{sel}` (give its port or bind address)"
                    )));
                }
                hits
            }
        };
        let mut found = named.into_iter().filter(|k| k.priority == priority);
        let (Some(key), rest) = (found.next(), found.next()) else {
            return Err(WeightsError::NotFound(format!(
                "load balancer `{lb}` has no rule `{rule}` that forwards"
            )));
        };
        if let Some(other) = rest {
            return Err(WeightsError::Invalid(format!(
                "listeners {} and {} of `{lb}` both have rule `{rule}`; name one with listener=PORT",
                key.listener, other.listener
            )));
        }
        Ok(key)
    }

    /// Checks an operator's new split against `rule`'s groups: every named group must be in
    /// the action, weights 0–999, at least one above 0; a group left out gets 0 (AWS
    /// `ModifyRule` replaces the whole list).
    pub(crate) fn operator_override(
        &self,
        rule: &RuleKey,
        requested: &BTreeMap<String, u32>,
    ) -> Result<WeightOverride, WeightsError> {
        let configured = self
            .forwards
            .get(rule)
            .map(|f| f.configured.clone())
            .ok_or_else(|| WeightsError::NotFound(format!("no forward action {}", rule.rule())))?;
        let names: Vec<&str> = configured.iter().map(|g| g.name.as_str()).collect();
        if let Some(unknown) = requested.keys().find(|n| !names.contains(&n.as_str())) {
            return Err(WeightsError::Invalid(format!(
                "target group `{unknown}` is not in this forward action (it has {})",
                names.join(", ")
            )));
        }
        if let Some((name, w)) = requested.iter().find(|(_, w)| **w > 999) {
            return Err(WeightsError::Invalid(format!(
                "weight {w} of `{name}` is above 999"
            )));
        }
        if requested.values().all(|w| *w == 0) {
            return Err(WeightsError::Invalid(
                "at least one target group needs a weight above 0".into(),
            ));
        }
        let weights = configured
            .iter()
            .map(|g| WeightedTargetGroup {
                name: g.name.clone(),
                weight: requested.get(&g.name).copied().unwrap_or(0),
            })
            .collect();
        Ok(WeightOverride {
            weights,
            base: configured,
            source: WeightSource::Operator,
        })
    }

    /// What the API shows for `rule`.
    pub(crate) fn status(&self, rule: &RuleKey) -> Option<ForwardStatus<'_>> {
        let (rule, f) = self.forwards.get_key_value(rule)?;
        Some(ForwardStatus {
            rule,
            configured: &f.configured,
            weights: self.overrides.get(rule),
            rollback: f.rollback.as_ref(),
        })
    }

    /// When the next rollback evaluation is due.
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        self.forwards
            .values()
            .filter_map(|f| f.rollback.as_ref()?.poll_timeout())
            .min()
    }

    /// Evaluates every due rollback against the metrics; the ones that fired.
    pub(crate) fn evaluate(&mut self, now: Time, store: &MetricsStore) -> Vec<(RuleKey, Rollback)> {
        let mut fired = Vec::new();
        for (rule, f) in &mut self.forwards {
            let Some(r) = f.rollback.as_mut() else {
                continue;
            };
            if r.poll_timeout().is_none_or(|t| now < t) {
                continue;
            }
            let spec = r.spec().clone();
            if let Some(rb) = r.tick(now, |end| canary_metric(store, &spec, end)) {
                fired.push((rule.clone(), rb));
            }
        }
        fired
    }

    /// Takes out the canaries whose alarm fired (a log line says why; the API shows it).
    pub(crate) fn apply_rollbacks(
        &mut self,
        now: Time,
        fired: Vec<(RuleKey, Rollback)>,
        effects: &mut VecDeque<Effect>,
    ) {
        for (rule, rb) in fired {
            let (Some(current), Some(f)) = (self.effective(&rule), self.forwards.get(&rule)) else {
                continue;
            };
            let weights = current
                .iter()
                .map(|g| WeightedTargetGroup {
                    name: g.name.clone(),
                    weight: if g.name == rb.target_group {
                        0
                    } else {
                        g.weight
                    },
                })
                .collect();
            tracing::warn!(
                load_balancer = rule.load_balancer.as_str(),
                listener = %rule.listener,
                rule = rule.rule().as_str(),
                cause = rb.cause.as_str(),
                "canary rolled back"
            );
            let o = WeightOverride {
                weights,
                base: f.configured.clone(),
                source: WeightSource::Rollback(rb.cause),
            };
            self.set(now, &rule, Some(o), effects);
        }
    }
}

/// `default` or a priority 1–50000, as the API names a rule.
pub(crate) fn parse_rule(rule: &str) -> Result<Option<u32>, WeightsError> {
    if rule == "default" {
        return Ok(None);
    }
    rule.parse::<u32>()
        .ok()
        .filter(|p| (1..=50_000).contains(p))
        .map(Some)
        .ok_or_else(|| {
            WeightsError::Invalid(format!(
                "rule `{rule}` is neither `default` nor a priority 1-50000"
            ))
        })
}

/// The period's value of a rollback alarm's metric at the canary target group's scope.
/// `http_target_5xx_rate` is the percent of the period's requests answered 5xx by the targets
/// (two sums, so the ratio is over the whole period, not an average of per-second ratios).
fn canary_metric(store: &MetricsStore, spec: &RollbackSpec, end: Time) -> Option<f64> {
    let scope = Scope::TargetGroup(spec.target_group.clone());
    let period = spec.alarm.period.as_secs().max(1);
    if spec.alarm.metric == Metric::HttpTarget5xxRate {
        let sum = |m: Metric| store.aggregate(m, &scope, period, Statistic::Sum, end);
        let requests = sum(Metric::RequestCount).filter(|n| *n > 0.0)?;
        return Some(100.0 * sum(Metric::HttpTarget5xxCount).unwrap_or(0.0) / requests);
    }
    store.aggregate(spec.alarm.metric, &scope, period, spec.alarm.statistic, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str, weight: u32) -> WeightedTargetGroup {
        WeightedTargetGroup {
            name: name.into(),
            weight,
        }
    }

    fn spec(web: u32, canary: u32) -> ForwardSpec {
        ForwardSpec {
            rule: RuleKey {
                load_balancer: "front".into(),
                listener: "127.0.0.1:8080".parse().unwrap(),
                priority: None,
            },
            target_groups: vec![g("web", web), g("canary", canary)],
            rollback: None,
        }
    }

    #[test]
    fn a_split_names_only_the_actions_groups_and_sends_traffic_somewhere() {
        let mut f = Forwards::default();
        let mut fx = VecDeque::new();
        f.configure(Time::ZERO, &[spec(90, 10)], &mut fx);
        let rule = f.resolve("front", "default", None).unwrap().clone();
        let req = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()
        };
        assert_eq!(
            f.operator_override(&rule, &req(&[("canary", 100)]))
                .unwrap()
                .weights,
            [g("web", 0), g("canary", 100)]
        );
        assert!(f.operator_override(&rule, &req(&[("blue", 1)])).is_err());
        assert!(f
            .operator_override(&rule, &req(&[("web", 0), ("canary", 0)]))
            .is_err());
        assert!(f.operator_override(&rule, &req(&[("web", 1000)])).is_err());
        assert_eq!(parse_rule("10").unwrap(), Some(10));
        assert!(parse_rule("0").is_err() && parse_rule("x").is_err());
        assert!(f.resolve("front", "7", None).is_err());
        assert!(f.resolve("front", "default", Some("9999")).is_err());
        assert!(f.resolve("back", "default", None).is_err());
    }

    #[test]
    fn an_override_the_file_no_longer_agrees_with_is_dropped_once_and_not_brought_back() {
        let mut f = Forwards::default();
        let mut fx = VecDeque::new();
        f.configure(Time::ZERO, &[spec(90, 10)], &mut fx);
        let rule = spec(90, 10).rule;
        let o = WeightOverride {
            weights: vec![g("web", 0), g("canary", 100)],
            base: vec![g("web", 90), g("canary", 10)],
            source: WeightSource::Operator,
        };
        f.set(Time::ZERO, &rule, Some(o), &mut fx);
        assert_eq!(f.effective(&rule).unwrap()[1].weight, 100);
        fx.clear();
        // The file's weights for the rule changed: the override goes, and its row with it.
        f.configure(Time::ZERO, &[spec(80, 20)], &mut fx);
        assert_eq!(f.effective(&rule).unwrap()[1].weight, 20);
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::Persist(Durable::WeightOverride { weights: None, .. })
        )));
        // Back to the old weights: the dropped override does not return.
        f.configure(Time::ZERO, &[spec(90, 10)], &mut fx);
        assert_eq!(f.effective(&rule).unwrap()[1].weight, 10);
    }
}
