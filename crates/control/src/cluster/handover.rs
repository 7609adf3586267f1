//! A hot upgrade hands the whole `Cluster` from the running Flotilla process to its successor:
//! the old one serialises it (every field derives serde: groups with their instances, hooks,
//! refreshes and activities, target health with consecutive counts and outstanding probes,
//! scaling controllers with alarm windows, cooldowns and stabilization history, the metrics
//! store, weights and canary rollbacks, zone drills, id generators, queued effects) and the new
//! one deserialises it and carries on, so no decision restarts from scratch. The encoding is
//! the driver's choice (it must keep `f64` infinities: the runtime uses CBOR); this module only
//! says what the successor must do first.

use super::{Cluster, Effect};
use crate::time::Time;

/// The snapshot's format: a successor refuses a snapshot of another format (the upgrade fails
/// and the old process keeps serving). Bump it when a field changes meaning or a new field has
/// no `#[serde(default)]`.
pub const SNAPSHOT_FORMAT: u32 = 1;

impl Cluster {
    /// Takes a deserialised cluster into service in a new process: everything the data plane
    /// must know is published again (routing snapshots, weights, shifted zones, held requests),
    /// and probes whose answers went to the old process are sent again. Call once, with the
    /// new process's first `now`, before any other call.
    pub fn resume_after_handover(&mut self, now: Time) {
        for (name, tg) in &mut self.target_groups {
            tg.health.reissue_outstanding_probes(now);
            tg.dirty = true;
            if tg.holds {
                self.effects.push_back(Effect::HoldRequests {
                    target_group: name.clone(),
                });
            }
        }
        self.forwards.republish(&mut self.effects);
        self.publish_shifted_zones();
        self.pump(now);
        self.publish();
    }
}

impl Cluster {
    /// Whether effects wait in the queue: a driver snapshots the cluster for a successor only
    /// when it has carried out every one (so none is done twice or never).
    pub fn has_pending_effects(&self) -> bool {
        !self.effects.is_empty()
    }
}
