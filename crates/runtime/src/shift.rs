//! The weights routes and the canary rollback tick: find the forward action, change its
//! override, recompile that one listener's routing table and swap it in. Lock order: control,
//! then the listener entries, then the weights.

use std::collections::BTreeMap;

use flotilla_admin::api::RuleWeights;
use flotilla_admin::AdminError;
use flotilla_config::WeightedTargetGroup;
use flotilla_control::Time;
use flotilla_metrics::MetricsStore;

use crate::backend::Shared;
use crate::control::Control;
use crate::reload::{lock, proxy_groups, ListenerEntry, ListenerSet};
use crate::weights::{action_of, forward_of, new_split, parse_rule, Override, RuleKey, Source};

/// The entry and key of `lb`'s forward action `rule`, on the listener `listener` names (a port
/// or bind address; needed only when several listeners have the rule), and its configured
/// groups.
fn resolve<'a>(
    entries: &'a BTreeMap<std::net::SocketAddr, ListenerEntry>,
    lb: &str,
    rule: &str,
    listener: Option<&str>,
) -> Result<(&'a ListenerEntry, RuleKey, Vec<WeightedTargetGroup>), AdminError> {
    let priority = parse_rule(rule)?;
    let of_lb: Vec<&ListenerEntry> = entries.values().filter(|e| e.load_balancer == lb).collect();
    if of_lb.is_empty() {
        return Err(AdminError::NotFound(format!(
            "no load balancer named `{lb}`"
        )));
    }
    let named: Vec<&ListenerEntry> = match listener {
        None => of_lb,
        Some(sel) => {
            let hits: Vec<&ListenerEntry> = of_lb
                .into_iter()
                .filter(|e| {
                    e.listener.bind.to_string() == sel || e.listener.bind.port().to_string() == sel
                })
                .collect();
            if hits.is_empty() {
                return Err(AdminError::NotFound(format!(
                    "load balancer `{lb}` has no listener `{sel}` (give its port or bind address)"
                )));
            }
            hits
        }
    };
    let mut found = named
        .into_iter()
        .filter_map(|e| Some((e, action_of(&e.listener, priority)?)));
    let (Some((entry, action)), rest) = (found.next(), found.next()) else {
        return Err(AdminError::NotFound(format!(
            "load balancer `{lb}` has no rule `{rule}`"
        )));
    };
    if let Some((other, _)) = rest {
        return Err(AdminError::BadRequest(format!(
            "listeners {} and {} of `{lb}` both have rule `{rule}`; name one with listener=PORT",
            entry.listener.bind, other.listener.bind
        )));
    }
    let flotilla_config::Action::Forward { target_groups, .. } = action else {
        return Err(AdminError::NotFound(format!(
            "rule `{rule}` of `{lb}` does not forward, so it has no weights"
        )));
    };
    let key = RuleKey {
        lb: lb.to_string(),
        listener: entry.listener.bind,
        priority,
    };
    Ok((entry, key, target_groups.clone()))
}

/// `GET /v1/load-balancers/{lb}/rules/{rule}/weights`.
pub(crate) fn rule_weights(
    shared: &Shared,
    lb: &str,
    rule: &str,
    listener: Option<&str>,
) -> Result<RuleWeights, AdminError> {
    let set = &shared.listener_set;
    let entries = lock(&set.entries);
    let (_, key, configured) = resolve(&entries, lb, rule, listener)?;
    Ok(lock(&set.weights).info(&key, &configured, &shared.clock))
}

/// `PUT` (`Some(weights)`) or `DELETE` (`None`) of a forward action's weights.
pub(crate) fn set_weights(
    shared: &Shared,
    lb: &str,
    rule: &str,
    listener: Option<&str>,
    weights: Option<&BTreeMap<String, u32>>,
) -> Result<RuleWeights, AdminError> {
    let now = shared.clock.now();
    let c = shared.lock();
    let set = &shared.listener_set;
    let entries = lock(&set.entries);
    let (entry, key, configured) = resolve(&entries, lb, rule, listener)?;
    let o = match weights {
        Some(w) => Some(Override {
            weights: new_split(&configured, w)?,
            base: configured.clone(),
            source: Source::Operator,
        }),
        None => None,
    };
    lock(&set.weights).set(&key, o.clone(), now);
    apply(set, &c, entry, &key, o.as_ref());
    let info = lock(&set.weights).info(&key, &configured, &shared.clock);
    tracing::info!(
        load_balancer = lb,
        listener = %key.listener,
        rule = key.rule(),
        "weights {}: {:?}",
        if weights.is_some() { "shifted" } else { "reset to the config's" },
        info.weights
    );
    Ok(info)
}

/// Swaps in `entry`'s new routing table and persists `key`'s override (or its removal).
fn apply(
    set: &ListenerSet,
    c: &Control,
    entry: &ListenerEntry,
    key: &RuleKey,
    o: Option<&Override>,
) {
    let groups = proxy_groups(&c.target_groups);
    entry.router.store(std::sync::Arc::new(set.compile(
        &entry.load_balancer,
        &entry.listener,
        &groups,
    )));
    if let Some(p) = &c.persist {
        p.weight_override(key, o);
    }
}

/// Once a second: evaluates every canary rollback that is due and takes out the canaries
/// whose alarm fired (a log line says why; the API shows it).
pub(crate) fn tick_rollbacks(set: &ListenerSet, c: &Control, store: &MetricsStore, now: Time) {
    let entries = lock(&set.entries);
    let fired = {
        let mut w = lock(&set.weights);
        let live: Vec<_> = entries.keys().copied().collect();
        w.retain_listeners(&live);
        for e in entries.values() {
            let (effective, _) = w.effective(&e.load_balancer, &e.listener);
            w.track_rollbacks(&e.load_balancer, &effective, now);
        }
        let configured = |key: &RuleKey| {
            let e = entries.get(&key.listener)?;
            forward_of(&e.listener, key.priority).map(|(groups, _)| groups.to_vec())
        };
        w.due_rollbacks(store, configured, now)
    };
    for (key, o) in fired {
        if let Source::Rollback(cause) = &o.source {
            tracing::warn!(
                load_balancer = key.lb.as_str(),
                listener = %key.listener,
                rule = key.rule(),
                "{cause}"
            );
        }
        lock(&set.weights).set(&key, Some(o.clone()), now);
        if let Some(entry) = entries.get(&key.listener) {
            apply(set, c, entry, &key, Some(&o));
        }
    }
}
