//! Listeners (each binds its port on the API's address and serves at once) and their rules,
//! including the default rule `DescribeRules` lists with priority `default`.

use crate::call::Call;
use crate::model::{file_hex, ListenerRes, RuleRes};
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult};
use crate::views::{self, read_only};

use super::conditions::{parse_conditions, write_conditions};
use super::{parse_actions, write_actions};

fn listener_not_found() -> AwsError {
    AwsError::new("ListenerNotFound", "One or more listeners not found")
}

fn rule_not_found() -> AwsError {
    AwsError::new("RuleNotFound", "One or more rules not found")
}

fn write_listener(call: &Call<'_>, x: &mut Xml, l: &ListenerRes) {
    let lb_arn = views::load_balancers(call)
        .into_iter()
        .find(|(lb, _)| lb.name == l.load_balancer)
        .map(|(lb, _)| lb.arn)
        .unwrap_or_default();
    x.leaf("ListenerArn", &l.arn)
        .leaf("LoadBalancerArn", lb_arn)
        .leaf("Port", l.port.to_string())
        .leaf("Protocol", &l.protocol);
    write_actions(x, "DefaultActions", &l.default_actions);
}

fn listeners_answer(call: &Call<'_>, ls: &[ListenerRes], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.list("Listeners", "member", ls, |x, l| write_listener(call, x, l));
    x.opt("NextMarker", next);
    x.finish()
}

/// A listener by ARN: (listener, its rules, from the file).
fn listener(call: &Call<'_>, arn: &str) -> AwsResult<(ListenerRes, Vec<RuleRes>, bool)> {
    views::listeners(call)
        .into_iter()
        .find(|(l, _, _)| l.arn == arn)
        .ok_or_else(listener_not_found)
}

pub(crate) fn create_listener(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let (lb, file) = super::load_balancers::by_arn(call, p.required("LoadBalancerArn")?)?;
    if file {
        return Err(read_only("load balancer", &lb.name));
    }
    let network = lb.kind == "network";
    let protocol = p
        .get("Protocol")
        .unwrap_or(if network { "TCP" } else { "HTTP" });
    let expected = if network { "TCP" } else { "HTTP" };
    if protocol != expected {
        return Err(AwsError::validation(format!(
            "Protocol '{protocol}' is not supported by Flotilla's {} load balancers through \
             the API ({expected}; HTTPS listeners need certificates, which the config file \
             takes)",
            lb.kind
        )));
    }
    let port = p
        .u32("Port", 1, 65535)?
        .ok_or_else(|| AwsError::missing("Port"))? as u16;
    let actions = parse_actions(call, "DefaultActions", protocol)?;
    if let Some(old) = call
        .reg
        .listeners
        .values()
        .find(|l| l.load_balancer == lb.name && l.port == port)
    {
        if old.protocol == protocol && old.default_actions == actions {
            let old = old.clone();
            return Ok(listeners_answer(call, &[old], None));
        }
        return Err(AwsError::new(
            "DuplicateListener",
            format!(
                "A listener already exists on this port for this load balancer '{}'",
                lb.arn
            ),
        ));
    }
    if let Some((other, _, _)) = views::listeners(call)
        .into_iter()
        .find(|(l, _, _)| l.port == port)
    {
        return Err(AwsError::validation(format!(
            "Port {port} is already used by load balancer {}: Flotilla binds the listeners the \
             API creates on {} (one address), so each needs a port of its own",
            other.load_balancer, call.listen_ip
        )));
    }
    let listener = ListenerRes {
        arn: call.ids.listener_arn(&lb.arn, &call.ids.hex16()),
        load_balancer: lb.name.clone(),
        protocol: protocol.to_string(),
        port,
        default_actions: actions,
        tags: super::tags::parse_tags(p)?,
    };
    call.reg
        .listeners
        .insert(listener.arn.clone(), listener.clone());
    Ok(listeners_answer(call, &[listener], None))
}

pub(crate) fn describe_listeners(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arns = p.strings("ListenerArns", true)?.unwrap_or_default();
    let lb = p.get("LoadBalancerArn");
    if lb.is_none() && arns.is_empty() {
        return Err(AwsError::validation(
            "You must specify either a load balancer or one or more listeners",
        ));
    }
    let mut picked = Vec::new();
    if let Some(lb) = lb {
        let (lb, _) = super::load_balancers::by_arn(call, lb)?;
        picked.extend(
            views::listeners(call)
                .into_iter()
                .filter(|(l, _, _)| l.load_balancer == lb.name)
                .map(|(l, _, _)| l),
        );
    }
    for a in &arns {
        picked.push(listener(call, a)?.0);
    }
    let (page, next) = super::page(call, picked)?;
    Ok(listeners_answer(call, &page, next))
}

pub(crate) fn modify_listener(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arn = p.required("ListenerArn")?.to_string();
    let (mut l, _, file) = listener(call, &arn)?;
    if file {
        return Err(read_only("listener", &arn));
    }
    if let Some(proto) = p.get("Protocol") {
        if proto != l.protocol {
            return Err(AwsError::validation(format!(
                "Protocol '{proto}' is not supported here; the listener speaks {}",
                l.protocol
            )));
        }
    }
    if let Some(port) = p.u32("Port", 1, 65535)? {
        let port = port as u16;
        if port != l.port
            && views::listeners(call)
                .iter()
                .any(|(o, _, _)| o.port == port)
        {
            return Err(AwsError::new(
                "DuplicateListener",
                format!("Port {port} is already used by a listener"),
            ));
        }
        l.port = port;
    }
    if p.has("DefaultActions") {
        l.default_actions = parse_actions(call, "DefaultActions", &l.protocol)?;
    }
    call.reg.listeners.insert(arn, l.clone());
    Ok(listeners_answer(call, &[l], None))
}

pub(crate) fn delete_listener(call: &mut Call<'_>) -> AwsResult<String> {
    let arn = call.p.required("ListenerArn")?.to_string();
    let (_, _, file) = listener(call, &arn)?;
    if file {
        return Err(read_only("listener", &arn));
    }
    call.reg.listeners.remove(&arn);
    call.reg.rules.retain(|_, r| r.listener_arn != arn);
    Ok(String::new())
}

/// A rule as written: the default rule has priority `default` and no conditions.
fn write_rule(x: &mut Xml, r: &RuleRes, default: bool) {
    x.leaf("RuleArn", &r.arn).leaf(
        "Priority",
        if default {
            "default".to_string()
        } else {
            r.priority.to_string()
        },
    );
    write_conditions(x, &r.conditions);
    write_actions(x, "Actions", &r.actions);
    x.boolean("IsDefault", default);
}

fn rules_answer(rules: &[(RuleRes, bool)], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.list("Rules", "member", rules, |x, (r, d)| write_rule(x, r, *d));
    x.opt("NextMarker", next);
    x.finish()
}

/// A listener's rules by priority, then its default rule.
fn rules_of(call: &Call<'_>, l: &ListenerRes, rules: Vec<RuleRes>) -> Vec<(RuleRes, bool)> {
    let mut rules: Vec<(RuleRes, bool)> = rules.into_iter().map(|r| (r, false)).collect();
    rules.sort_by_key(|(r, _)| r.priority);
    rules.push((
        RuleRes {
            arn: call.ids.rule_arn(&l.arn, &file_hex("default-rule", &l.arn)),
            listener_arn: l.arn.clone(),
            priority: 0,
            conditions: Vec::new(),
            actions: l.default_actions.clone(),
            tags: Vec::new(),
        },
        true,
    ));
    rules
}

pub(crate) fn create_rule(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let (l, rules, file) = listener(call, p.required("ListenerArn")?)?;
    if file {
        return Err(read_only("listener", &l.arn));
    }
    if l.protocol == "TCP" {
        return Err(AwsError::validation("TCP listeners have no rules"));
    }
    let priority = p
        .u32("Priority", 1, 50_000)?
        .ok_or_else(|| AwsError::missing("Priority"))?;
    let conditions = parse_conditions(p)?;
    let actions = parse_actions(call, "Actions", &l.protocol)?;
    if rules.iter().any(|r| r.priority == priority) {
        return Err(AwsError::new(
            "PriorityInUse",
            format!("Priority '{priority}' is currently in use"),
        ));
    }
    if rules.len() >= 100 {
        return Err(AwsError::new(
            "TooManyRules",
            "You've reached the limit on the number of rules per load balancer",
        ));
    }
    let rule = RuleRes {
        arn: call.ids.rule_arn(&l.arn, &call.ids.hex16()),
        listener_arn: l.arn.clone(),
        priority,
        conditions,
        actions,
        tags: super::tags::parse_tags(p)?,
    };
    call.reg.rules.insert(rule.arn.clone(), rule.clone());
    Ok(rules_answer(&[(rule, false)], None))
}

pub(crate) fn describe_rules(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arns = p.strings("RuleArns", true)?.unwrap_or_default();
    let mut picked = Vec::new();
    if let Some(arn) = p.get("ListenerArn") {
        let (l, rules, _) = listener(call, arn)?;
        picked = rules_of(call, &l, rules);
    } else if arns.is_empty() {
        return Err(AwsError::validation(
            "You must specify either a listener or one or more rules",
        ));
    }
    if !arns.is_empty() {
        let all: Vec<(RuleRes, bool)> = views::listeners(call)
            .into_iter()
            .flat_map(|(l, rules, _)| rules_of(call, &l, rules))
            .collect();
        for a in &arns {
            picked.push(
                all.iter()
                    .find(|(r, _)| &r.arn == a)
                    .cloned()
                    .ok_or_else(rule_not_found)?,
            );
        }
    }
    let (page, next) = super::page(call, picked)?;
    Ok(rules_answer(&page, next))
}

/// A rule by ARN for a change: (rule, its listener, whether it is the default rule).
fn rule_for_change(call: &Call<'_>, arn: &str) -> AwsResult<(RuleRes, ListenerRes, bool)> {
    for (l, rules, file) in views::listeners(call) {
        if let Some((r, default)) = rules_of(call, &l, rules)
            .into_iter()
            .find(|(r, _)| r.arn == arn)
        {
            if file {
                return Err(read_only("rule", arn));
            }
            return Ok((r, l, default));
        }
    }
    Err(rule_not_found())
}

pub(crate) fn modify_rule(call: &mut Call<'_>) -> AwsResult<String> {
    let p = call.p;
    let arn = p.required("RuleArn")?.to_string();
    let (mut rule, l, default) = rule_for_change(call, &arn)?;
    if p.has("Conditions") {
        if default {
            return Err(AwsError::new(
                "OperationNotPermitted",
                "The default rule has no conditions",
            ));
        }
        rule.conditions = parse_conditions(p)?;
    }
    if p.has("Actions") {
        rule.actions = parse_actions(call, "Actions", &l.protocol)?;
    }
    if default {
        if let Some(entry) = call.reg.listeners.get_mut(&l.arn) {
            entry.default_actions = rule.actions.clone();
        }
    } else {
        call.reg.rules.insert(arn, rule.clone());
    }
    Ok(rules_answer(&[(rule, default)], None))
}

pub(crate) fn set_priorities(call: &mut Call<'_>) -> AwsResult<String> {
    let entries = call
        .p
        .list_entries("RulePriorities", true)?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| AwsError::missing("RulePriorities"))?;
    let mut changed = Vec::new();
    for e in &entries {
        let arn = e.required("RuleArn")?.to_string();
        let priority = e
            .u32("Priority", 1, 50_000)?
            .ok_or_else(|| AwsError::missing("Priority"))?;
        let (_, _, default) = rule_for_change(call, &arn)?;
        if default {
            return Err(AwsError::new(
                "OperationNotPermitted",
                "The default rule cannot be re-prioritised",
            ));
        }
        let rule = call.reg.rules.get_mut(&arn).ok_or_else(rule_not_found)?;
        rule.priority = priority;
        changed.push(rule.listener_arn.clone());
    }
    for listener in &changed {
        let mut seen = std::collections::BTreeSet::new();
        for r in call
            .reg
            .rules
            .values()
            .filter(|r| &r.listener_arn == listener)
        {
            if !seen.insert(r.priority) {
                return Err(AwsError::new(
                    "PriorityInUse",
                    format!("Priority '{}' is currently in use", r.priority),
                ));
            }
        }
    }
    let rules: Vec<(RuleRes, bool)> = entries
        .iter()
        .filter_map(|e| e.get("RuleArn"))
        .filter_map(|a| call.reg.rules.get(a).cloned())
        .map(|r| (r, false))
        .collect();
    Ok(rules_answer(&rules, None))
}

pub(crate) fn delete_rule(call: &mut Call<'_>) -> AwsResult<String> {
    let arn = call.p.required("RuleArn")?.to_string();
    let (_, _, default) = rule_for_change(call, &arn)?;
    if default {
        return Err(AwsError::new(
            "OperationNotPermitted",
            "The default rule cannot be deleted",
        ));
    }
    call.reg.rules.remove(&arn);
    Ok(String::new())
}
