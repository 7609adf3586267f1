//! The store's records (`flotilla-cluster`) from and into the control plane's types: one
//! place, so the leader, the agents and the load balancer nodes read the same record alike.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use flotilla_cluster::records::{
    AssignedState, Assignment as AssignmentRecord, HostRecord, ImageRecord, LaunchRecord,
    Observation, ObservedState, RoutingWeights, WeightRecord,
};
use flotilla_control::fleet::{Assignment, AssignmentState, HostSpec, Observed};
use flotilla_control::pricing::PurchaseOption;
use flotilla_control::{
    ImageTemplate, InstanceId, LaunchTemplate, LifecycleState, PullPolicy, RuleKey, StopSignal,
    WeightOverride, WeightSource, WeightedTargetGroup,
};

/// The roles a node runs.
pub(crate) const COMPUTE: &str = "compute";

/// A compute host's registration as placement sees it; `None` for a node without the compute
/// role or with an unreadable address.
pub(crate) fn host_spec(r: &HostRecord) -> Option<HostSpec> {
    if !r.roles.iter().any(|x| x == COMPUTE) {
        return None;
    }
    Some(HostSpec {
        zone: r.zone.clone(),
        address: r.address.parse().ok()?,
        slots: r.slots,
    })
}

fn launch_record(t: &LaunchTemplate) -> LaunchRecord {
    LaunchRecord {
        command: t.command.clone(),
        env: t.env.clone(),
        working_dir: t.working_dir.to_string_lossy().into_owned(),
        stop_signal: t.stop_signal.as_str().to_string(),
        stop_timeout_ms: u64::try_from(t.stop_timeout.as_millis()).unwrap_or(u64::MAX),
        instance_type: t.instance_type.clone(),
        user_data: t.user_data.clone(),
        image: t.image.as_ref().map(image_record),
    }
}

fn image_record(i: &ImageTemplate) -> ImageRecord {
    ImageRecord {
        reference: i.reference.clone(),
        args: i.args.clone(),
        port: i.port,
        cpu_millis: i.cpu_millis,
        memory_bytes: i.memory_bytes,
        pull: i.pull.as_str().to_string(),
    }
}

/// The image settings a launch record carries (an unknown pull policy: the default).
fn image(r: &ImageRecord) -> ImageTemplate {
    let pull = PullPolicy::ALL
        .iter()
        .find(|(name, _)| *name == r.pull)
        .map_or_else(PullPolicy::default, |(_, p)| *p);
    ImageTemplate {
        reference: r.reference.clone(),
        args: r.args.clone(),
        port: r.port,
        cpu_millis: r.cpu_millis,
        memory_bytes: r.memory_bytes,
        pull,
    }
}

/// The launch template an assignment carries.
pub(crate) fn template(r: &LaunchRecord) -> LaunchTemplate {
    LaunchTemplate {
        command: r.command.clone(),
        env: r.env.clone(),
        working_dir: PathBuf::from(&r.working_dir),
        stop_signal: StopSignal::parse(&r.stop_signal).unwrap_or_default(),
        stop_timeout: Duration::from_millis(r.stop_timeout_ms.max(1)),
        instance_type: r.instance_type.clone(),
        user_data: r.user_data.clone(),
        image: r.image.as_ref().map(image),
    }
}

fn state_record(s: AssignmentState) -> AssignedState {
    match s {
        AssignmentState::Run => AssignedState::Run,
        AssignmentState::Stop => AssignedState::Stop,
        AssignmentState::Kill => AssignedState::Kill,
    }
}

/// The lifecycle state a stored name stands for (anything unknown: in service).
fn lifecycle(name: &str) -> LifecycleState {
    [
        LifecycleState::Pending,
        LifecycleState::PendingWait,
        LifecycleState::WarmedRunning,
    ]
    .into_iter()
    .find(|s| s.as_str() == name)
    .unwrap_or(LifecycleState::InService)
}

/// The record of an assignment.
pub(crate) fn assignment_record(a: &Assignment) -> AssignmentRecord {
    AssignmentRecord {
        group: a.group.clone(),
        zone: a.zone.clone(),
        port: a.address.map_or(0, |s| s.port()),
        spec_hash: String::new(),
        template_version: a.launch_template_version,
        state: state_record(a.state),
        generation: 0,
        address: a.address.map(|s| s.to_string()).unwrap_or_default(),
        target_groups: a.target_groups.iter().cloned().collect(),
        lifecycle: a.lifecycle.as_str().to_string(),
        protected: a.protected_from_scale_in,
        purchase_option: a.purchase_option.as_str().to_string(),
        template: launch_record(&a.template),
    }
}

/// An assignment read back from `assign/<host>/<id>`.
pub(crate) fn assignment(host: &str, id: &str, r: &AssignmentRecord) -> Assignment {
    Assignment {
        id: InstanceId::from(id.to_string()),
        host: host.to_string(),
        group: r.group.clone(),
        zone: r.zone.clone(),
        launch_template_version: r.template_version.max(1),
        template: template(&r.template),
        state: match r.state {
            AssignedState::Run | AssignedState::Drain => AssignmentState::Run,
            AssignedState::Stop => AssignmentState::Stop,
            AssignedState::Kill => AssignmentState::Kill,
        },
        address: r.address.parse().ok(),
        target_groups: r.target_groups.iter().cloned().collect::<BTreeSet<_>>(),
        lifecycle: lifecycle(&r.lifecycle),
        protected_from_scale_in: r.protected,
        purchase_option: PurchaseOption::parse(&r.purchase_option).unwrap_or_default(),
    }
}

/// What an agent's observation says.
pub(crate) fn observed(o: &Observation) -> Observed {
    match o.state {
        ObservedState::Starting => Observed::Starting,
        ObservedState::Running | ObservedState::Stopping => Observed::Running { port: o.port },
        ObservedState::Exited => Observed::Exited {
            status: o.exit.clone().unwrap_or_else(|| "exited".to_string()),
        },
    }
}

/// A forward action as a key segment (`/` escaped): `LB~LISTENER~RULE`.
pub(crate) fn rule_id(rule: &RuleKey) -> String {
    format!(
        "{}~{}~{}",
        rule.load_balancer.replace('%', "%25").replace('/', "%2F"),
        rule.listener,
        rule.rule()
    )
}

fn weights_of(w: &[WeightedTargetGroup]) -> Vec<WeightRecord> {
    w.iter()
        .map(|g| WeightRecord {
            name: g.name.clone(),
            weight: g.weight,
        })
        .collect()
}

fn weights_from(w: &[WeightRecord]) -> Vec<WeightedTargetGroup> {
    w.iter()
        .map(|g| WeightedTargetGroup {
            name: g.name.clone(),
            weight: g.weight,
        })
        .collect()
}

/// The routing record of a forward action's weights in force.
pub(crate) fn routing_weights(rule: &RuleKey, w: &[WeightedTargetGroup]) -> RoutingWeights {
    RoutingWeights {
        load_balancer: rule.load_balancer.clone(),
        listener: rule.listener.to_string(),
        priority: rule.priority,
        weights: weights_of(w),
    }
}

/// The forward action and weights of a routing record; `None` if unreadable.
pub(crate) fn from_routing_weights(
    r: &RoutingWeights,
) -> Option<(RuleKey, Vec<WeightedTargetGroup>)> {
    let rule = RuleKey {
        load_balancer: r.load_balancer.clone(),
        listener: r.listener.parse().ok()?,
        priority: r.priority,
    };
    Some((rule, weights_from(&r.weights)))
}

/// A weight override as an override record's value.
pub(crate) fn weight_override_value(rule: &RuleKey, o: &WeightOverride) -> serde_json::Value {
    let (source, cause) = match &o.source {
        WeightSource::Operator => ("operator", String::new()),
        WeightSource::Rollback(cause) => ("rollback", cause.clone()),
    };
    serde_json::json!({
        "rule": routing_weights(rule, &o.weights),
        "base": weights_of(&o.base),
        "source": source,
        "cause": cause,
    })
}

/// A weight override read back; `None` if unreadable.
pub(crate) fn weight_override(v: &serde_json::Value) -> Option<(RuleKey, WeightOverride)> {
    let rule: RoutingWeights = serde_json::from_value(v.get("rule")?.clone()).ok()?;
    let base: Vec<WeightRecord> = serde_json::from_value(v.get("base")?.clone()).ok()?;
    let (key, weights) = from_routing_weights(&rule)?;
    let source = match v.get("source")?.as_str()? {
        "rollback" => WeightSource::Rollback(v.get("cause")?.as_str()?.to_string()),
        _ => WeightSource::Operator,
    };
    Some((
        key,
        WeightOverride {
            weights,
            base: weights_from(&base),
            source,
        },
    ))
}

/// `ip:port` with the host's address and a listener's port: where a load balancer node binds
/// a listener the config gives as `bind`.
pub(crate) fn on_host(host: IpAddr, bind: SocketAddr) -> SocketAddr {
    SocketAddr::new(host, bind.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_and_overrides_round_trip() {
        let a = Assignment {
            id: InstanceId::from("i-1".to_string()),
            host: "h1".into(),
            group: "web".into(),
            zone: "az-a".into(),
            launch_template_version: 3,
            template: LaunchTemplate {
                command: vec!["{flotilla}".into(), "demo-app".into()],
                env: [("A".to_string(), "b".to_string())].into(),
                working_dir: "/srv".into(),
                stop_signal: StopSignal::Int,
                stop_timeout: Duration::from_secs(7),
                instance_type: "t3.micro".into(),
                user_data: Some(b"#!/bin/sh\n".to_vec()),
                image: None,
            },
            state: AssignmentState::Kill,
            address: Some("10.77.0.12:4000".parse().unwrap()),
            target_groups: ["web".to_string()].into(),
            lifecycle: LifecycleState::WarmedRunning,
            protected_from_scale_in: true,
            purchase_option: PurchaseOption::Spot,
        };
        let back = assignment("h1", "i-1", &assignment_record(&a));
        assert_eq!(back, a);
        let mut with_image = a.clone();
        with_image.template.image = Some(ImageTemplate {
            reference: "localhost/web:2.1".into(),
            args: vec!["demo-app".into()],
            port: Some(8080),
            cpu_millis: Some(500),
            memory_bytes: Some(64 << 20),
            pull: PullPolicy::Never,
        });
        let record = assignment_record(&with_image);
        assert_eq!(
            record.template.image.as_ref().map(|i| i.pull.as_str()),
            Some("never")
        );
        assert_eq!(
            assignment("h1", "i-1", &record),
            with_image,
            "the image travels whole"
        );
        let rule = RuleKey {
            load_balancer: "front/x".into(),
            listener: "0.0.0.0:8080".parse().unwrap(),
            priority: Some(10),
        };
        assert_eq!(rule_id(&rule), "front%2Fx~0.0.0.0:8080~10");
        let o = WeightOverride {
            weights: vec![WeightedTargetGroup {
                name: "web".into(),
                weight: 0,
            }],
            base: vec![WeightedTargetGroup {
                name: "web".into(),
                weight: 1,
            }],
            source: WeightSource::Rollback("alarm".into()),
        };
        assert_eq!(
            weight_override(&weight_override_value(&rule, &o)),
            Some((rule, o))
        );
    }
}
