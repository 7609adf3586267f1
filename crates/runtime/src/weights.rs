//! Weighted forward actions changed live: operator weight shifts (`flotilla shift-weights`,
//! `PUT /v1/load-balancers/{lb}/rules/{rule}/weights`) and automatic canary rollbacks.
//!
//! An override replaces one forward action's weights when its listener's routing table is
//! compiled, so a shift is one new immutable table swapped in (arc-swap); requests never see a
//! lock. It remembers the weights the file had when it was made: a reload (or a restart) whose
//! file changes that rule's weights drops it — the edited file wins — as does `DELETE`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use flotilla_admin::api::{RollbackInfo, RuleWeights};
use flotilla_admin::AdminError;
use flotilla_config::{Action, CanaryRollback as CfgRollback, Listener, WeightedTargetGroup};
use flotilla_control::{CanaryRollback, RollbackSpec, RollbackState, Time};
use flotilla_metrics::{MetricsStore, Statistic};
use flotilla_state::WeightOverrideRecord;

/// One forward action: which load balancer, listener (bind address) and rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RuleKey {
    pub(crate) lb: String,
    pub(crate) listener: SocketAddr,
    /// `None` = the listener's default action, else the rule's priority.
    pub(crate) priority: Option<u32>,
}

impl RuleKey {
    /// `default` or the priority, as the API spells it.
    pub(crate) fn rule(&self) -> String {
        self.priority
            .map_or_else(|| "default".to_string(), |p| p.to_string())
    }
}

/// Who set an override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Operator,
    /// A canary rollback, with its cause.
    Rollback(String),
}

/// Weights in force instead of the file's for one forward action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) weights: Vec<WeightedTargetGroup>,
    /// The file's weights when the override was made; a file with others drops it.
    pub(crate) base: Vec<WeightedTargetGroup>,
    pub(crate) source: Source,
}

/// Every override and canary rollback, kept by the listener set beside the routing tables.
#[derive(Debug, Default)]
pub(crate) struct Weights {
    overrides: BTreeMap<RuleKey, Override>,
    rollbacks: BTreeMap<RuleKey, CanaryRollback>,
    /// Overrides dropped while compiling whose stored rows are still to be deleted (compiling
    /// happens where the state store is out of reach; see `take_dropped`).
    dropped: Vec<RuleKey>,
}

/// The action of rule `priority` (`None`: the default action) of `listener`.
pub(crate) fn action_of(listener: &Listener, priority: Option<u32>) -> Option<&Action> {
    match priority {
        None => Some(&listener.default_action),
        Some(p) => Some(&listener.rules.iter().find(|r| r.priority == p)?.action),
    }
}

/// The forward action of `key`'s rule in `listener`: its groups and rollback.
pub(crate) fn forward_of(
    listener: &Listener,
    priority: Option<u32>,
) -> Option<(&[WeightedTargetGroup], Option<&CfgRollback>)> {
    match action_of(listener, priority)? {
        Action::Forward {
            target_groups,
            rollback,
        } => Some((target_groups, rollback.as_ref())),
        _ => None,
    }
}

/// The weight `groups` give target group `tg` (0 when it is not among them).
fn weight_of(groups: &[WeightedTargetGroup], tg: &str) -> u32 {
    groups.iter().find(|g| g.name == tg).map_or(0, |g| g.weight)
}

/// Every forward action of a listener, by priority (`None` = default).
fn forwards(listener: &Listener) -> impl Iterator<Item = Option<u32>> + '_ {
    std::iter::once(None).chain(listener.rules.iter().map(|r| Some(r.priority)))
}

fn as_map(groups: &[WeightedTargetGroup]) -> BTreeMap<String, u32> {
    groups.iter().map(|g| (g.name.clone(), g.weight)).collect()
}

impl Weights {
    /// The overrides restored from the state store (checked against the file when the
    /// listener's table is compiled).
    pub(crate) fn restore(&mut self, overrides: impl IntoIterator<Item = (RuleKey, Override)>) {
        self.overrides.extend(overrides);
    }

    /// The overrides dropped since the last call, so the caller can delete their stored rows
    /// (otherwise a file that later returns to the old weights would bring them back).
    pub(crate) fn take_dropped(&mut self) -> Vec<RuleKey> {
        std::mem::take(&mut self.dropped)
    }

    /// `listener` with the overrides of `lb`'s rules applied, for compiling its routing table.
    /// Overrides whose rule is gone or whose file weights changed are dropped and returned.
    pub(crate) fn effective(
        &mut self,
        lb: &str,
        listener: &Listener,
    ) -> (Listener, Vec<(RuleKey, &'static str)>) {
        let mut out = listener.clone();
        let mut dropped = Vec::new();
        let keys: Vec<RuleKey> = self
            .overrides
            .keys()
            .filter(|k| k.lb == lb && k.listener == listener.bind)
            .cloned()
            .collect();
        for key in keys {
            let base = forward_of(listener, key.priority).map(|(g, _)| g.to_vec());
            let Some(o) = self.overrides.get(&key) else {
                continue;
            };
            let Some(base) = base.filter(|b| *b == o.base) else {
                self.overrides.remove(&key);
                self.dropped.push(key.clone());
                dropped.push((key, "the config changed this rule's weights"));
                continue;
            };
            let weights = o.weights.clone();
            let action = match key.priority {
                None => &mut out.default_action,
                Some(p) => match out.rules.iter_mut().find(|r| r.priority == p) {
                    Some(r) => &mut r.action,
                    None => continue,
                },
            };
            if let Action::Forward { target_groups, .. } = action {
                debug_assert_eq!(base.len(), weights.len());
                *target_groups = weights;
            }
        }
        (out, dropped)
    }

    /// Sets `key`'s weights in force (`None` = the file's again) and re-arms or idles its
    /// rollback accordingly.
    pub(crate) fn set(&mut self, key: &RuleKey, o: Option<Override>, now: Time) {
        if let (Some(r), Some(o)) = (self.rollbacks.get_mut(key), &o) {
            let w = weight_of(&o.weights, &r.spec().target_group);
            r.set_canary_weight(w, now);
        }
        match o {
            Some(o) => self.overrides.insert(key.clone(), o),
            None => self.overrides.remove(key),
        };
    }

    /// What the API shows for `key`, whose configured action is `configured`.
    pub(crate) fn info(
        &self,
        key: &RuleKey,
        configured: &[WeightedTargetGroup],
        clock: &crate::clock::Clock,
    ) -> RuleWeights {
        let o = self.overrides.get(key);
        RuleWeights {
            load_balancer: key.lb.clone(),
            listener: key.listener.to_string(),
            rule: key.rule(),
            weights: as_map(o.map_or(configured, |o| &o.weights)),
            configured: as_map(configured),
            source: match o.map(|o| &o.source) {
                None => "config",
                Some(Source::Operator) => "operator",
                Some(Source::Rollback(_)) => "rollback",
            }
            .to_string(),
            cause: o.map(|o| match &o.source {
                Source::Operator => "shifted by an operator".to_string(),
                Source::Rollback(cause) => cause.clone(),
            }),
            rollback: self.rollbacks.get(key).map(|r| {
                let (alarm_state, alarm) = r.alarm();
                let (state, at, cause) = match r.state() {
                    RollbackState::Idle => ("idle", None, None),
                    RollbackState::Watching => ("watching", None, None),
                    RollbackState::RolledBack { at, cause } => {
                        ("rolled_back", Some(clock.rfc3339(*at)), Some(cause.clone()))
                    }
                };
                RollbackInfo {
                    target_group: r.spec().target_group.clone(),
                    state: state.to_string(),
                    alarm,
                    alarm_state: alarm_state.as_str().to_string(),
                    rolled_back_at: at,
                    cause,
                }
            }),
        }
    }

    /// Keeps one rollback machine per configured `rollback` of `listener` (the effective one,
    /// overrides applied), told the canary's weight in force; forgets those no longer there.
    pub(crate) fn track_rollbacks(&mut self, lb: &str, listener: &Listener, now: Time) {
        let mut wanted = Vec::new();
        for priority in forwards(listener) {
            let Some((groups, Some(cfg))) = forward_of(listener, priority) else {
                continue;
            };
            let key = RuleKey {
                lb: lb.to_string(),
                listener: listener.bind,
                priority,
            };
            let spec = RollbackSpec {
                target_group: cfg.target_group.clone(),
                alarm: crate::scaling::alarm_spec(&cfg.alarm),
            };
            let r = self
                .rollbacks
                .entry(key.clone())
                .or_insert_with(|| CanaryRollback::new(spec.clone()));
            if *r.spec() != spec {
                *r = CanaryRollback::new(spec);
            }
            r.set_canary_weight(weight_of(groups, &cfg.target_group), now);
            wanted.push(key);
        }
        self.rollbacks
            .retain(|k, _| k.lb != lb || k.listener != listener.bind || wanted.contains(k));
    }

    /// Forgets the rollbacks of listeners that are gone (their overrides stay stored: a
    /// listener that comes back on the same address with the same weights gets them again).
    pub(crate) fn retain_listeners(&mut self, live: &[SocketAddr]) {
        self.rollbacks.retain(|k, _| live.contains(&k.listener));
    }

    /// Evaluates every due rollback against the metrics store; the rollbacks that fired, with
    /// the override that takes their canary out (not yet applied).
    pub(crate) fn due_rollbacks(
        &mut self,
        store: &MetricsStore,
        configured: impl Fn(&RuleKey) -> Option<Vec<WeightedTargetGroup>>,
        now: Time,
    ) -> Vec<(RuleKey, Override)> {
        let mut fired = Vec::new();
        for (key, r) in &mut self.rollbacks {
            if r.poll_timeout().is_none_or(|t| now < t) {
                continue;
            }
            let spec = r.spec().clone();
            let Some(rb) = r.tick(now, |end| canary_metric(store, &spec, end)) else {
                continue;
            };
            let Some(base) = configured(key) else {
                continue;
            };
            let current = self
                .overrides
                .get(key)
                .map_or_else(|| base.clone(), |o| o.weights.clone());
            let weights = current
                .into_iter()
                .map(|mut g| {
                    if g.name == rb.target_group {
                        g.weight = 0;
                    }
                    g
                })
                .collect();
            fired.push((
                key.clone(),
                Override {
                    weights,
                    base,
                    source: Source::Rollback(rb.cause),
                },
            ));
        }
        fired
    }
}

/// The period's value of a rollback alarm's metric at the canary target group's scope.
/// `http_target_5xx_rate` is the percent of the period's requests answered 5xx by the targets
/// (two sums, so the ratio is over the whole period, not an average of per-second ratios).
fn canary_metric(store: &MetricsStore, spec: &RollbackSpec, end: Time) -> Option<f64> {
    let scope = format!("target-group/{}", spec.target_group);
    let period = spec.alarm.period.as_secs().max(1);
    if spec.alarm.metric == "http_target_5xx_rate" {
        let sum = |m: &str| store.aggregate(m, &scope, period, Statistic::Sum, end);
        let requests = sum("request_count").filter(|n| *n > 0.0)?;
        return Some(100.0 * sum("http_target_5xx_count").unwrap_or(0.0) / requests);
    }
    let statistic: Statistic = spec.alarm.statistic.parse().ok()?;
    store.aggregate(&spec.alarm.metric, &scope, period, statistic, end)
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

/// The stored form of `key`'s override.
pub(crate) fn to_record(key: &RuleKey, o: &Override) -> WeightOverrideRecord {
    let (source, cause) = match &o.source {
        Source::Operator => ("operator", String::new()),
        Source::Rollback(cause) => ("rollback", cause.clone()),
    };
    WeightOverrideRecord {
        load_balancer: key.lb.clone(),
        listener: key.listener.to_string(),
        rule: key.rule(),
        weights: encode(&o.weights),
        base: encode(&o.base),
        source: source.to_string(),
        cause,
    }
}

/// An override read back from the state store; `None` (logged) when the row is unreadable.
pub(crate) fn from_record(r: &WeightOverrideRecord) -> Option<(RuleKey, Override)> {
    let parsed = (|| {
        let key = RuleKey {
            lb: r.load_balancer.clone(),
            listener: r.listener.parse().ok()?,
            priority: parse_rule(&r.rule).ok()?,
        };
        let source = match r.source.as_str() {
            "rollback" => Source::Rollback(r.cause.clone()),
            _ => Source::Operator,
        };
        let (weights, base) = (decode(&r.weights)?, decode(&r.base)?);
        (weights.len() == base.len()).then_some(())?;
        Some((
            key,
            Override {
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

/// Checks an operator's new split against the action's groups: every named group must be in
/// the action, weights 0–999, at least one above 0; a group left out gets 0 (AWS `ModifyRule`
/// replaces the whole list).
pub(crate) fn new_split(
    configured: &[WeightedTargetGroup],
    requested: &BTreeMap<String, u32>,
) -> Result<Vec<WeightedTargetGroup>, AdminError> {
    let names: Vec<&str> = configured.iter().map(|g| g.name.as_str()).collect();
    if let Some(unknown) = requested.keys().find(|n| !names.contains(&n.as_str())) {
        return Err(AdminError::BadRequest(format!(
            "target group `{unknown}` is not in this forward action (it has {})",
            names.join(", ")
        )));
    }
    if let Some((name, w)) = requested.iter().find(|(_, w)| **w > 999) {
        return Err(AdminError::BadRequest(format!(
            "weight {w} of `{name}` is above 999"
        )));
    }
    if requested.values().all(|w| *w == 0) {
        return Err(AdminError::BadRequest(
            "at least one target group needs a weight above 0".into(),
        ));
    }
    Ok(configured
        .iter()
        .map(|g| WeightedTargetGroup {
            name: g.name.clone(),
            weight: requested.get(&g.name).copied().unwrap_or(0),
        })
        .collect())
}

/// `default` or a priority 1–50000 from the API path.
pub(crate) fn parse_rule(rule: &str) -> Result<Option<u32>, AdminError> {
    if rule == "default" {
        return Ok(None);
    }
    rule.parse::<u32>()
        .ok()
        .filter(|p| (1..=50_000).contains(p))
        .map(Some)
        .ok_or_else(|| {
            AdminError::BadRequest(format!(
                "rule `{rule}` is neither `default` nor a priority 1-50000"
            ))
        })
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

    #[test]
    fn a_split_names_only_the_actions_groups_and_sends_traffic_somewhere() {
        let cfg = [g("web", 90), g("canary", 10)];
        let req = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()
        };
        assert_eq!(
            new_split(&cfg, &req(&[("canary", 100)])).unwrap(),
            [g("web", 0), g("canary", 100)]
        );
        assert!(new_split(&cfg, &req(&[("blue", 1)])).is_err());
        assert!(new_split(&cfg, &req(&[("web", 0), ("canary", 0)])).is_err());
        assert!(new_split(&cfg, &req(&[("web", 1000)])).is_err());
        assert_eq!(parse_rule("default").unwrap(), None);
        assert_eq!(parse_rule("10").unwrap(), Some(10));
        assert!(parse_rule("0").is_err() && parse_rule("x").is_err());
    }

    fn listener(web: u32, canary: u32) -> Listener {
        let src = format!(
            "[target_groups.web]\n[target_groups.canary]\n[[load_balancers.front.listeners]]\n\
             bind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_groups = \
             [{{ name = \"web\", weight = {web} }}, {{ name = \"canary\", weight = {canary} }}] }}\n"
        );
        let cfg = flotilla_config::parse(&src, std::path::Path::new("f.toml")).unwrap();
        cfg.load_balancers["front"].listeners[0].clone()
    }

    #[test]
    fn an_override_the_file_no_longer_agrees_with_is_dropped_once_and_reported_for_deletion() {
        let l = listener(90, 10);
        let key = RuleKey {
            lb: "front".into(),
            listener: l.bind,
            priority: None,
        };
        let mut w = Weights::default();
        let o = Override {
            weights: vec![g("web", 0), g("canary", 100)],
            base: vec![g("web", 90), g("canary", 10)],
            source: Source::Operator,
        };
        w.set(&key, Some(o), Time::ZERO);
        let (effective, dropped) = w.effective("front", &l);
        assert!(dropped.is_empty());
        assert!(matches!(
            &effective.default_action,
            Action::Forward { target_groups, .. } if target_groups[1].weight == 100
        ));
        assert!(
            w.take_dropped().is_empty(),
            "nothing to delete while it applies"
        );
        // The file's weights for the rule changed: the override goes, and its row with it.
        let (effective, dropped) = w.effective("front", &listener(80, 20));
        assert_eq!(dropped.len(), 1);
        assert!(matches!(
            &effective.default_action,
            Action::Forward { target_groups, .. } if target_groups[1].weight == 20
        ));
        assert_eq!(w.take_dropped(), vec![key]);
        assert!(w.take_dropped().is_empty());
        // Back to the old weights: the dropped override does not return.
        let (effective, _) = w.effective("front", &l);
        assert!(matches!(
            &effective.default_action,
            Action::Forward { target_groups, .. } if target_groups[1].weight == 10
        ));
    }
}
