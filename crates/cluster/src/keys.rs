//! The key layout under `/flotilla/v1/`, built and parsed in one place so that writers and
//! watchers cannot disagree about where a record lives.
//!
//! Desired state (config, groups' desired, assignments, overrides) is never leased, so it
//! outlives whoever wrote it; liveness and observations (hosts, lb nodes, obs, health votes)
//! are leased to their writer, so they vanish when it dies. Assignments and observations are
//! keyed by host first, so an agent watches exactly one prefix.

use crate::error::{ClusterError, Result};

/// The default root of every key.
pub const DEFAULT_PREFIX: &str = "/flotilla/v1/";

/// Builds keys under one root (tests use their own roots to stay apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            root: DEFAULT_PREFIX.to_string(),
        }
    }
}

/// Checks one path segment: non-empty, no `/` (it would shift every later segment).
pub fn check_segment(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains('/') || value.contains('\0') {
        return Err(ClusterError::Invalid(format!(
            "{what} {value:?} must be non-empty and contain no '/'"
        )));
    }
    Ok(())
}

impl Keys {
    /// Keys under `root`, which must end with `/`.
    pub fn new(root: &str) -> Result<Self> {
        if !root.ends_with('/') {
            return Err(ClusterError::Invalid(format!(
                "key root {root:?} must end with '/'"
            )));
        }
        Ok(Keys {
            root: root.to_string(),
        })
    }

    /// The root itself: one prefix watch on it sees the whole cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn join(&self, parts: &[&str]) -> String {
        let mut key = self.root.clone();
        key.push_str(&parts.join("/"));
        key
    }

    /// `config`: the applied configuration (one blob, replaced whole by `flotilla apply`).
    pub fn config(&self) -> String {
        self.join(&["config"])
    }
    /// `control/leader`: the controller election's name; candidates' keys are
    /// `control/leader/<lease hex>` (etcd's election service makes them).
    pub fn leader_election(&self) -> String {
        self.join(&["control", "leader"])
    }
    /// `hosts/`: every host's liveness record.
    pub fn hosts_prefix(&self) -> String {
        self.join(&["hosts", ""])
    }
    /// `hosts/<host>` (leased to the host's agent).
    pub fn host(&self, host: &str) -> String {
        self.join(&["hosts", host])
    }
    /// `lb/`: every load balancer node.
    pub fn lbs_prefix(&self) -> String {
        self.join(&["lb", ""])
    }
    /// `lb/<node>` (leased to the lb node).
    pub fn lb(&self, node: &str) -> String {
        self.join(&["lb", node])
    }
    /// `groups/<group>/desired` (controller or operator; not leased).
    pub fn group_desired(&self, group: &str) -> String {
        self.join(&["groups", group, "desired"])
    }
    /// `groups/<group>/status` (controller; not leased).
    pub fn group_status(&self, group: &str) -> String {
        self.join(&["groups", group, "status"])
    }
    /// `assign/`: every assignment.
    pub fn assignments_prefix(&self) -> String {
        self.join(&["assign", ""])
    }
    /// `assign/<host>/`: what one agent must run.
    pub fn host_assignments_prefix(&self, host: &str) -> String {
        self.join(&["assign", host, ""])
    }
    /// `assign/<host>/<instance>` (controller only, fenced).
    pub fn assignment(&self, host: &str, instance: &str) -> String {
        self.join(&["assign", host, instance])
    }
    /// `obs/`: every observation.
    pub fn observations_prefix(&self) -> String {
        self.join(&["obs", ""])
    }
    /// `obs/<host>/`: what one agent reports.
    pub fn host_observations_prefix(&self, host: &str) -> String {
        self.join(&["obs", host, ""])
    }
    /// `obs/<host>/<instance>` (leased to the agent).
    pub fn observation(&self, host: &str, instance: &str) -> String {
        self.join(&["obs", host, instance])
    }
    /// `health/<tg>/`: every vote about one target group.
    pub fn health_prefix(&self, target_group: &str) -> String {
        self.join(&["health", target_group, ""])
    }
    /// `health/<tg>/<instance>/<node>` (leased to the voting lb node, written on change).
    pub fn health_vote(&self, target_group: &str, instance: &str, node: &str) -> String {
        self.join(&["health", target_group, instance, node])
    }
    /// `activities/<group>/`: one group's activity log, oldest first by key.
    pub fn activities_prefix(&self, group: &str) -> String {
        self.join(&["activities", group, ""])
    }
    /// `activities/<group>/<id>`; ids sort by time (see [`crate::records::activity_id`]).
    pub fn activity(&self, group: &str, id: &str) -> String {
        self.join(&["activities", group, id])
    }
    /// `overrides/`: every operator override.
    pub fn overrides_prefix(&self) -> String {
        self.join(&["overrides", ""])
    }
    /// `overrides/<kind>/<name>`: an operator's intent that outlives a controller, e.g.
    /// `desired/web`, `suspended/web`, `protect/i-1`, `weights/front:80:10`, `host/h1`.
    pub fn override_key(&self, kind: &str, name: &str) -> String {
        self.join(&["overrides", kind, name])
    }

    /// `invalidations/`: every distribution's invalidations and the lb nodes' completions.
    pub fn invalidations_prefix(&self) -> String {
        self.join(&["invalidations", ""])
    }
    /// `invalidations/<distribution>/<id>`: one invalidation (operators; not leased). Ids sort
    /// by time, so the prefix lists oldest first.
    pub fn invalidation(&self, distribution: &str, id: &str) -> String {
        self.join(&["invalidations", distribution, id])
    }
    /// `invalidations/<distribution>/<id>/<node>`: one lb node has applied it (leased to the
    /// node, so only live nodes count).
    pub fn invalidation_done(&self, distribution: &str, id: &str, node: &str) -> String {
        self.join(&["invalidations", distribution, id, node])
    }

    /// `routing/`: what load balancer nodes route by beside the assignments.
    pub fn routing_prefix(&self) -> String {
        self.join(&["routing", ""])
    }
    /// `routing/weights/<id>`: one forward action's weights in force.
    pub fn routing_weights(&self, id: &str) -> String {
        self.join(&["routing", "weights", id])
    }
    /// `routing/shifted-zones`: the zones under a zonal shift.
    pub fn shifted_zones(&self) -> String {
        self.join(&["routing", "shifted-zones"])
    }

    /// Which record a key is, for watchers that dispatch on it; `None` outside the layout.
    pub fn parse<'k>(&self, key: &'k str) -> Option<Key<'k>> {
        let rest = key.strip_prefix(self.root.as_str())?;
        let parts: Vec<&str> = rest.split('/').collect();
        Some(match parts.as_slice() {
            ["config"] => Key::Config,
            ["control", "leader", lease] => Key::LeaderCandidate { lease },
            ["hosts", host] => Key::Host { host },
            ["lb", node] => Key::Lb { node },
            ["groups", group, "desired"] => Key::GroupDesired { group },
            ["groups", group, "status"] => Key::GroupStatus { group },
            ["assign", host, instance] => Key::Assignment { host, instance },
            ["obs", host, instance] => Key::Observation { host, instance },
            ["health", target_group, instance, node] => Key::HealthVote {
                target_group,
                instance,
                node,
            },
            ["activities", group, id] => Key::Activity { group, id },
            ["overrides", kind, name] => Key::Override { kind, name },
            ["invalidations", distribution, id] => Key::Invalidation { distribution, id },
            ["invalidations", distribution, id, node] => Key::InvalidationDone {
                distribution,
                id,
                node,
            },
            ["routing", "weights", id] => Key::RoutingWeights { id },
            ["routing", "shifted-zones"] => Key::ShiftedZones,
            _ => return None,
        })
        .filter(|k| k.segments_non_empty())
    }
}

/// A parsed key of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Key<'k> {
    Config,
    LeaderCandidate {
        lease: &'k str,
    },
    Host {
        host: &'k str,
    },
    Lb {
        node: &'k str,
    },
    GroupDesired {
        group: &'k str,
    },
    GroupStatus {
        group: &'k str,
    },
    Assignment {
        host: &'k str,
        instance: &'k str,
    },
    Observation {
        host: &'k str,
        instance: &'k str,
    },
    HealthVote {
        target_group: &'k str,
        instance: &'k str,
        node: &'k str,
    },
    Activity {
        group: &'k str,
        id: &'k str,
    },
    Override {
        kind: &'k str,
        name: &'k str,
    },
    RoutingWeights {
        id: &'k str,
    },
    ShiftedZones,
    Invalidation {
        distribution: &'k str,
        id: &'k str,
    },
    InvalidationDone {
        distribution: &'k str,
        id: &'k str,
        node: &'k str,
    },
}

impl Key<'_> {
    fn segments_non_empty(&self) -> bool {
        let segs: &[&str] = match self {
            Key::Config | Key::ShiftedZones => &[],
            Key::RoutingWeights { id } => &[id],
            Key::LeaderCandidate { lease } => &[lease],
            Key::Host { host } => &[host],
            Key::Lb { node } => &[node],
            Key::GroupDesired { group } | Key::GroupStatus { group } => &[group],
            Key::Assignment { host, instance } | Key::Observation { host, instance } => {
                &[host, instance]
            }
            Key::HealthVote {
                target_group,
                instance,
                node,
            } => &[target_group, instance, node],
            Key::Activity { group, id } => &[group, id],
            Key::Override { kind, name } => &[kind, name],
            Key::Invalidation { distribution, id } => &[distribution, id],
            Key::InvalidationDone {
                distribution,
                id,
                node,
            } => &[distribution, id, node],
        };
        segs.iter().all(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back() {
        let k = Keys::default();
        let cases = [
            (k.config(), Key::Config),
            (k.host("h1"), Key::Host { host: "h1" }),
            (k.lb("lb-a"), Key::Lb { node: "lb-a" }),
            (k.group_desired("web"), Key::GroupDesired { group: "web" }),
            (k.group_status("web"), Key::GroupStatus { group: "web" }),
            (
                k.assignment("h1", "i-1"),
                Key::Assignment {
                    host: "h1",
                    instance: "i-1",
                },
            ),
            (
                k.observation("h1", "i-1"),
                Key::Observation {
                    host: "h1",
                    instance: "i-1",
                },
            ),
            (
                k.health_vote("tg", "i-1", "lb-a"),
                Key::HealthVote {
                    target_group: "tg",
                    instance: "i-1",
                    node: "lb-a",
                },
            ),
            (
                k.activity("web", "0001"),
                Key::Activity {
                    group: "web",
                    id: "0001",
                },
            ),
            (
                k.override_key("desired", "web"),
                Key::Override {
                    kind: "desired",
                    name: "web",
                },
            ),
            (k.routing_weights("w1"), Key::RoutingWeights { id: "w1" }),
            (k.shifted_zones(), Key::ShiftedZones),
            (
                format!("{}/694d8b", k.leader_election()),
                Key::LeaderCandidate { lease: "694d8b" },
            ),
        ];
        for (key, want) in &cases {
            assert_eq!(k.parse(key).as_ref(), Some(want), "{key}");
        }
        assert_eq!(k.config(), "/flotilla/v1/config");
        assert_eq!(k.assignment("h1", "i-1"), "/flotilla/v1/assign/h1/i-1");
        assert!(k.host_assignments_prefix("h1").ends_with("/assign/h1/"));
    }

    #[test]
    fn foreign_and_malformed_keys_do_not_parse() {
        let k = Keys::default();
        assert_eq!(k.parse("/other/config"), None);
        assert_eq!(k.parse("/flotilla/v1/assign/h1"), None);
        assert_eq!(k.parse("/flotilla/v1/assign/h1/"), None);
        assert_eq!(k.parse("/flotilla/v1/nothing/x"), None);
        assert!(Keys::new("/no-slash").is_err());
        assert!(check_segment("host", "a/b").is_err());
        assert!(check_segment("host", "").is_err());
        assert!(check_segment("host", "h1").is_ok());
    }
}
