//! The fleet's effects as fenced writes: assignments, activities, operators' intents and the
//! routing records load balancer nodes read. Every write is one etcd transaction guarded by the
//! leader's election key, so a deposed leader cannot land one; writes go in order, batched, and
//! are retried while etcd is away (nothing else is decided meanwhile).

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_cluster::election::SELF_FENCE_MARGIN;
use flotilla_cluster::records::{
    activity_id, now_ms, ActivityRecord, OverrideRecord, ShiftedZones,
};
use flotilla_cluster::retry::{Jitter, RetryPolicy};
use flotilla_cluster::{ClusterError, Leadership};
use flotilla_control::fleet::FleetEffect;
use flotilla_control::{Activity, Durable, Effect};

use super::super::{convert, Node};
use super::host::LeaderHost;

/// Operations per transaction (etcd's default limit is 128).
const BATCH: usize = 64;
/// Activities kept per group; older ones are deleted.
const KEEP_ACTIVITIES: usize = 1000;
/// Activity writes per group between two trims.
const TRIM_EVERY: usize = 100;

/// One operation of a write.
enum Op {
    Put(String, serde_json::Value),
    Delete(String),
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k,
        }
    }
}

/// One operation per key, the last one (etcd refuses a transaction naming a key twice, and
/// the last write is the state to reach), in the order keys were first written.
fn dedupe(ops: Vec<Op>) -> Vec<Op> {
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        match at.get(op.key()) {
            Some(&i) => out[i] = op,
            None => {
                at.insert(op.key().to_string(), out.len());
                out.push(op);
            }
        }
    }
    out
}

/// Why a term ends.
#[derive(Debug)]
pub(super) enum Ended {
    /// Another leader leads (the fence refused a write).
    Deposed,
    /// The node is stopping.
    Stopping,
}

/// Turns effects into operations and commits them.
pub(super) struct Writer {
    activities: BTreeMap<String, usize>,
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn intent(node: &Node, value: serde_json::Value) -> serde_json::Value {
    json(&OverrideRecord {
        value,
        set_by: node.options.name.clone(),
        set_ms: now_ms(),
    })
}

impl Writer {
    pub(super) fn new() -> Self {
        Writer {
            activities: BTreeMap::new(),
        }
    }

    /// Writes `effects` in order; returns whether samples were asked for.
    pub(super) async fn write(
        &mut self,
        node: &Node,
        host: &LeaderHost,
        leadership: &Leadership,
        effects: Vec<FleetEffect>,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<bool, Ended> {
        let mut samples = false;
        let mut ops = Vec::new();
        let mut trims = Vec::new();
        for e in effects {
            match e {
                FleetEffect::Cluster(Effect::CollectSamples) => samples = true,
                e => self.ops(node, host, e, &mut ops, &mut trims),
            }
        }
        for group in trims {
            if let Ok(old) = node.store.activities_beyond(&group, KEEP_ACTIVITIES).await {
                ops.extend(old.into_iter().map(Op::Delete));
            }
        }
        let mut ops = dedupe(ops).into_iter().peekable();
        while ops.peek().is_some() {
            let batch: Vec<Op> = ops.by_ref().take(BATCH).collect();
            if !commit(host, leadership, &batch, stop).await? {
                // Refused whole: one by one, so one bad operation does not take the rest.
                for op in batch {
                    commit(host, leadership, std::slice::from_ref(&op), stop).await?;
                }
            }
        }
        Ok(samples)
    }

    fn ops(
        &mut self,
        node: &Node,
        host: &LeaderHost,
        effect: FleetEffect,
        ops: &mut Vec<Op>,
        trims: &mut Vec<String>,
    ) {
        let keys = node.store.keys();
        match effect {
            FleetEffect::Put(a) => ops.push(Op::Put(
                keys.assignment(&a.host, a.id.as_str()),
                json(&convert::assignment_record(&a)),
            )),
            FleetEffect::Delete { host: h, id } => {
                ops.push(Op::Delete(keys.assignment(&h, id.as_str())))
            }
            FleetEffect::Cluster(Effect::Activity { group, activity }) => {
                ops.push(activity_op(node, host, &group, &activity));
                let n = self.activities.entry(group.clone()).or_insert(0);
                *n += 1;
                if *n % TRIM_EVERY == 0 {
                    trims.push(group);
                }
            }
            FleetEffect::Cluster(Effect::Persist(d)) => ops.extend(persist_op(node, d)),
            FleetEffect::Cluster(Effect::PublishWeights { rule, weights }) => ops.push(Op::Put(
                keys.routing_weights(&convert::rule_id(&rule)),
                json(&convert::routing_weights(&rule, &weights)),
            )),
            FleetEffect::Cluster(Effect::PublishShiftedZones { zones }) => {
                ops.push(Op::Put(keys.shifted_zones(), json(&ShiftedZones { zones })))
            }
            FleetEffect::Cluster(Effect::HoldRequests { target_group }) => {
                tracing::debug!(
                    target_group = target_group.as_str(),
                    "scale from zero holds requests only under `flotilla up`"
                );
            }
            FleetEffect::Cluster(other) => {
                tracing::debug!(effect = ?other, "no store write for this effect");
            }
        }
    }
}

fn activity_op(node: &Node, host: &LeaderHost, group: &str, a: &Activity) -> Op {
    let start_ms = u64::try_from(host.clock.wall_ms(a.time)).unwrap_or(0);
    let id = activity_id(start_ms, (a.id % 1_000_000) as u32);
    let record = ActivityRecord {
        description: a.description.clone(),
        cause: a.cause.clone(),
        status: crate::persist::status_str(a.status).to_string(),
        start_ms,
        end_ms: a
            .end_time
            .map(|t| u64::try_from(host.clock.wall_ms(t)).unwrap_or(0)),
    };
    Op::Put(node.store.keys().activity(group, &id), json(&record))
}

/// Operators' intents (`overrides/…`); instance facts never get here (they are assignments).
fn persist_op(node: &Node, d: Durable) -> Option<Op> {
    let keys = node.store.keys();
    Some(match d {
        Durable::Desired { group, desired } => {
            let key = keys.override_key("desired", &group);
            match desired {
                Some(n) => Op::Put(key, intent(node, serde_json::json!(n))),
                None => Op::Delete(key),
            }
        }
        Durable::Suspended { group, processes } => {
            let key = keys.override_key("suspended", &group);
            if processes.is_empty() {
                Op::Delete(key)
            } else {
                let names: Vec<&str> = processes.iter().map(|p| p.as_str()).collect();
                Op::Put(key, intent(node, serde_json::json!(names)))
            }
        }
        Durable::WeightOverride { rule, weights } => {
            let key = keys.override_key("weights", &convert::rule_id(&rule));
            match weights {
                Some(o) => Op::Put(key, intent(node, convert::weight_override_value(&rule, &o))),
                None => Op::Delete(key),
            }
        }
        _ => return None,
    })
}

/// Commits one batch, fenced; retries while etcd is away (telling the fleet to hold every
/// decision once the lease is no longer confirmed), ends the term when fenced. False when etcd
/// refused the batch for a reason retrying does not fix (logged).
async fn commit(
    host: &LeaderHost,
    leadership: &Leadership,
    batch: &[Op],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<bool, Ended> {
    let policy = RetryPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(3),
        ..RetryPolicy::default()
    };
    let mut jitter = Jitter::new();
    let mut attempt = 0u32;
    loop {
        let mut w = leadership.write();
        for op in batch {
            w = match op {
                Op::Put(k, v) => w.put(k, v),
                Op::Delete(k) => w.delete(k),
            };
        }
        match w.commit().await {
            Ok(_) => return Ok(true),
            Err(ClusterError::Fenced { .. }) => return Err(Ended::Deposed),
            Err(e) if e.is_transient() => {
                attempt += 1;
                if !leadership.is_fresh(SELF_FENCE_MARGIN) {
                    host.with_fleet(|f, now| f.handle_store(now, false));
                }
                tracing::warn!(error = %e, attempt, "cannot write the leader's decisions yet; retrying");
                if *stop.borrow() {
                    return Err(Ended::Stopping);
                }
                tokio::time::sleep(policy.delay(attempt, &mut jitter)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, operations = batch.len(), "a write of the leader was refused");
                return Ok(false);
            }
        }
    }
}
